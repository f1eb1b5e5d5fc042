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

A second opinion from the object's own colours (:func:`colour_model`, :func:`colour_outline`).
GrabCut learns the object's colours from the followed box itself, so a box that took in part of
another object or of the ground teaches it those colours too. The labelled frames know better:
there the box is the object's, and the colours inside it against those of a ring around it say,
for each colour, how likely a pixel of it is the object's (a histogram back-projection, as
CamShift tracks by). In the frame proposed for, the pieces of pixels around the followed box
whose colours are the object's with a chance above COLOUR_THRESHOLD, and that lie mostly inside
the box, give its extent; the box moves COLOUR_WEIGHT of the way to it where the two overlap at
IoU COLOUR_MIN_IOU or more (:func:`proposals.regions.follow_neighbours` does so before the
refiner and the GrabCut pull). Pixels that other labelled boxes cover are left out of the model:
the object may be behind them. Measured with bench/tracking.py (``--start-noise 0.035``, see
bench/ASSIST.md, session 36), counter / night: a second before and after 0.1899 -> 0.1812 /
0.1957 -> 0.1907, two seconds before 0.2902 -> 0.2823 / 0.2305 -> 0.2262, on the held-out videos
(seeds +10) 0.2284 -> 0.2268 / 0.1934 -> 0.1902; half the way instead of a third lost on both
videos. In the app (bench/assist.py, counter, with retraining) 0.213-0.217 -> 0.207-0.208.

