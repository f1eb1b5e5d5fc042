"""What training sees: frames with confirmed boxes, the stable validation split, and
repeat-factor sampling for rare labels.

Full supervision. A detector learns "background" from every pixel that is not inside a box,
so only frames a person marked *complete* (every object boxed) can teach it. In other frames
an unboxed object would be taught as background, so :func:`detector_frames` leaves them out
entirely; their confirmed boxes still train the embedding (a crop needs no completeness) and
fill the kNN index.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np


@dataclass(frozen=True, eq=False)
class TrainingFrame:
    """One frame and what people confirmed in it.

    ``image``: uint8 [H, W, 3] RGB. ``boxes``: float32 [N, 4] xyxy pixels. ``label_ids``:
    int64 [N], the project's label ids. ``complete``: a person marked the frame complete,
    so every object in it is boxed.
    """

    frame_id: int
    image: np.ndarray
    boxes: np.ndarray
    label_ids: np.ndarray
    complete: bool

    def __post_init__(self) -> None:
        image = np.asarray(self.image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"frame {self.frame_id}: expected uint8 HxWx3 RGB, got {image.dtype} {image.shape}")
        boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        label_ids = np.asarray(self.label_ids, np.int64).reshape(-1)
        if len(boxes) != len(label_ids):
            raise ValueError(f"frame {self.frame_id}: {len(boxes)} boxes but {len(label_ids)} labels")
        object.__setattr__(self, "image", image)
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "label_ids", label_ids)


def detector_frames(frames: Sequence[TrainingFrame]) -> list[TrainingFrame]:
    """The frames that may train (or validate) a detector: the complete ones (see module doc).

    A complete frame without boxes stays: it is a true negative, all background.
    """
    return [frame for frame in frames if frame.complete]


class Split(StrEnum):
    TRAIN = "train"
    VALIDATION = "validation"


def split_position(frame_id: int, salt: str) -> float:
    """Where ``frame_id`` falls in [0, 1): the first 8 bytes of SHA-256("salt:id")."""
    digest = hashlib.sha256(f"{salt}:{int(frame_id)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(frame_id: int, salt: str, val_share: float) -> Split:
    """The split a frame belongs to, stable across runs, processes and machines.

    A pure function of its arguments (no Python ``hash``, which is salted per process): with a
    project's fixed ``salt`` (e.g. its id) and ``val_share``, a frame joins train or validation
    once and stays there however many frames come after it. Raising ``val_share`` only moves
    frames from train to validation, never back.
    """
    if not 0.0 <= val_share <= 1.0:
        raise ValueError(f"val_share must be in [0, 1], got {val_share}")
    return Split.VALIDATION if split_position(frame_id, salt) < val_share else Split.TRAIN


def split_frames(frames: Sequence[TrainingFrame], salt: str, val_share: float
                 ) -> tuple[list[TrainingFrame], list[TrainingFrame]]:
    """``(train, validation)`` by :func:`split_of` on each frame's id, order kept."""
    validation = [frame for frame in frames if split_of(frame.frame_id, salt, val_share) == Split.VALIDATION]
    chosen = {id(frame) for frame in validation}
    return [frame for frame in frames if id(frame) not in chosen], validation


def repeat_factors(label_sets: Sequence[Sequence[int]], threshold: float = 0.1) -> np.ndarray:
    """LVIS repeat factors, float64 [N] >= 1, one per image.

    ``label_sets``: the label ids in each image. With f(c) the share of images containing
    label c, r(c) = max(1, sqrt(threshold / f(c))), and an image repeats max over its labels
    of r(c) (1 for an image without labels). Labels in more than ``threshold`` of the images
    are not repeated.
    """
    if threshold <= 0:
        raise ValueError("threshold must be positive")
    count = len(label_sets)
    if count == 0:
        return np.zeros(0)
    images_with = Counter(label for labels in label_sets for label in {int(x) for x in labels})
    label_factor = {label: max(1.0, math.sqrt(threshold / (seen / count))) for label, seen in images_with.items()}
    return np.array([max((label_factor[int(label)] for label in labels), default=1.0) for labels in label_sets])


def repeat_factor_epoch(factors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One epoch of image indices, int64 [M], shuffled, each image ``i`` appearing
    floor(factors[i]) times plus once more with probability frac(factors[i]) (stochastic
    rounding, as detectron2's RepeatFactorTrainingSampler), so the expectation is exact."""
    factors = np.asarray(factors, np.float64)
    whole = np.floor(factors)
    repeats = (whole + (rng.random(len(factors)) < factors - whole)).astype(np.int64)
    return rng.permutation(np.repeat(np.arange(len(factors)), repeats))
