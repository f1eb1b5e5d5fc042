"""A box refiner learned from the project's confirmed boxes: it moves a box followed from a
labelled frame towards the visible extent of its object.

Why. The tracker carries a confirmed box a second or more and places it well, but its size
comes from the labelled frame's template: where an object comes out from behind another,
goes behind it or turns, the box shown is off by a fifth to a half, and the person fixes or
redraws it (bench/assist.py: box fixes and redraws are most of what is left above accepting).
What a box's object looks like at its edges is in the project's own labels, so a small network
learns it from them: crops around a confirmed box moved and resized at random (as the tracker
errs), and the correction back to the box (the box regression of R-CNN, trained per project
the way online trackers learn their target).

The network sees a crop of the box grown by :data:`CONTEXT` of its size on each side, resized
to :data:`CROP_SIDE` pixels square, and predicts the four edges' moves in units of the box's
width and height. :func:`refine_boxes` moves each box half of the predicted way, twice: a
learned correction on one look is noisy, and half steps keep a box that was right where it was
(measured with bench/tracking.py's carried boxes, see bench/ASSIST.md). A box the tracker is
sure of (confidence :data:`SURE_CONFIDENCE` or more: three boxes in four, and 97-98 % of them
already good on bench/tracking.py's videos) moves only :data:`SURE_PULL` of the way: a refiner
learned from the few frames a project has labelled when its first one is trained moves good
boxes off their objects, and most boxes are good.

Plain torch and numpy; the learning loop (labeller.training.runs) trains, evaluates and
promotes it with the project's detector.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch
from torch import nn

from proposals.boxes import edge_moves, iou_matrix, moved_boxes, paired_iou, valid_box_mask
from proposals.calibration import ActionCosts
from proposals.training.checkpoints import CHECKPOINT_FORMAT_VERSION, load_checkpoint, save_checkpoint
from proposals.training.data import TrainingFrame

CHECKPOINT_KIND = "box_refiner"
CROP_SIDE = 48
CONTEXT = 0.5
# How a training box is moved and resized: its centre by up to this share of its size, each
# side's length by a factor of up to exp(+-this), about the tracker's errors that need a fix.
JITTER_SHIFT = 0.15
JITTER_LOG_SCALE = 0.3
JITTER_PER_BOX = 40
# A box is refined in REFINE_STEPS steps, each REFINE_PULL of the predicted way.
REFINE_STEPS = 2
REFINE_PULL = 0.5
# ... and a box followed with this confidence or more (fuse_estimates's) only SURE_PULL of it.
SURE_CONFIDENCE = 0.5
SURE_PULL = 0.25
GOOD_IOU = 0.7  # the annotator accepts a box this close to the truth as it is
MATCH_IOU = 0.5  # ... and fixes one this close; a box further off is rejected and drawn
MIN_BOX_SIDE = 4.0
BATCH = 128
LEARNING_RATE = 2e-3


class BoxRefinerNet(nn.Module):
    """Four stride-2 convolutions and a small head: 0.14 M weights; a frame's boxes, refined twice,
    take about 10 ms on a CPU core (while the tracker takes about a second)."""

    def __init__(self) -> None:
        super().__init__()
        channels = (3, 16, 32, 64, 64)
        layers: list[nn.Module] = []
        for before, after in zip(channels, channels[1:]):
            layers += [nn.Conv2d(before, after, 3, stride=2, padding=1), nn.GroupNorm(4, after), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        side = CROP_SIDE // 16
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * side * side, 128), nn.ReLU(), nn.Linear(128, 4))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(crops))


def box_crop(rgb: np.ndarray, box) -> np.ndarray:
    """uint8 [CROP_SIDE, CROP_SIDE, 3]: ``box`` grown by CONTEXT on each side, resized."""
    x1, y1, x2, y2 = (float(v) for v in box)
    width, height = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    source = np.float32([
        [x1 - CONTEXT * width, y1 - CONTEXT * height],
        [x2 + CONTEXT * width, y1 - CONTEXT * height],
        [x1 - CONTEXT * width, y2 + CONTEXT * height],
    ])
    target = np.float32([[0, 0], [CROP_SIDE, 0], [0, CROP_SIDE]])
    shrinking = (1 + 2 * CONTEXT) * max(width, height) > CROP_SIDE
    return cv2.warpAffine(rgb, cv2.getAffineTransform(source, target), (CROP_SIDE, CROP_SIDE),
                          flags=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def jittered_boxes(truths: np.ndarray, rng: np.random.Generator, per_box: int) -> np.ndarray:
    """float32 [N * per_box, 4]: each of ``truths`` moved and resized as the tracker errs."""
    truths = np.repeat(np.asarray(truths, np.float64).reshape(-1, 4), per_box, axis=0)
    width, height = truths[:, 2] - truths[:, 0], truths[:, 3] - truths[:, 1]
    shift = rng.uniform(-JITTER_SHIFT, JITTER_SHIFT, (len(truths), 2)) * np.stack([width, height], axis=1)
    centre = (truths[:, :2] + truths[:, 2:]) / 2 + shift
    scale = np.exp(rng.uniform(-JITTER_LOG_SCALE, JITTER_LOG_SCALE, (len(truths), 2)))
    size = np.stack([width, height], axis=1) * scale
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32)


def _tensor(crops: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div(255.0).sub(0.5)


def _usable(frame: TrainingFrame) -> np.ndarray:
    return frame.boxes[valid_box_mask(frame.boxes, min_size=MIN_BOX_SIDE)]


def _jittered_per_frame(frames: Sequence[TrainingFrame], rng: np.random.Generator, per_box: int):
    """For each of ``frames`` with a box big enough to judge: (the frame, float32 [N * per_box, 4]
    its boxes each moved ``per_box`` times as the tracker errs, float32 [N * per_box, 4] the box
    each came from)."""
    for frame in frames:
        truths = _usable(frame)
        if len(truths):
            yield frame, jittered_boxes(truths, rng, per_box), np.repeat(truths, per_box, axis=0)


def training_pairs(frames: Sequence[TrainingFrame], rng: np.random.Generator, per_box: int = JITTER_PER_BOX):
    """(uint8 [M, S, S, 3] crops, float32 [M, 4] edge moves): every confirmed box of ``frames``
    jittered ``per_box`` times, and each crop mirrored (an object seen the other way round)."""
    crops, moves = [], []
    for frame, jittered, truths in _jittered_per_frame(frames, rng, per_box):
        crops += [box_crop(frame.image, box) for box in jittered]
        moves.append(edge_moves(jittered, truths))
    if not crops:
        return np.zeros((0, CROP_SIDE, CROP_SIDE, 3), np.uint8), np.zeros((0, 4), np.float32)
    crops_array, moves_array = np.stack(crops), np.concatenate(moves)
    mirrored_moves = moves_array[:, [2, 1, 0, 3]] * np.array([-1, 1, -1, 1], np.float32)
    return np.concatenate([crops_array, crops_array[:, :, ::-1]]), np.concatenate([moves_array, mirrored_moves])


@dataclass(frozen=True)
class RefinerTraining:
    refiner: BoxRefinerNet
    loss_curve: list[float]  # mean loss per tenth of the steps
    samples: int
    seconds: float


def train_box_refiner(
    frames: Sequence[TrainingFrame], *, steps: int, seed: int, log: Callable[[int, float], None] | None = None
) -> RefinerTraining:
    """Train a refiner from scratch on ``frames``' confirmed boxes: AdamW, a one-cycle learning
    rate, smooth-L1 loss on the edge moves; deterministic for a ``seed``. ``log(step, loss)``
    is called ten times and may raise to stop."""
    if steps < 1:
        raise ValueError("steps must be at least 1")
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    crops, moves = training_pairs(frames, rng)
    if not len(crops):
        raise ValueError("no confirmed boxes to learn from")
    torch.manual_seed(seed)
    net = BoxRefinerNet()
    optimiser = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=LEARNING_RATE, total_steps=steps)
    inputs, targets = _tensor(crops), torch.from_numpy(moves)
    curve, window = [], []
    every = max(1, steps // 10)
    net.train()
    for step in range(steps):
        rows = torch.from_numpy(rng.integers(0, len(crops), min(BATCH, len(crops))))
        loss = nn.functional.smooth_l1_loss(net(inputs[rows]), targets[rows], beta=0.05)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        window.append(float(loss.detach()))
        if (step + 1) % every == 0 or step + 1 == steps:
            curve.append(round(float(np.mean(window)), 5))
            window = []
            if log is not None:
                log(step + 1, curve[-1])
    net.eval()
    return RefinerTraining(net, curve, len(crops), time.perf_counter() - started)


def refine_boxes(net: BoxRefinerNet, rgb: np.ndarray, boxes, confidence=None, *, steps: int = REFINE_STEPS,
                 pull: float = REFINE_PULL, sure_pull: float = SURE_PULL) -> np.ndarray:
    """float32 [N, 4]: ``boxes`` (xyxy pixels in ``rgb``) moved ``steps`` times ``pull`` of the
    way the refiner predicts, those whose float [N] ``confidence`` (the tracker's, when given)
    is SURE_CONFIDENCE or more ``sure_pull`` of it; boxes too small to judge stay as they are."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
    judged = np.flatnonzero(valid_box_mask(boxes, min_size=MIN_BOX_SIDE))
    if not len(judged):
        return boxes
    pulls = np.full((len(judged), 1), pull, np.float32)
    if confidence is not None:
        sure = np.asarray(confidence, np.float64).reshape(-1)[judged] >= SURE_CONFIDENCE
        pulls[sure] = sure_pull
    current = boxes[judged]
    with torch.no_grad():
        for _ in range(steps):
            crops = np.stack([box_crop(rgb, box) for box in current])
            current = moved_boxes(current, net(_tensor(crops)).numpy(), pulls)
    boxes[judged] = current
    return boxes


@dataclass(frozen=True)
class RefinerScore:
    """On validation frames, boxes moved as the tracker errs: the share the annotator would
    accept as they are (IoU >= GOOD_IOU with their truth) before and after refining, and the
    mean IoU after. ``boxes``: how many were judged."""

    good_before: float
    good_after: float
    mean_iou_after: float
    boxes: int

    @property
    def helps(self) -> bool:
        return self.boxes > 0 and self.good_after > self.good_before

    def as_dict(self) -> dict:
        return {"good_before": round(self.good_before, 4), "good_after": round(self.good_after, 4),
                "mean_iou_after": round(self.mean_iou_after, 4), "boxes": self.boxes}


def evaluate_box_refiner(net: BoxRefinerNet | None, frames: Sequence[TrainingFrame], *, seed: int,
                         per_box: int = 8) -> RefinerScore:
    """:class:`RefinerScore` of ``net`` (None: no refiner, the boxes as moved) on ``frames``; the
    same ``seed`` moves the same boxes the same way, so two refiners compare fairly."""
    rng = np.random.default_rng(seed)
    before, after = [], []
    for frame, jittered, truths in _jittered_per_frame(frames, rng, per_box):
        refined = jittered if net is None else refine_boxes(net, frame.image, jittered)
        before.append(paired_iou(jittered, truths))
        after.append(paired_iou(refined, truths))
    if not before:
        return RefinerScore(0.0, 0.0, 0.0, 0)
    before_all, after_all = np.concatenate(before), np.concatenate(after)
    return RefinerScore(float(np.mean(before_all >= GOOD_IOU)), float(np.mean(after_all >= GOOD_IOU)),
                        float(after_all.mean()), len(after_all))


@dataclass(frozen=True)
class FollowedScore:
    """What a person would spend on boxes really followed into validation frames from their
    labelled neighbours, as followed and as refined: per true box, accepting the closest box
    (IoU >= GOOD_IOU), fixing it (IoU >= MATCH_IOU) or rejecting it and drawing the box (the
    published costs, :class:`proposals.calibration.ActionCosts`). Boxes moved at random are easy
    to mend; this says whether the refiner also leaves a tracker's good boxes good."""

    seconds_before: float
    seconds_after: float
    boxes: int

    @property
    def no_worse(self) -> bool:
        return self.boxes > 0 and self.seconds_after <= self.seconds_before

    def as_dict(self) -> dict:
        return {"seconds_before": round(self.seconds_before, 2), "seconds_after": round(self.seconds_after, 2),
                "boxes": self.boxes}


def _seconds_for(followed: np.ndarray, truths: np.ndarray) -> float:
    costs = ActionCosts()
    if not len(truths):
        return 0.0
    if not len(followed):
        return costs.draw * len(truths)
    best = iou_matrix(truths, followed).max(axis=1)
    return float(np.where(best >= GOOD_IOU, costs.accept,
                          np.where(best >= MATCH_IOU, costs.accept + costs.fix_box, costs.reject + costs.draw)).sum())


class FollowedCase(NamedTuple):
    """A validation frame with the boxes followed into it from its labelled neighbours (or, in a
    still, the boxes proposed there, which a refiner moves the full way)."""

    rgb: np.ndarray  # uint8 [H, W, 3]
    followed: np.ndarray  # float32 [N, 4]
    confidence: np.ndarray | None  # float [N], the tracker's (see refine_boxes); None: not followed
    truths: np.ndarray  # float32 [M, 4], the frame's confirmed boxes


def evaluate_on_followed(net: BoxRefinerNet, cases: Sequence[FollowedCase]) -> FollowedScore:
    """:class:`FollowedScore` of ``net`` on ``cases``. A frame nothing was followed into says
    nothing about a refiner and is left out."""
    before = after = 0.0
    boxes = 0
    for rgb, followed, confidence, truths in cases:
        followed = np.asarray(followed, np.float32).reshape(-1, 4)
        truths = np.asarray(truths, np.float32).reshape(-1, 4)
        if not len(followed):
            continue
        before += _seconds_for(followed, truths)
        after += _seconds_for(refine_boxes(net, rgb, followed, confidence), truths)
        boxes += len(truths)
    return FollowedScore(before, after, boxes)


def save_box_refiner(net: BoxRefinerNet, path: str | Path, **metadata) -> Path:
    """Write ``net`` atomically (see proposals.training.checkpoints)."""
    return save_checkpoint({
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "kind": CHECKPOINT_KIND,
        "state_dict": {key: value.detach().cpu() for key, value in net.state_dict().items()},
        "metadata": dict(metadata),
    }, path)


def load_box_refiner(path: str | Path) -> BoxRefinerNet:
    checkpoint = load_checkpoint(path, kind=CHECKPOINT_KIND)
    net = BoxRefinerNet()
    net.load_state_dict(checkpoint["state_dict"])
    net.eval()
    return net
