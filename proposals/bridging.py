"""Boxes between two labelled frames of a shot: their confirmed boxes interpolated, where the tracker's
two estimates of an object disagree.

A frame between two labelled ones gets each confirmed box of both followed into it
(:mod:`proposals.tracking`), and where the two estimates of an object agree their mean is nearly
always on it. Where they disagree, one side (or both) lost the object: to a look-alike, to the
object it passed behind, or to a change of size that flow could not follow. The two labelled
boxes of that object still say where it was on each side, and a line between them says where it
most likely is now, as video annotation tools have interpolated tracks between keyframes since
VATIC. The line knows nothing of the pixels, so it is only a third opinion:

- where it agrees with one side's estimate and not the other's, that estimate is the likelier:
  it counts as confirmed twice (its confidence gains the line's, as two agreeing frames' do) and
  the other loses half of its own;
- where it agrees with neither, and the two labelled frames are at most two seconds apart, it is
  proposed as a box of its own, of its own source, so that the project's calibration learns from
  its people's decisions how often such a box is worth showing (objects that move steadily:
  often; objects that turn or bounce between the frames: seldom).

Offline (bench/tracking.py, from boxes as loose as accepted ones, ``--start-noise 0.035``, the
lines with a threshold of their own as the app calibrates them apart): counter 0.2157 -> 0.2034
(drawn 10 -> 5), night 0.2120 -> 0.2118 (its lines never worth showing: night's objects turn
between the frames), and on two other videos of the looks (seeds +10) 0.2470 -> 0.2363 and
0.2038 -> 0.2016. On the frames with a labelled frame a second away on each side, the vote alone
took counter from 0.2034 to 0.1974 and night from 0.1921 to 0.1918; from two seconds away on each
side it still helped (0.2256 -> 0.2248, 0.1891 -> 0.1883) but showing the lines cost more (0.2344,
0.1964): hence boxes of their own only over two seconds or less, and the vote always. In the app,
over three and four seconds, 8 of 8 such boxes shown on counter were rejected.

Objects are paired across the two labelled frames by label and distance (centres at most
MAX_APART_SIZES of the earlier box's size apart), nearest first; a pair whose estimates already
agree is left as the tracker fused it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from proposals.boxes import as_boxes, box_areas, paired_iou
from proposals.tracking import AGREE_IOU, fuse_estimates

# An interpolated box counts as an estimate this sure when it sides with one of two disagreeing
# estimates; a box of its own scores half of it (as a lone estimate of two frames does), and is
# proposed only between labelled frames at most OWN_BOX_SPAN_SECONDS apart: over longer stretches
# objects turn, bounce and pass behind others, and a line is seldom where they are.
LINE_CONFIDENCE = 0.6
OWN_BOX_SPAN_SECONDS = 2.0
# The estimate the line does not side with keeps this share of its confidence.
OUTVOTED_SHARE = 0.5
# Boxes of one label in the two labelled frames whose centres are further apart than this many
# times the earlier box's size (the square root of its area) are not taken for one object.
MAX_APART_SIZES = 6.0


@dataclass(frozen=True)
class LabelledSide:
    """One of the two labelled frames around the frame proposed for: its confirmed boxes, their
    labels, how far it is (seconds, > 0), and the fused row each of its boxes' estimates went to
    (:func:`proposals.tracking.fuse_estimates`)."""

    boxes: np.ndarray  # float32 [N, 4] xyxy
    labels: np.ndarray  # int64 [N]
    seconds: float
    rows: np.ndarray  # int64 [N]


def paired_objects(before: LabelledSide, after: LabelledSide, before_left: list[int], after_left: list[int]):
    """``(i, j)`` pairs of boxes of ``before`` and ``after`` (among the indices given) taken for
    one object: the same label, nearest centres first (relative to the earlier box's size), at
    most MAX_APART_SIZES apart, each box in one pair."""
    first, second = before.boxes[before_left].reshape(-1, 4), after.boxes[after_left].reshape(-1, 4)
    centres_first, centres_second = (first[:, :2] + first[:, 2:]) / 2, (second[:, :2] + second[:, 2:]) / 2
    sizes = np.maximum(1.0, np.sqrt(box_areas(first)))
    apart = np.linalg.norm(centres_first[:, None] - centres_second[None], axis=2) / sizes[:, None]
    apart[before.labels[before_left][:, None] != after.labels[after_left][None, :]] = np.inf
    options = sorted(
        (float(apart[a, b]), before_left[a], after_left[b]) for a, b in zip(*np.nonzero(apart <= MAX_APART_SIZES))
    )
    pairs, used_before, used_after = [], set(), set()
    for _, i, j in options:
        if i not in used_before and j not in used_after:
            used_before.add(i)
            used_after.add(j)
            pairs.append((i, j))
    return pairs


def bridge_sides(
    boxes: np.ndarray, confidence: np.ndarray, labels: np.ndarray, before: LabelledSide, after: LabelledSide
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fused estimates ``(float32 [M, 4], float32 [M], int64 [M])`` of a frame between
    ``before`` and ``after``, with the interpolated boxes' votes and boxes of their own (see the
    module doc): ``(boxes, confidence, labels, bool [M + K] interpolated)``."""
    boxes, confidence = as_boxes(boxes).copy(), np.asarray(confidence, np.float32).copy()
    labels = np.asarray(labels, np.int64)
    interpolated = np.zeros(len(boxes), bool)
    span = before.seconds + after.seconds
    if not len(before.boxes) or not len(after.boxes) or span <= 0:
        return boxes, confidence, labels, interpolated
    agreed = set(before.rows.tolist()) & set(after.rows.tolist())
    before_left = [i for i, row in enumerate(before.rows.tolist()) if row not in agreed]
    after_left = [j for j, row in enumerate(after.rows.tolist()) if row not in agreed]
    pairs = paired_objects(before, after, before_left, after_left)
    if not pairs:
        return boxes, confidence, labels, interpolated
    share_after = before.seconds / span
    lines = np.array([(1 - share_after) * before.boxes[i] + share_after * after.boxes[j] for i, j in pairs], np.float32)
    rows_before = np.array([before.rows[i] for i, _ in pairs])
    rows_after = np.array([after.rows[j] for _, j in pairs])
    with_before = paired_iou(lines, boxes[rows_before]) >= AGREE_IOU
    with_after = paired_iou(lines, boxes[rows_after]) >= AGREE_IOU
    # Both changes are computed from the confidences as fused, so the order of pairs is moot.
    fused = confidence.copy()
    for row_kept, row_outvoted in zip(
        np.concatenate([rows_before[with_before & ~with_after], rows_after[with_after & ~with_before]]),
        np.concatenate([rows_after[with_before & ~with_after], rows_before[with_after & ~with_before]]),
    ):
        confidence[row_kept] = fused[row_kept] + LINE_CONFIDENCE / 2
        confidence[row_outvoted] = fused[row_outvoted] * OUTVOTED_SHARE
    alone = ~with_before & ~with_after & (span <= OWN_BOX_SPAN_SECONDS + 1e-6)
    return (
        np.concatenate([boxes, lines[alone]]),
        np.concatenate([confidence, np.full(int(alone.sum()), LINE_CONFIDENCE / 2, np.float32)]),
        np.concatenate([labels, np.array([before.labels[i] for i, _ in pairs], np.int64)[alone]]),
        np.concatenate([interpolated, np.ones(int(alone.sum()), bool)]),
    )


def fuse_and_bridge(carried, sides) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """The estimates ``carried`` into a frame from its labelled frames (per labelled frame,
    ``(float32 [N, 4], float32 [N] confidence, int64 [N] label ids)``) fused
    (:func:`proposals.tracking.fuse_estimates`), then bridged between the nearest
    labelled frame on each side (:func:`bridge_sides`). ``sides``: per labelled frame, ``(after,
    seconds, float32 [N, 4] the boxes followed from)``, ``after`` whether it comes later in the
    video than the frame (None: not known, never bridged). Returns ``(boxes, confidence, labels,
    bool interpolated, rows)``, ``rows[k]`` the row each box of ``carried[k]`` went to (the
    interpolated boxes of their own come after all of those)."""
    boxes, confidence, labels, rows = fuse_estimates(carried)
    nearest: dict[bool, LabelledSide] = {}
    for (after, seconds, start), estimate, row in zip(sides, carried, rows):
        if after is not None and (after not in nearest or seconds < nearest[after].seconds):
            nearest[after] = LabelledSide(as_boxes(start), np.asarray(estimate[2], np.int64).reshape(-1), seconds, row)
    if len(nearest) == 2:
        return (*bridge_sides(boxes, confidence, labels, nearest[False], nearest[True]), rows)
    return boxes, confidence, labels, np.zeros(len(boxes), bool), rows
