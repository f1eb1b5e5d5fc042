"""Benchmark of the learning loop's ML library (proposals.training), no Django.

    .venv/bin/python bench/learning.py [--look counter|night] [--quick] [--device cuda] [options to shrink]

Detector on generated videos: ``--videos`` training videos and ``--held-out-videos`` others of
one look (8 shots each, 5 objects a shot, 320x192 at 6 fps, 40 s). The held-out videos have
their own seeds, so every evaluated object, background and pose is unseen; every third frame
of theirs is evaluated. The detector trains from random init on the first 10, 25 and 50 % of
every training video's frames (people label a video from its start), and with ``--spread`` on
10 % spread over all shots (``split_position`` of the frame id); each run lasts
max(``--min-epochs``, ``--min-images`` / frames) epochs.
BCCD (real microscope images, VOC): trains on ``--bccd-train`` images spread evenly over the
train split (all 205 with 0) for ``--bccd-epochs``, evaluates on the whole test split (72
images), at 320x240.
Embedding: kNN label top-1 (``LabelIndex``) of the held-out videos' crops against
``--reference-crops`` training crops, with the random-init AlexNet before and after batch-hard
triplet retraining on all training crops.

``--device cuda`` trains and evaluates everything on the GPU (``seconds_per_epoch_gpu`` is then
BCCD's mean epoch after the first); on the CPU path, a GPU, when there is one, gets three BCCD
epochs of its own for that figure. ``--backbone`` picks the detector's backbone (random init).

Prints progress lines, then ONE JSON line with the figures.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from bench.proposals import read_voc  # noqa: E402
from proposals.features import FeatureConfig, FeatureExtractor  # noqa: E402
from proposals.labels import BACKGROUND, LabelIndex  # noqa: E402
from proposals.synthetic import write_synthetic_video  # noqa: E402
from proposals.training.data import TrainingFrame, split_position  # noqa: E402
from proposals.training.detector import DetectorTrainingOptions, evaluate, train_detector  # noqa: E402
from proposals.training.detector_models import DetectorConfig  # noqa: E402
from proposals.training.embedding import EmbeddingTrainingOptions, crops_from_frames, train_embedding  # noqa: E402
from proposals.training.evaluation import (ModelScore, nearest_neighbour_recall_at_1,  # noqa: E402
                                           promotion_decision, validation_key)

BCCD_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "bccd-voc" / "BCCD"  # ../shared beside the checkout
BCCD_CLASSES = ("RBC", "WBC", "Platelets")
FRACTIONS = (0.10, 0.25, 0.50)
SALT = "bench-learning"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def decode_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def rounded(value):
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    if isinstance(value, dict):
        return {str(key): rounded(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(item) for item in value]
    return value


# --- generated videos ---------------------------------------------------------------------------


def video_frames(path: Path, look: str, seconds: float, seed: int, video_number: int):
    """The frames of one generated video as complete :class:`TrainingFrame` s, and its classes."""
    video = write_synthetic_video(path, seconds=seconds, fps=6, width=320, height=192, n_shots=8, seed=seed,
                                  objects_per_shot=5, look=look)
    class_ids = {name: index for index, name in enumerate(video.classes)}
    frames = [TrainingFrame(video_number * 100_000 + index, rgb,
                            np.array([b.box for b in video.boxes[index]], np.float32).reshape(-1, 4),
                            np.array([class_ids[b.label] for b in video.boxes[index]], np.int64), complete=True)
              for index, rgb in enumerate(decode_frames(video.path))]
    return frames, video.classes


def synthetic_frames(workdir: Path, look: str, videos: int, held_out_videos: int, seconds: float):
    """(training videos' frames, one list per video; held-out frames; class names). Held-out
    videos have their own seeds, so their shots, objects and backgrounds are all unseen; every
    third of their frames is kept."""
    train, held_out = [], []
    for number in range(videos + held_out_videos):
        frames, classes = video_frames(workdir / f"{look}{number}.mp4", look, seconds, 100 + number, number)
        if number < videos:
            train.append(frames)
        else:
            held_out.extend(frames[::3])
    return train, held_out, classes


def train_and_score(frames, held_out, label_ids, args, name: str, epochs: int):
    options = DetectorTrainingOptions(epochs=epochs, learning_rate=args.learning_rate)
    log(f"{name}: training on {len(frames)} frames for {options.epochs} epochs")
    cpu_started = time.process_time()
    result = train_detector(frames, DetectorConfig(backbone=args.backbone), options, label_ids=label_ids,
                            device=args.device,
                            log=lambda e: log(f"  epoch {e.epoch}: loss {e.losses['total']:.3f} ({e.seconds:.1f} s)"))
    cpu_seconds = time.process_time() - cpu_started
    scores = evaluate(result.detector, held_out)
    images = sum(epoch.images for epoch in result.epochs)
    log(f"{name}: mAP@0.5 {scores.map50:.3f}")
    return result, scores, {"seconds_per_image": sum(e.seconds for e in result.epochs) / images,
                            "cpu_seconds_per_image": cpu_seconds / images, "epochs": options.epochs}


def detector_on_videos(train_videos, held_out, classes, args) -> dict:
    """Learning curve: train on the first 10 / 25 / 50 % of every training video (people label a
    video from its start, so more frames bring more shots and objects); with ``--spread`` also on
    10 % of the frames spread over every shot (as keyframes-first labelling would give)."""
    figures, scores_of = {}, {}
    label_ids = list(range(len(classes)))
    pool = [frame for frames in train_videos for frame in frames]
    subsets = {f"{round(fraction * 100)}pct": [frame for frames in train_videos
                                                     for frame in frames[:round(fraction * len(frames))]]
               for fraction in FRACTIONS}
    if args.spread:
        subsets["10pct_spread"] = [frame for frame in pool if split_position(frame.frame_id, SALT) < 0.10]
    for name, subset in subsets.items():
        epochs = max(args.min_epochs, math.ceil(args.min_images / len(subset)))
        result, scores, timing = train_and_score(subset, held_out, label_ids, args, f"videos {name}", epochs)
        scores_of[name] = scores
        figures[f"map50_at_{name}"] = scores.map50
        figures[f"map50_per_category_at_{name}"] = {classes[k]: v for k, v in scores.per_label.items()}
        figures[f"frames_at_{name}"] = len(subset)
        figures[f"epochs_at_{name}"] = timing["epochs"]
        figures[f"seconds_per_epoch_at_{name}"] = result.seconds_per_epoch
        figures[f"seconds_per_image_at_{name}"] = timing["seconds_per_image"]
        figures[f"cpu_seconds_per_image_at_{name}"] = timing["cpu_seconds_per_image"]
    key = validation_key(frame.frame_id for frame in held_out)
    decision = promotion_decision(ModelScore(scores_of["50pct"].map50, key), ModelScore(scores_of["25pct"].map50, key))
    figures["promote_50pct_over_25pct"] = decision.promote
    figures["held_out_frames"] = len(held_out)
    figures["held_out_boxes"] = scores_of["50pct"].ground_truth_boxes
    figures["train_pool_frames"] = len(pool)
    return figures


# --- embedding ----------------------------------------------------------------------------------


def embed_crops(extractor: FeatureExtractor, crops) -> np.ndarray:
    return np.concatenate([extractor.embed_crops(crop.image, crop.box[None]) for crop in crops])


def label_top1(extractor, reference, queries) -> tuple[float, float]:
    """kNN label top-1 of ``queries`` against ``reference`` crops, and leave-one-out recall@1
    among the queries themselves."""
    reference_vectors, query_vectors = embed_crops(extractor, reference), embed_crops(extractor, queries)
    index = LabelIndex(extractor.dim)
    index.add(np.arange(len(reference)), reference_vectors, np.array([c.label_id for c in reference]))
    index.calibrate()
    predicted = [s[0].label_id if s else BACKGROUND for s in index.suggest(query_vectors)]
    truth = np.array([c.label_id for c in queries])
    return float(np.mean(np.asarray(predicted) == truth)), nearest_neighbour_recall_at_1(query_vectors, truth)


def embedding_figures(train, held_out, args) -> dict:
    config = FeatureConfig(weights=args.feature_weights)
    crops = crops_from_frames(train)
    rng = np.random.default_rng(0)
    reference = [crops[i] for i in np.sort(rng.permutation(len(crops))[:args.reference_crops])]
    queries = crops_from_frames(held_out)
    before = FeatureExtractor(config, device=args.device)
    log(f"embedding: {len(reference)} reference crops, {len(queries)} held-out crops, before retraining")
    top1_before, recall_before = label_top1(before, reference, queries)
    options = EmbeddingTrainingOptions(steps=args.embedding_steps, labels_per_batch=8, crops_per_label=4,
                                       learning_rate=args.embedding_learning_rate)
    log(f"embedding: retraining on {len(crops)} crops for {options.steps} steps")
    result = train_embedding(crops, config, options, device=args.device,
                             log=lambda step, loss, spread: step % 20 == 0 and log(
                                 f"  step {step}: loss {loss:.3f} spread {spread:.3f}"))
    figures = {"label_top1_before": top1_before, "recall_at_1_before": recall_before,
               "embedding_collapsed": result.collapsed, "embedding_steps": result.steps,
               "embedding_seconds_per_step": result.seconds / max(result.steps, 1),
               "embedding_weights": "random-init" if before.is_random else args.feature_weights,
               "embedding_train_crops": len(crops), "embedding_held_out_crops": len(queries)}
    if result.collapsed:
        log(f"embedding collapsed: {result.reason}")
        return figures | {"label_top1_after": None, "recall_at_1_after": None}
    top1_after, recall_after = label_top1(result.extractor, reference, queries)
    # Promote by what suggestions see: held-out crops against the indexed training crops. (The
    # leave-one-out recall@1 among held-out crops is saturated: the same object in the next
    # evaluated frame is nearly always its nearest neighbour.)
    key = validation_key(range(len(queries)))
    decision = promotion_decision(ModelScore(top1_after, key), ModelScore(top1_before, key))
    figures["promote_embedding"] = decision.promote
    return figures | {"label_top1_after": top1_after, "recall_at_1_after": recall_after,
                      "embedding_final_loss": float(np.mean(result.losses[-10:]))}


# --- BCCD ---------------------------------------------------------------------------------------


def bccd_frame(stem: str, frame_id: int) -> TrainingFrame:
    """One BCCD image with its VOC boxes (read as bench/proposals.py reads them), labels in BCCD_CLASSES order."""
    boxes, labels = read_voc(stem, {name: index for index, name in enumerate(BCCD_CLASSES)})
    rgb = np.array(Image.open(BCCD_ROOT / "JPEGImages" / f"{stem}.jpg").convert("RGB"))
    return TrainingFrame(frame_id, rgb, boxes, labels, True)


def bccd_figures(args) -> dict:
    split = {name: (BCCD_ROOT / "ImageSets/Main" / f"{name}.txt").read_text().split() for name in ("train", "test")}
    stems = split["train"]
    if args.bccd_train and args.bccd_train < len(stems):
        stems = [stems[i] for i in np.linspace(0, len(stems) - 1, args.bccd_train).round().astype(int)]
    train = [bccd_frame(stem, number) for number, stem in enumerate(stems)]
    test = [bccd_frame(stem, 10_000 + number) for number, stem in enumerate(split["test"])]
    result, scores, timing = train_and_score(train, test, [0, 1, 2], args, "BCCD", args.bccd_epochs)
    figures = {"bccd_map50": scores.map50,
               "bccd_map50_per_category": {BCCD_CLASSES[k]: v for k, v in scores.per_label.items()},
               "bccd_train_images": len(train), "bccd_test_images": len(test), "bccd_epochs": timing["epochs"],
               "seconds_per_epoch": result.seconds_per_epoch,
               "bccd_seconds_per_image": timing["seconds_per_image"],
               "bccd_cpu_seconds_per_image": timing["cpu_seconds_per_image"]}
    if args.device == "cuda":
        figures["seconds_per_epoch_gpu"] = warm_seconds_per_epoch(result)
    else:
        figures["seconds_per_epoch_gpu"] = gpu_seconds_per_epoch(train, args) if torch.cuda.is_available() else None
    return figures


def warm_seconds_per_epoch(result) -> float:
    """Mean seconds of a run's epochs after the first, which warms the GPU up."""
    return float(np.mean([epoch.seconds for epoch in result.epochs[1:]]))


def gpu_seconds_per_epoch(frames, args) -> float:
    options = DetectorTrainingOptions(epochs=3)
    result = train_detector(frames, DetectorConfig(backbone=args.backbone), options, label_ids=[0, 1, 2],
                            device="cuda")
    return warm_seconds_per_epoch(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--look", default="counter", choices=("counter", "night"))
    parser.add_argument("--videos", type=int, default=3, help="generated training videos (8 shots each)")
    parser.add_argument("--held-out-videos", type=int, default=2, help="generated videos to evaluate on")
    parser.add_argument("--seconds", type=float, default=40.0, help="length of each generated video")
    parser.add_argument("--min-epochs", type=int, default=8)
    parser.add_argument("--min-images", type=int, default=1500, help="least images a video detector run sees")
    parser.add_argument("--spread", action="store_true", help="also train on 10 %% of frames spread over all shots")
    parser.add_argument("--learning-rate", type=float, default=4e-3)
    parser.add_argument("--bccd-train", type=int, default=100, help="BCCD train images (0: all 205)")
    parser.add_argument("--bccd-epochs", type=int, default=16)
    parser.add_argument("--embedding-steps", type=int, default=100)
    parser.add_argument("--embedding-learning-rate", type=float, default=1e-4)
    parser.add_argument("--reference-crops", type=int, default=600, help="training crops in the kNN index")
    parser.add_argument("--feature-weights", default="none", help="none (random init), imagenet, or a checkpoint")
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny budgets, figures not meaningful")
    parser.add_argument("--skip", nargs="*", default=(), choices=("videos", "embedding", "bccd"))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="where the detector and the embedding train and run")
    parser.add_argument("--backbone", default="tiny", choices=("tiny", "resnet18", "resnet50"),
                        help="the detector's backbone, from random init")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.videos, args.held_out_videos, args.seconds, args.min_epochs, args.min_images = 1, 1, 32.0, 1, 60
        args.bccd_train, args.bccd_epochs, args.embedding_steps, args.reference_crops = 12, 2, 5, 100
    started = time.perf_counter()
    figures = {"look": args.look, "device": args.device, "backbone": args.backbone,
               "load_avg_start": list(os.getloadavg()), "torch_threads": torch.get_num_threads()}
    if "videos" not in args.skip or "embedding" not in args.skip:
        with tempfile.TemporaryDirectory() as workdir:
            log(f"writing {args.videos} {args.look} videos")
            train_videos, held_out, classes = synthetic_frames(Path(workdir), args.look, args.videos,
                                                               args.held_out_videos, args.seconds)
        if "videos" not in args.skip:
            figures |= detector_on_videos(train_videos, held_out, classes, args)
        if "embedding" not in args.skip:
            figures |= embedding_figures([frame for frames in train_videos for frame in frames], held_out, args)
    if "bccd" not in args.skip:
        figures |= bccd_figures(args)
    figures["cuda"] = torch.cuda.is_available()
    figures["load_avg"] = list(os.getloadavg())
    figures["bench_seconds"] = time.perf_counter() - started
    print(json.dumps(rounded(figures)))


if __name__ == "__main__":
    main()
