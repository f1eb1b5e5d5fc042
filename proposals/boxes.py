"""Pure helpers on axis-aligned boxes.

Every box array here is ``float32 [N, 4]`` in ``(x1, y1, x2, y2)`` pixel coordinates,
with ``x2``/``y2`` exclusive (a box covering pixel columns 0..9 is ``x1=0, x2=10``).
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import batched_nms, box_iou


def as_boxes(boxes) -> np.ndarray:
    """Any array-like of boxes -> contiguous ``float32 [N, 4]`` (an empty input gives ``[0, 4]``)."""
    return np.ascontiguousarray(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))


def iou_matrix(boxes_a, boxes_b) -> np.ndarray:
    """Pairwise IoU: ``float32 [N, 4]`` x ``float32 [M, 4]`` -> ``float32 [N, M]``."""
    a, b = as_boxes(boxes_a), as_boxes(boxes_b)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    return box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()


def clip_boxes(boxes, width: int, height: int) -> np.ndarray:
    """Clamp boxes to the frame ``[0, width] x [0, height]``; returns a new ``float32 [N, 4]``."""
    clipped = as_boxes(boxes).copy()
    clipped[:, 0::2] = np.clip(clipped[:, 0::2], 0, width)
    clipped[:, 1::2] = np.clip(clipped[:, 1::2], 0, height)
    return clipped


def valid_box_mask(boxes, *, min_size: float = 2.0) -> np.ndarray:
    """``bool [N]``: finite boxes whose width and height are both at least ``min_size`` pixels."""
    b = as_boxes(boxes)
    finite = np.isfinite(b).all(axis=1)
    with np.errstate(invalid="ignore"):
        large_enough = ((b[:, 2] - b[:, 0]) >= min_size) & ((b[:, 3] - b[:, 1]) >= min_size)
    return finite & large_enough


def box_areas(boxes) -> np.ndarray:
    """``float32 [N]`` areas (zero for inverted boxes)."""
    b = as_boxes(boxes)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def _edge_sizes(boxes: np.ndarray) -> np.ndarray:
    """``[N, 4]`` each box's (width, height, width, height), at least a pixel: the scale of
    each edge's move."""
    width = np.maximum(boxes[:, 2] - boxes[:, 0], 1.0)
    height = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    return np.stack([width, height, width, height], axis=1)


def edge_moves(boxes, targets) -> np.ndarray:
    """``float32 [N, 4]``: how far each edge of ``targets`` lies from that of the box in the same
    row of ``boxes``, in box widths (x edges) and heights (y edges)."""
    b = as_boxes(boxes)
    return ((np.asarray(targets, np.float64).reshape(-1, 4) - b) / _edge_sizes(b)).astype(np.float32)


def moved_boxes(boxes, moves, pull=1.0) -> np.ndarray:
    """``boxes`` with each edge moved ``pull`` (a number, or ``float [N, 1]`` one per box) of
    ``moves`` (:func:`edge_moves`; ``[4]`` moves every box alike)."""
    b = as_boxes(boxes)
    return (b + pull * np.asarray(moves) * _edge_sizes(b)).astype(np.float32)


def paired_iou(boxes_a, boxes_b) -> np.ndarray:
    """``float32 [N]``: the IoU of each box of ``boxes_a`` with the box in the same row of ``boxes_b``
    (:func:`iou_matrix`'s diagonal, without the N x N matrix)."""
    a, b = as_boxes(boxes_a), as_boxes(boxes_b)
    width = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    height = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = width * height
    return inter / np.maximum(box_areas(a) + box_areas(b) - inter, 1e-9)


def covered_shares(boxes, others) -> np.ndarray:
    """``float32 [N, M]``: the share of each of ``boxes`` [N, 4] that each of ``others`` [M, 4] covers."""
    a, b = as_boxes(boxes), as_boxes(others)
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(width, 0, None) * np.clip(height, 0, None)
    return inter / np.maximum(box_areas(a), 1.0)[:, None]


def averaged_with_closest(boxes, others, *, min_iou: float, weight: float) -> np.ndarray:
    """Each of ``boxes`` [N, 4] moved ``weight`` of the way towards the one of ``others`` [M, 4]
    it overlaps most, where that IoU reaches ``min_iou``; the others unchanged. Returns a new
    ``float32 [N, 4]``."""
    averaged = as_boxes(boxes).copy()
    overlap = iou_matrix(averaged, others)
    if not overlap.size:
        return averaged
    closest = overlap.argmax(axis=1)
    close = overlap[np.arange(len(averaged)), closest] >= min_iou
    averaged[close] += weight * (as_boxes(others)[closest[close]] - averaged[close])
    return averaged


def nms_keep(boxes, scores, *, iou_threshold: float, groups=None) -> np.ndarray:
    """Indices (``int64 [K]``, by decreasing score) kept by non-maximum suppression.

    ``groups`` (``int64 [N]``, optional) restricts suppression to boxes of the same group,
    e.g. the same label; without it every box competes with every other.
    """
    b = as_boxes(boxes)
    if len(b) == 0:
        return np.zeros(0, dtype=np.int64)
    group_ids = np.zeros(len(b), dtype=np.int64) if groups is None else np.asarray(groups, np.int64)
    keep = batched_nms(
        torch.from_numpy(b),
        torch.from_numpy(np.asarray(scores, dtype=np.float32)),
        torch.from_numpy(group_ids),
        iou_threshold,
    )
    return keep.numpy().astype(np.int64)


def matched_ground_truth(ground_truth, proposals, *, iou_threshold: float = 0.5) -> np.ndarray:
    """``bool [G]``: which ground-truth boxes overlap some proposal with IoU >= threshold."""
    ious = iou_matrix(ground_truth, proposals)
    if ious.shape[1] == 0:
        return np.zeros(ious.shape[0], dtype=bool)
    return ious.max(axis=1) >= iou_threshold


def recall_at_iou(ground_truth, proposals, *, iou_threshold: float = 0.5) -> float:
    """Fraction of ground-truth boxes recovered by some proposal at IoU >= threshold.

    An image without ground truth has nothing to miss and scores 1.0.
    """
    matched = matched_ground_truth(ground_truth, proposals, iou_threshold=iou_threshold)
    return float(matched.mean()) if len(matched) else 1.0
