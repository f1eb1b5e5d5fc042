"""An object's own outline around a box: GrabCut on the pixels, to tighten a followed box.

Why. A box followed from a labelled frame has the place the tracker found and the size of the
labelled box's template, moved by flow's scale. Where the object's visible extent changes (it
goes behind another object or comes out, a thin part such as a crescent's horns or a knife's
blade is lost in the flow) the box is off by a fifth to a third of its height or width, and
the person fixes or redraws it. The frame's own pixels know better: GrabCut (Rother et al.,
SIGGRAPH 2004, as OpenCV implements it) models the colours inside the box and those of a ring
around it as two Gaussian mixtures and cuts the box's pixels into object and background; the
tight box of the largest piece of object is the outline.

An outline alone is often wrong (a shadow, a look-alike touching the object, a background
colour inside the object: on bench/tracking.py's videos, taking it instead of the followed box
broke one good box in ten), so it is one more opinion, as the class-agnostic candidates are in
:mod:`proposals.regions`: where it overlaps the followed box at IoU OUTLINE_MIN_IOU or more,
the box moves OUTLINE_WEIGHT of the way to it. Measured on the boxes bench/tracking.py follows
(``--start-noise 0.035``, a second before and after), in the annotator's seconds over the
videos' 240-250 objects, counter / night: with the project's box refiner -17.5 / -8.0, on the
held-out videos (seeds +10) -23.0 / -8.0, without a refiner -33.5 / -35.0 (see bench/ASSIST.md,
session 34). A half of the way, or a third from IoU 0.4, gained about as much; two thirds lost
on some videos.

Plain numpy and OpenCV; about 30 ms a box on a CPU core at the generated videos' sizes (larger
boxes are cut at a working resolution of at most OUTLINE_MAX_SIDE pixels).
"""

from __future__ import annotations

import cv2
import numpy as np

from proposals.boxes import as_boxes, averaged_with_closest

# GrabCut's box is the followed box grown by OUTLINE_GROW of its size on each side (the object
# may reach past it); the background model is learned from a ring OUTLINE_MARGIN box sizes wide
# around that.
OUTLINE_GROW = 0.1
OUTLINE_MARGIN = 1.0
OUTLINE_MAX_SIDE = 128
GRABCUT_ITERATIONS = 3
MIN_OUTLINE_SIDE = 4.0
# Where a box and its outline overlap this much, the box moves this share of the way to it.
OUTLINE_MIN_IOU = 0.5
OUTLINE_WEIGHT = 1 / 3
# GrabCut seeds its colour models with k-means from OpenCV's global random state; seeding it
# makes a frame's proposals the same each time they are built.
GRABCUT_SEED = 0


def object_outline(rgb: np.ndarray, box) -> np.ndarray | None:
    """The tight box (``float32 [4]`` xyxy) of the largest piece of object GrabCut finds around
    ``box`` in ``rgb`` (``uint8 [H, W, 3]``), or None where it finds none or cannot run (a box
    too small, a grey frame, no background around it)."""
    if rgb.ndim != 3:
        return None
    height, width = rgb.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    box_w, box_h = x2 - x1, y2 - y1
    if box_w < MIN_OUTLINE_SIDE or box_h < MIN_OUTLINE_SIDE:
        return None
    grown = np.array([max(0.0, x1 - OUTLINE_GROW * box_w), max(0.0, y1 - OUTLINE_GROW * box_h),
                      min(float(width), x2 + OUTLINE_GROW * box_w), min(float(height), y2 + OUTLINE_GROW * box_h)])
    margin = OUTLINE_MARGIN * max(box_w, box_h)
    left, top = int(max(0.0, grown[0] - margin)), int(max(0.0, grown[1] - margin))
    right, bottom = int(min(width, grown[2] + margin)), int(min(height, grown[3] + margin))
    factor = min(1.0, OUTLINE_MAX_SIDE / max(grown[2] - grown[0], grown[3] - grown[1]))
    crop = np.ascontiguousarray(rgb[top:bottom, left:right])
    if factor < 1.0:
        crop = cv2.resize(crop, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    rect = tuple(int(v) for v in ((grown[0] - left) * factor, (grown[1] - top) * factor,
                                  (grown[2] - grown[0]) * factor, (grown[3] - grown[1]) * factor))
    mask = np.zeros(crop.shape[:2], np.uint8)
    background_model, object_model = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(GRABCUT_SEED)
    try:
        cv2.grabCut(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), mask, rect, background_model, object_model,
                    GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_RECT)
    except cv2.error:  # e.g. no background pixel left around a box that fills the frame
        return None
    is_object = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(is_object)
    if count < 2:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (float(v) / factor for v in stats[largest, :4])
    return np.array([left + x, top + y, left + x + w, top + y + h], np.float32)


def pulled_to_own_outlines(rgb: np.ndarray, boxes, *, min_iou: float = OUTLINE_MIN_IOU,
                           weight: float = OUTLINE_WEIGHT) -> np.ndarray:
    """``boxes`` (``float32 [N, 4]`` xyxy in ``rgb``) each moved ``weight`` of the way to its own
    :func:`object_outline` where the two overlap at IoU ``min_iou`` or more; the others as they
    are. Returns a new ``float32 [N, 4]``."""
    pulled = as_boxes(boxes).copy()
    for row, box in enumerate(pulled.copy()):
        outline = object_outline(rgb, box)
        if outline is not None:  # the same pull as towards the candidates' outlines in proposals.regions
            pulled[row] = averaged_with_closest(box[None], outline[None], min_iou=min_iou, weight=weight)[0]
    return pulled
