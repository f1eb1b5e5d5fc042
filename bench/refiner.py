"""The box refiner on real stills: how much nearer it brings the boxes that are not followed.

    .venv/bin/python bench/refiner.py [--train-images 5] [--test-images 30] [--steps 1000]

A project's detector run also trains a box refiner (proposals.training.refiner) from its
confirmed boxes. It moves the boxes followed from labelled frames and, since session 45, where
nothing is followed (stills, and the frames of shots nobody has labelled, such as a new video's),
every box proposed (a detector's, template matches, moving blobs, the pixels' class-agnostic
segments) before it is embedded and shown. This bench trains a refiner as a run would
(``--steps``, the app's ``LABELLER_REFINER_STEPS``) on the first ``--train-images`` images of
BCCD's train split (real microscope images, VOC boxes, ``../shared/data/bccd-voc``), then, on
the first ``--test-images`` of its test split, takes each image's class-agnostic candidates
(``proposals.regions.scored_candidate_boxes``, as ``propose_regions`` gets them) and asks, per
true box, how close the best candidate comes before and after the refiner moves them: a person
accepts a box at IoU 0.7 or more as it is and fixes one at 0.5 or more (bench/assist_sim.py).

Deterministic for a seed on one machine. Progress goes to stderr, then ONE JSON line with
``accepted_share_before`` / ``accepted_share_after`` (true boxes whose best candidate is at IoU
>= 0.7), ``fixable_share_*`` (>= 0.5), ``mean_best_iou_*``, ``refine_ms_per_image`` and the
load average.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from bench.assist_sim import MATCH_IOU  # noqa: E402
from bench.learning import BCCD_ROOT, bccd_frame  # noqa: E402
from proposals.boxes import iou_matrix  # noqa: E402
from proposals.regions import scored_candidate_boxes  # noqa: E402
from proposals.training.refiner import GOOD_IOU, refine_boxes, train_box_refiner  # noqa: E402


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def split(name: str) -> list[str]:
    return (BCCD_ROOT / "ImageSets" / "Main" / f"{name}.txt").read_text().split()


def best_iou_per_truth(boxes: np.ndarray, truths: np.ndarray) -> np.ndarray:
    """float [M]: each true box's IoU with the closest of ``boxes`` (0 where there are none)."""
    if not len(truths):
        return np.zeros(0)
    if not len(boxes):
        return np.zeros(len(truths))
    return iou_matrix(truths, boxes).max(axis=1)


def measure(train_images: int, test_images: int, steps: int, seed: int) -> dict:
    training = [bccd_frame(stem, number) for number, stem in enumerate(split("train")[:train_images])]
    started = time.perf_counter()
    net = train_box_refiner(training, steps=steps, seed=seed).refiner
    log(f"refiner: {steps} steps on {len(training)} images in {time.perf_counter() - started:.1f} s")
    before, after, refine_seconds = [], [], 0.0
    tested = split("test")[:test_images]
    for number, stem in enumerate(tested):
        frame = bccd_frame(stem, number)
        rgb, truths = frame.image, frame.boxes
        candidates, _ = scored_candidate_boxes(rgb)
        started = time.perf_counter()
        refined = refine_boxes(net, rgb, candidates) if len(candidates) else candidates
        refine_seconds += time.perf_counter() - started
        before.append(best_iou_per_truth(candidates, truths))
        after.append(best_iou_per_truth(refined, truths))
    before, after = np.concatenate(before), np.concatenate(after)
    return {
        "train_images": len(training),
        "test_images": len(tested),
        "true_boxes": len(before),
        "steps": steps,
        "accepted_share_before": round(float(np.mean(before >= GOOD_IOU)), 4),
        "accepted_share_after": round(float(np.mean(after >= GOOD_IOU)), 4),
        "fixable_share_before": round(float(np.mean(before >= MATCH_IOU)), 4),
        "fixable_share_after": round(float(np.mean(after >= MATCH_IOU)), 4),
        "mean_best_iou_before": round(float(before.mean()), 4),
        "mean_best_iou_after": round(float(after.mean()), 4),
        "refine_ms_per_image": round(1000 * refine_seconds / max(1, len(tested)), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-images", type=int, default=5, help="BCCD train images the refiner learns from")
    parser.add_argument("--test-images", type=int, default=30, help="BCCD test images measured")
    parser.add_argument("--steps", type=int, default=1000, help="training steps (the app's LABELLER_REFINER_STEPS)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    figures = measure(args.train_images, args.test_images, args.steps, args.seed)
    print(json.dumps({"bench": "refiner", **figures,
                      "load_average": [round(value, 2) for value in os.getloadavg()]}))


if __name__ == "__main__":
    main()
