"""Benchmark of label suggestions and region proposals, library code only (no Django).

    .venv/bin/python bench/proposals.py [--weights none|imagenet|PATH]

Synthetic: two generated videos with exact ground truth. The "confirmed" video gives the
labelled examples (and background crops, as rejected proposals would in the tool); the other
video's frames are evaluated, so every evaluated shot is unseen by the index.
BCCD (real microscope images): the train split is the confirmed set, the test split is evaluated.

Prints progress lines, then ONE JSON line with the figures.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import xml.etree.ElementTree as ElementTree  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from proposals.boxes import iou_matrix, matched_ground_truth  # noqa: E402
from proposals.features import FeatureConfig, FeatureExtractor  # noqa: E402
from proposals.labels import BACKGROUND, LabelIndex  # noqa: E402
from proposals.regions import candidate_boxes, propose_regions  # noqa: E402
from proposals.synthetic import write_synthetic_video  # noqa: E402

BCCD_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "bccd-voc" / "BCCD"  # ../shared beside the checkout
EXAMPLES_PER_CLASS = (1, 5, 20)
DRAWS = 3  # label accuracy is averaged over this many random choices of the confirmed examples
TOP_K = 20
NEAR_GAP = 4  # frames between a confirmed frame and the evaluated one
CONFIRMED_EVERY = 12  # in the evaluated video, one confirmed frame every this many
BACKGROUND_PER_IMAGE = 4
BCCD_INDEX_IMAGES = 60  # train images whose boxes fill the index for BCCD region proposals


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def decode_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def background_boxes(rgb: np.ndarray, ground_truth: np.ndarray, count: int, rng) -> np.ndarray:
    """Candidates that overlap no object (IoU < 0.3): what an annotator would reject."""
    candidates = candidate_boxes(rgb, max_candidates=60)
    if len(ground_truth):
        candidates = candidates[iou_matrix(candidates, ground_truth).max(axis=1) < 0.3]
    chosen = rng.choice(len(candidates), size=min(count, len(candidates)), replace=False)
    return candidates[np.sort(chosen)]


class ExampleSet:
    """Embedded ground-truth crops: ``vectors float32 [N, D]``, ``labels int64 [N]``."""

    def __init__(self, vectors: np.ndarray, labels: np.ndarray) -> None:
        self.vectors, self.labels = vectors, labels

    @classmethod
    def embed(cls, extractor, images_and_boxes) -> "ExampleSet":
        vectors, labels = [], []
        for rgb, boxes, label_ids in images_and_boxes:
            if len(boxes):
                vectors.append(extractor.embed_crops(rgb, np.asarray(boxes, np.float32)))
                labels.append(np.asarray(label_ids, np.int64))
        return cls(np.concatenate(vectors), np.concatenate(labels))

    def sample_per_class(self, count: int, rng) -> np.ndarray:
        return np.concatenate(
            [rng.permutation(np.flatnonzero(self.labels == label))[:count] for label in np.unique(self.labels)]
        )


def label_top1(confirmed: ExampleSet, evaluated: ExampleSet, per_class: int) -> float:
    """Mean over draws of top-1 accuracy of ``LabelIndex.suggest`` with ``per_class`` examples."""
    accuracies = []
    for draw in range(DRAWS):
        chosen = confirmed.sample_per_class(per_class, np.random.default_rng(draw))
        index = LabelIndex(confirmed.vectors.shape[1])
        index.add(np.arange(len(chosen)), confirmed.vectors[chosen], confirmed.labels[chosen])
        predicted = [s[0].label_id if s else BACKGROUND for s in index.suggest(evaluated.vectors)]
        accuracies.append(float(np.mean(np.asarray(predicted) == evaluated.labels)))
    return float(np.mean(accuracies))


def build_index(extractor, objects: ExampleSet, background_vectors: np.ndarray) -> LabelIndex:
    index = LabelIndex(extractor.dim)
    index.add(np.arange(len(objects.labels)), objects.vectors, objects.labels)
    start = len(objects.labels)
    index.add(np.arange(start, start + len(background_vectors)), background_vectors,
              np.full(len(background_vectors), BACKGROUND))
    index.calibrate()
    return index


class RecallMeter:
    def __init__(self) -> None:
        self.matched = self.total = 0
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []

    def measure(self, rgb, ground_truth, **kwargs) -> None:
        started, cpu_started = time.perf_counter(), time.process_time()
        proposals = propose_regions(rgb, top_k=TOP_K, **kwargs)
        self.seconds.append(time.perf_counter() - started)
        # CPU time summed over threads: unlike wall time it does not grow when other
        # processes share the cores, so it is the figure to compare between runs.
        self.cpu_seconds.append(time.process_time() - cpu_started)
        boxes = np.array([p.box for p in proposals], np.float32).reshape(-1, 4)
        self.matched += int(matched_ground_truth(ground_truth, boxes, iou_threshold=0.5).sum())
        self.total += len(ground_truth)

    @property
    def recall(self) -> float:
        return self.matched / max(1, self.total)


def gt_arrays(frame_boxes, class_ids) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.array([b.box for b in frame_boxes], np.float32).reshape(-1, 4)
    return boxes, np.array([class_ids[b.label] for b in frame_boxes], np.int64)


def synthetic_figures(extractor, workdir: Path) -> dict:
    log("writing synthetic videos")
    confirmed_video = write_synthetic_video(workdir / "confirmed.mp4", seed=11, objects_per_shot=3)
    evaluated_video = write_synthetic_video(workdir / "evaluated.mp4", seed=23, objects_per_shot=3)
    class_ids = {name: i for i, name in enumerate(confirmed_video.classes)}
    confirmed_frames, evaluated_frames = decode_frames(confirmed_video.path), decode_frames(evaluated_video.path)
    rng = np.random.default_rng(0)

    confirmed_numbers = range(0, len(confirmed_frames), 5)
    log("embedding confirmed examples")
    confirmed = ExampleSet.embed(
        extractor, [(confirmed_frames[f], *gt_arrays(confirmed_video.boxes[f], class_ids)) for f in confirmed_numbers]
    )
    evaluated = ExampleSet.embed(
        extractor,
        [(evaluated_frames[f], *gt_arrays(evaluated_video.boxes[f], class_ids)) for f in range(2, len(evaluated_frames), 10)],
    )
    figures = {f"label_top1_at_{n}": label_top1(confirmed, evaluated, n) for n in EXAMPLES_PER_CLASS}

    background = [
        extractor.embed_crops(confirmed_frames[f], background_boxes(
            confirmed_frames[f], gt_arrays(confirmed_video.boxes[f], class_ids)[0], BACKGROUND_PER_IMAGE, rng))
        for f in confirmed_numbers[::2]
    ]
    chosen = confirmed.sample_per_class(20, rng)
    index = build_index(extractor, ExampleSet(confirmed.vectors[chosen], confirmed.labels[chosen]),
                        np.concatenate(background))

    log("proposing regions on synthetic frames")
    shot_of = np.searchsorted(evaluated_video.cuts, np.arange(len(evaluated_frames)), side="right")
    near, unseen = RecallMeter(), RecallMeter()
    for confirmed_number in range(0, len(evaluated_frames) - NEAR_GAP, CONFIRMED_EVERY):
        target = confirmed_number + NEAR_GAP
        if shot_of[target] != shot_of[confirmed_number]:
            continue
        neighbour_boxes, neighbour_labels = gt_arrays(evaluated_video.boxes[confirmed_number], class_ids)
        ground_truth = gt_arrays(evaluated_video.boxes[target], class_ids)[0]
        near.measure(evaluated_frames[target], ground_truth, label_index=index, extractor=extractor,
                     neighbours=[(evaluated_frames[confirmed_number], neighbour_boxes, neighbour_labels)])
        unseen.measure(evaluated_frames[target], ground_truth, label_index=index, extractor=extractor)
    return figures | {
        "region_recall_near": near.recall,
        "region_recall_unseen": unseen.recall,
        "seconds_per_frame": float(np.mean(near.seconds + unseen.seconds)),
        "cpu_seconds_per_frame": float(np.mean(near.cpu_seconds + unseen.cpu_seconds)),
        "load_average_1min": os.getloadavg()[0],
        "synthetic_frames_evaluated": len(near.seconds),
        "synthetic_boxes_evaluated": near.total,
    }


def read_voc(stem: str, class_ids: dict) -> tuple[np.ndarray, np.ndarray]:
    """VOC boxes as ``float32 [N, 4]`` xyxy (1-based inclusive -> x1 = xmin - 1, x2 = xmax) and labels."""
    root = ElementTree.parse(BCCD_ROOT / "Annotations" / f"{stem}.xml").getroot()
    boxes, labels = [], []
    for obj in root.iter("object"):
        box = obj.find("bndbox")
        x1, y1, x2, y2 = (float(box.find(tag).text) for tag in ("xmin", "ymin", "xmax", "ymax"))
        if x2 <= x1 or y2 <= y1:
            continue  # the two known zero-area boxes
        boxes.append([x1 - 1, y1 - 1, x2, y2])
        labels.append(class_ids.setdefault(obj.find("name").text.strip(), len(class_ids)))
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64)


def bccd_figures(extractor) -> dict:
    split = {name: (BCCD_ROOT / "ImageSets/Main" / f"{name}.txt").read_text().split() for name in ("train", "test")}
    class_ids: dict[str, int] = {}

    def load(stem):
        return np.array(Image.open(BCCD_ROOT / "JPEGImages" / f"{stem}.jpg").convert("RGB")), *read_voc(stem, class_ids)

    log("BCCD: embedding train and test boxes")
    train = [load(stem) for stem in split["train"]]
    test = [load(stem) for stem in split["test"]]
    rng = np.random.default_rng(0)
    # Every train image for the 5-per-class draws would cost minutes of embedding; the rare
    # classes (WBC, platelets) appear in most images, so a spread subset is enough.
    confirmed = ExampleSet.embed(extractor, train[::2])
    evaluated = ExampleSet.embed(extractor, test)
    top1_at_5 = label_top1(confirmed, evaluated, 5)

    index_images = train[:: max(1, len(train) // BCCD_INDEX_IMAGES)][:BCCD_INDEX_IMAGES]
    objects = ExampleSet.embed(extractor, index_images)
    background = np.concatenate(
        [extractor.embed_crops(rgb, background_boxes(rgb, boxes, BACKGROUND_PER_IMAGE, rng)) for rgb, boxes, _ in index_images]
    )
    index = build_index(extractor, objects, background)
    log("BCCD: proposing regions on the test split")
    meter = RecallMeter()
    for rgb, boxes, _ in test:
        meter.measure(rgb, boxes, label_index=index, extractor=extractor)
    return {
        "bccd_label_top1_at_5": top1_at_5,
        "bccd_region_recall": meter.recall,
        "bccd_seconds_per_image_640x480": float(np.mean(meter.seconds)),
        "bccd_test_boxes": meter.total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="none", help="none (random init), imagenet, or a checkpoint path")
    args = parser.parse_args()
    started = time.perf_counter()
    extractor = FeatureExtractor(FeatureConfig(weights=args.weights))
    figures = {"weights": "random-init" if extractor.is_random else args.weights}
    with tempfile.TemporaryDirectory() as workdir:
        figures |= synthetic_figures(extractor, Path(workdir))
    figures |= bccd_figures(extractor)
    figures["top_k"] = TOP_K
    figures["bench_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