A model is checked where the answer is known: in the frame it was learned from, its outline
must cover at least COLOUR_MIN_COVER of the labelled box. Where an object's colours are also
its surroundings' (a dark cat on a dark street), only a distinctive part of it (the eyes) passes
the threshold, there as anywhere else, and the pull drew each followed box in onto that part: on
the generated night video the cats' boxes shrank by 3 % of their size on every side (IoU with the
truth 0.888 -> 0.833), the person accepted them while still above IoU 0.7, and the next frames
were followed from the smaller boxes until one needed a fix (six of a night run's ten box fixes
after the first 10 % were cats, most inside the cat). In its own frame such a model's outline
covers 0.58 of the cat's labelled box on average (the dark backpacks' 0.72), where the other
labels' cover 0.87-0.98 (bench/ASSIST.md, session 42). Only the share the outline covers counts:
one reaching past the box (a crescent's hollow side) still pulls the right way.
"""

from __future__ import annotations

import cv2
import numpy as np

from proposals.boxes import as_boxes, averaged_with_closest, covered_shares

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
# The colour model: COLOUR_BINS levels per RGB channel; the background's colours from a ring
# COLOUR_RING box sizes wide around the labelled box. The extent is looked for in the followed
# box grown by COLOUR_WINDOW of its size on each side, among the pixels whose colour is the
# object's with a chance above COLOUR_THRESHOLD; a piece of them counts when at least
# COLOUR_INSIDE_SHARE of it lies inside the followed box.
COLOUR_BINS = 16
COLOUR_RING = 0.5
COLOUR_WINDOW = 0.5
COLOUR_THRESHOLD = 0.6
COLOUR_INSIDE_SHARE = 0.5
MIN_COLOUR_PIXELS = 16
COLOUR_MIN_IOU = 0.5
COLOUR_WEIGHT = 1 / 3
# A model is used only where its outline in the frame it was learned from covers at least this
# share of the labelled box: an outline inside the box covering less is at IoU under 0.7 with
# it, a box a person would not accept.
COLOUR_MIN_COVER = 0.7
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
    return _pulled_each(boxes, lambda row, box: object_outline(rgb, box), min_iou=min_iou, weight=weight)


def _pulled_each(boxes, outline_of, *, min_iou: float, weight: float) -> np.ndarray:
    """``boxes`` each moved ``weight`` of the way to ``outline_of(row, box)`` (None: none) where
    the two overlap at IoU ``min_iou`` or more (the same pull as towards the candidates' outlines
    in proposals.regions). Returns a new ``float32 [N, 4]``."""
    pulled = as_boxes(boxes).copy()
    for row, box in enumerate(pulled.copy()):
        outline = outline_of(row, box)
        if outline is not None:
            pulled[row] = averaged_with_closest(box[None], outline[None], min_iou=min_iou, weight=weight)[0]
    return pulled


def _crop_around(shape, box, grow: float) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) pixels of ``box`` grown by ``grow`` of its size on each side,
    cut to the frame; None for a box under MIN_OUTLINE_SIDE a side."""
    height, width = shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    box_w, box_h = x2 - x1, y2 - y1
    if box_w < MIN_OUTLINE_SIDE or box_h < MIN_OUTLINE_SIDE:
        return None
    left, top = int(max(0.0, np.floor(x1 - grow * box_w))), int(max(0.0, np.floor(y1 - grow * box_h)))
    right, bottom = int(min(width, np.ceil(x2 + grow * box_w))), int(min(height, np.ceil(y2 + grow * box_h)))
    return (left, top, right, bottom) if right > left and bottom > top else None


def _inside(shape, origin: tuple[int, int], box) -> np.ndarray:
    """bool mask of ``shape`` (a crop at ``origin`` of the frame) that ``box`` covers."""
    mask = np.zeros(shape[:2], bool)
    x1, y1, x2, y2 = (float(v) for v in box)
    left, top = int(max(0, round(x1) - origin[0])), int(max(0, round(y1) - origin[1]))
    mask[top:max(top, int(round(y2)) - origin[1]), left:max(left, int(round(x2)) - origin[0])] = True
    return mask


def _colour_bins(pixels: np.ndarray) -> np.ndarray:
    """Each RGB pixel's histogram bin (``intp [..., 3]``)."""
    return (pixels // (256 // COLOUR_BINS)).astype(np.intp)


def colour_model(rgb: np.ndarray, box, others=()) -> np.ndarray | None:
    """``float64 [B, B, B]``: for each colour bin, how likely a pixel of that colour is the
    object's, from ``box`` in ``rgb`` (a frame where it is labelled): the share of the box's
    pixels (less those ``others`` cover) against that of a ring COLOUR_RING box sizes wide
    around it. None where the box is too small or has no ring around it, and where the model's
    own outline there (:func:`colour_outline`) covers less than COLOUR_MIN_COVER of the box."""
    if rgb.ndim != 3:
        return None
    area = _crop_around(rgb.shape, box, COLOUR_RING)
    if area is None:
        return None
    left, top, right, bottom = area
    crop = rgb[top:bottom, left:right]
    inside = _inside(crop.shape, (left, top), box)
    ring = ~inside
    for other in as_boxes(others):
        inside &= ~_inside(crop.shape, (left, top), other)
    if inside.sum() < MIN_COLOUR_PIXELS or ring.sum() < MIN_COLOUR_PIXELS:
        return None
    bins = _colour_bins(crop)
    shape = (COLOUR_BINS,) * 3
    histograms = []
    for pixels in (inside, ring):
        flat = np.ravel_multi_index(tuple(bins[pixels].T), shape)
        histograms.append(np.bincount(flat, minlength=COLOUR_BINS ** 3).reshape(shape) / pixels.sum())
    own, around = histograms
    model = own / (own + around + 1e-6)
    # Where the object's colours are also its surroundings' (a dark cat on a dark street), the
    # model sees only a part of it even where it is labelled, and would pull the box in onto
    # that part wherever it is followed; the accepted boxes then shrink frame after frame.
    found = colour_outline(rgb, box, model)
    if found is None or covered_shares(np.asarray(box, np.float32)[None], found[None])[0, 0] < COLOUR_MIN_COVER:
        return None
    return model


def colour_outline(rgb: np.ndarray, box, model: np.ndarray) -> np.ndarray | None:
    """The tight box (``float32 [4]`` xyxy) of the pieces of pixels around ``box`` in ``rgb``
    whose colours ``model`` (:func:`colour_model`) gives to the object, of those that lie mostly
    inside the box; None where there are none."""
    area = _crop_around(rgb.shape, box, COLOUR_WINDOW)
    if area is None or rgb.ndim != 3:
        return None
    left, top, right, bottom = area
    bins = _colour_bins(rgb[top:bottom, left:right])
    is_object = (model[bins[..., 0], bins[..., 1], bins[..., 2]] > COLOUR_THRESHOLD).astype(np.uint8)
    is_object = cv2.morphologyEx(is_object, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, pieces, stats, _ = cv2.connectedComponentsWithStats(is_object)
    inside = _inside(is_object.shape, (left, top), box)
    inside_counts = np.bincount(pieces[inside], minlength=count)
    kept = [piece for piece in range(1, count)
            if inside_counts[piece] >= COLOUR_INSIDE_SHARE * stats[piece, cv2.CC_STAT_AREA]]
    if not kept:
        return None
    x, y, w, h = (stats[kept, i] for i in range(4))
    return np.array([left + x.min(), top + y.min(), left + (x + w).max(), top + (y + h).max()], np.float32)


def pulled_to_colour_outlines(rgb: np.ndarray, boxes, models, *, min_iou: float = COLOUR_MIN_IOU,
                              weight: float = COLOUR_WEIGHT) -> np.ndarray:
    """``boxes`` (``float32 [N, 4]``) each moved ``weight`` of the way to its
    :func:`colour_outline` under its own model (``models[i]``, None: left as it is) where the two
    overlap at IoU ``min_iou`` or more. Returns a new ``float32 [N, 4]``."""
    return _pulled_each(boxes, lambda row, box: None if models[row] is None else colour_outline(rgb, box, models[row]),
                        min_iou=min_iou, weight=weight)
