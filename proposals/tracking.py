"""Carry confirmed boxes to nearby frames of the same shot with sparse optical flow.

OpenCV's learned trackers (Nano, Vit, DaSiamRPN, GOTURN) need model files we do not ship and
MIL follows one box at a time slowly, so propagation uses pyramidal Lucas-Kanade on corners
inside each box: one forward and one backward pass for all boxes together, a forward-backward
check to drop unreliable points, then the median shift and median pairwise-distance ratio
(scale) of the surviving points move the box.

Frames to label are often a second or more apart, further than flow can follow. A box that
flow loses is looked for again (:func:`redetect_boxes`): its content is matched, at a few
scales, against a window around where it was, by normalised cross-correlation. How far an
object may have moved, and how much it may have grown or shrunk, grows with the time
between the frames, so the window and the scales searched grow with it
(:func:`search_range`, as the square root of the time, as a random walk spreads). A fixed
range is either too narrow for frames seconds apart (the object is outside it) or too wide
for frames a second apart (more look-alikes to be fooled by).

Both steps also compare colours (:func:`colour_similarity`). Flow and correlation work on
brightness patterns with each channel's mean taken out, so both are fooled by textured
background and by look-alikes of another colour. An object keeps its colours over a second.
On the generated videos, of boxes carried a second, the colour check told the lost ones
(IoU < 0.5) from the rest with an AUC of 0.90-0.98, where flow's confidence alone had
0.73-0.77. So a box's confidence includes it (lost boxes are then shown less and looked
for again), and re-detection picks, among a few places per scale, the best in both.

Where the video is at hand, boxes are also followed through its frames between the two, a
fifth of a second at a time, by flow alone (:func:`propagate_boxes_through`): small steps keep
to an object that one jump of seconds loses to a look-alike or to textured ground. A chain of
searches, one per step, did far worse (of boxes carried a second on the generated videos, 18.7 /
16.8 % ended off their objects instead of 10.8 / 7.8 %): each step is another chance to jump to a
look-alike. So a box flow lets go of at any step keeps the one jump's answer.

The boxes of one labelled frame are distinct objects, so two of them that land on one place
cannot both be right: the less sure one has most often jumped to a look-alike (another
croissant, another mug) whose own box followed it there. It is looked for again with the
places already taken left out (:func:`separate_collisions`). On two generated counter videos
the boxes carried a second that end off their objects fell from 11.8 and 14.4 % to 10.8 and
13.5 % (bench/tracking.py); night's hardly moved.

Most boxes still lost overlap another object, in the labelled frame or in the one proposed
for (on the generated videos, of the boxes carried from both sides a second that ended below
IoU 0.7, 20 of 21 on counter and 13 of 15 on night; of all boxes, 44 % and 37 %). A box
that overlaps another labelled box holds part of that other object, or of its own hidden
behind it, and matching that part pulls the search towards the other object's place. So
re-detection leaves the pixels of a box that other boxes of its frame cover out of its
template (a masked correlation), whichever of the two is in front. Offline (bench/tracking.py,
counter / night), the tracker's cost from both sides a second away fell from 0.222 / 0.200 to
0.212 / 0.194, from a second before from 0.258 / 0.238 to 0.243 / 0.224, from two seconds before
from 0.304 / 0.263 to 0.298 / 0.230, and on two other videos of the looks (seeds +10, both
sides) from 0.255 / 0.213 to 0.246 / 0.201.

The same holds in the frame proposed for: an object partly behind another there is matched
against that other object's pixels too, and its colours include the other's, so it is found
unsure, or elsewhere, and hidden. So a box carried with little confidence onto a place that a
surer carried box overlaps is looked for again with the surer box's pixels left out of the frame
searched (:func:`look_behind`; a normalised correlation masked on both sides). Offline, from
both sides a second away, the tracker's cost fell from 0.212 / 0.194 to 0.200 / 0.183 (counter /
night), from a second before from 0.243 / 0.224 to 0.237 / 0.210, from two seconds before from
0.298 / 0.230 to 0.294 / 0.221, and on the seeds +10 from 0.246 / 0.201 to 0.247 / 0.184.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from proposals.boxes import as_boxes, clip_boxes, iou_matrix, valid_box_mask

LK_PARAMS = dict(
    winSize=(21, 21),
    # 4 pyramid levels follow shifts up to roughly 2**4 * 10 pixels, enough for a few frames' gap.
    maxLevel=4,
    criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01),
    minEigThreshold=1e-4,
)
APPEARANCE_PATCH = (24, 24)
# Flow: corners tracked per box, and the largest forward-backward round trip (pixels) a point
# may make and still count.
FLOW_POINTS_PER_BOX = 40
FORWARD_BACKWARD_MAX_PIXELS = 1.0
# Re-detection: the window searched around a lost box (in box sizes, and in shares of the
# frame's shorter side, whichever is larger), the scales tried, and the working resolution.
# A small object crosses as many pixels in a second as a large one, so many box sizes: on the
# generated night videos, lights and signs a tenth of the frame high moved six to eight box
# sizes in a second, out of a window of a fifth of the frame. Half the frame found them
# (boxes lost a second apart, three night videos: 8.8 / 13.6 / 13.0 % -> 7.8 / 9.3 / 9.2 %); the
# whole frame lost more again, to look-alikes.
SEARCH_MARGIN_BOXES = 4.0
SEARCH_MARGIN_FRAME = 0.5
# For frames up to a second apart: scales 1/1.25 .. 1.25 in steps of SCALE_STEP; the range
# grows with the square root of the time, to at most MAX_SCALE and MAX_MARGIN_BOXES.
SCALE_PER_SECOND = 1.25
SCALE_STEP = SCALE_PER_SECOND**0.5
MAX_SCALE = 1.6
MAX_MARGIN_BOXES = 8.0
TEMPLATE_LONG_SIDE = 32
# Below this flow confidence a box is looked for again.
REDETECT_BELOW = 0.5
# Frames seconds apart are also followed through the video's frames between them, this far
# apart, and a box whose flow held at every step (confidence at least HELD_BY_FLOW) is taken
# from there. Followed from a labelled frame two seconds before, on the generated videos the
# tracker's cost (bench/tracking.py --sources prev2) fell from 0.351 / 0.312 to 0.304 / 0.263.
FLOW_STEP_SECONDS = 0.2
HELD_BY_FLOW = 0.3
# Estimates of one object carried from different labelled frames overlap at least this much.
AGREE_IOU = 0.5
# Hue x saturation bins of the colour check (see colour_similarity).
COLOUR_BINS = (12, 8)
# Re-detection weighs this many places per scale by their colour: the best correlation is
# often a look-alike or a patch of textured background, and the object among the next few.
PEAKS_PER_SCALE = 3
# Two boxes carried from one frame collide when they overlap this much after and less than
# SOURCE_APART_IOU before; a place overlapping a taken box this much is taken.
COLLIDE_IOU = 0.5
SOURCE_APART_IOU = 0.3
TAKEN_IOU = 0.3
# Looking again around taken places, this many more places per scale are weighed, since the
# best ones are often the taken ones.
EXTRA_PEAKS_WHEN_TAKEN = 2
# Re-detection matches a template with the other labelled boxes' pixels left out while at
# least this share of it is left; a box mostly covered is matched whole.
MIN_TEMPLATE_SHARE_OWN = 0.4
MIN_OWN_PIXELS = 4
# A box carried with less confidence than LOOK_BEHIND_BELOW onto a place that a box at least
# HIDES_WHEN_SURE sure overlaps is looked for again with that box's pixels left out of the
# frame searched, at places where at least MIN_VISIBLE_SHARE of its template stays in view.
LOOK_BEHIND_BELOW = 0.6
HIDES_WHEN_SURE = 0.4
MIN_VISIBLE_SHARE = 0.4


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """``uint8 [H, W, 3]`` RGB (or already gray ``[H, W]``) -> ``uint8 [H, W]``."""
    return rgb if rgb.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def _points_in_box(gray: np.ndarray, box: np.ndarray, max_points: int) -> np.ndarray:
    """Trackable points inside ``box``: ``float32 [P, 2]`` (x, y), possibly empty.

    Corners first; a small grid tops them up on weakly textured boxes so that edges still
    contribute (LK itself rejects the flat points through ``minEigThreshold``).
    """
    x1, y1, x2, y2 = np.round(box).astype(int)
    patch = gray[y1:y2, x1:x2]
    if patch.shape[0] < 3 or patch.shape[1] < 3:
        return np.zeros((0, 2), dtype=np.float32)
    min_distance = max(2.0, min(patch.shape) / 12.0)
    corners = cv2.goodFeaturesToTrack(patch, max_points, 0.01, min_distance, blockSize=3)
    points = np.zeros((0, 2), np.float32) if corners is None else corners.reshape(-1, 2)
    if len(points) < max_points // 2:
        xs = np.linspace(0.15, 0.85, 5) * patch.shape[1]
        ys = np.linspace(0.15, 0.85, 5) * patch.shape[0]
        grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2).astype(np.float32)
        points = np.concatenate([points, grid])
    return points + np.array([x1, y1], dtype=np.float32)


def _median_scale(before: np.ndarray, after: np.ndarray) -> float:
    """Median ratio of pairwise point distances after/before motion (1.0 with < 3 points)."""
    if len(before) < 3:
        return 1.0
    i, j = np.triu_indices(len(before), k=1)
    distance_before = np.linalg.norm(before[i] - before[j], axis=1)
    distance_after = np.linalg.norm(after[i] - after[j], axis=1)
    usable = distance_before > 2.0
    if not usable.any():
        return 1.0
    return float(np.clip(np.median(distance_after[usable] / distance_before[usable]), 0.5, 2.0))


def _appearance_similarity(gray_a: np.ndarray, box_a, gray_b: np.ndarray, box_b) -> float:
    """Normalised cross-correlation in [0, 1] of the two box contents, resized to one size.

    Catches flow that "succeeds" on the wrong content (e.g. a cut or an occluder).
    """
    patches = []
    for gray, box in ((gray_a, box_a), (gray_b, box_b)):
        x1, y1, x2, y2 = np.round(box).astype(int)
        patch = gray[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)]
        if patch.size == 0:
            return 0.0
        patches.append(cv2.resize(patch, APPEARANCE_PATCH, interpolation=cv2.INTER_AREA).astype(np.float32))
    a, b = (p - p.mean() for p in patches)
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    if denominator < 1e-6:
        # Two flat patches: only equal brightness counts as a match.
        return float(abs(patches[0].mean() - patches[1].mean()) < 10.0)
    return float(np.clip((a * b).sum() / denominator, 0.0, 1.0))


def colour_histogram(rgb: np.ndarray, box, left_out=()) -> np.ndarray | None:
    """Hue-saturation histogram (L1-normalised) of the box's content in a ``[H, W, 3]`` RGB frame,
    without the pixels of the ``left_out`` boxes (xyxy in the same frame); None for a grey frame
    or where no pixel is left."""
    if rgb.ndim != 3:
        return None
    x1, y1, x2, y2 = np.round(box).astype(int)
    x1, y1 = max(x1, 0), max(y1, 0)
    patch = rgb[y1:max(y2, y1), x1:max(x2, x1)]
    if patch.size == 0:
        return None
    kept = outside_boxes(patch.shape[:2], (x1, y1), left_out)
    if kept is not None and not kept.any():
        return None
    hsv = cv2.cvtColor(np.ascontiguousarray(patch), cv2.COLOR_RGB2HSV)
    histogram = cv2.calcHist([hsv], [0, 1], kept, list(COLOUR_BINS), [0, 180, 0, 256])
    return cv2.normalize(histogram, histogram, 1.0, 0.0, cv2.NORM_L1)


def histogram_similarity(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """One minus the Bhattacharyya distance of two colour histograms; 0 where either is None."""
    if a is None or b is None:
        return 0.0
    return float(np.clip(1.0 - cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA), 0.0, 1.0))


def colour_weight(template_colours: np.ndarray | None, rgb: np.ndarray, box, left_out=()) -> float:
    """How much a place in ``rgb`` keeps of its pattern match for its colours: the
    similarity of the box's colours (without the ``left_out`` boxes' pixels) to
    ``template_colours`` (:func:`colour_histogram`), or 1 where colour says nothing (no
    template colours, or a grey frame)."""
    if template_colours is None or rgb.ndim != 3:
        return 1.0
    return histogram_similarity(template_colours, colour_histogram(rgb, box, left_out))


def colour_similarity(rgb_a: np.ndarray, box_a, rgb_b: np.ndarray, box_b) -> float:
    """How alike the colours of two box contents are, in [0, 1]: one minus the Bhattacharyya
    distance of their hue-saturation histograms. 1 for grey frames, where colour says nothing;
    0 where a box holds no pixel."""
    if rgb_a.ndim != 3 or rgb_b.ndim != 3:
        return 1.0
    return histogram_similarity(colour_histogram(rgb_a, box_a), colour_histogram(rgb_b, box_b))


def search_range(seconds_apart: float) -> tuple[np.ndarray, float]:
    """``(float64 [S] scales, window margin in box sizes)`` to look for a box in a frame
    ``seconds_apart`` from the one it was drawn in (a second or less: the base range)."""
    spread = np.sqrt(max(1.0, float(seconds_apart)))
    widest = min(MAX_SCALE, SCALE_PER_SECOND**spread)
    steps = int(np.ceil(np.log(widest) / np.log(SCALE_STEP) - 1e-6))
    return SCALE_STEP ** np.arange(-steps, steps + 1), min(MAX_MARGIN_BOXES, SEARCH_MARGIN_BOXES * spread)


def outside_boxes(shape: tuple[int, int], origin: tuple[int, int], boxes) -> np.ndarray | None:
    """``uint8 [h, w]`` mask of an image part of ``shape`` cut at ``origin`` (x, y) from its frame:
    1 where none of ``boxes`` (float [K, 4] xyxy in that frame) lies, 0 where one does; None
    where none of them covers any of it."""
    boxes = as_boxes(boxes)
    if not len(boxes):
        return None
    kept = np.ones(shape, np.uint8)
    left, top = origin
    for x1, y1, x2, y2 in boxes.tolist():
        rows = slice(max(0, int(y1) - top), max(0, int(np.ceil(y2)) - top))
        kept[rows, max(0, int(x1) - left):max(0, int(np.ceil(x2)) - left)] = 0
    return None if kept.all() else kept


def own_pixels(shape: tuple[int, int], origin: tuple[int, int], others) -> np.ndarray | None:
    """``uint8 [h, w]`` mask of a template of ``shape`` cut at ``origin`` (x, y) from its frame:
    1 where none of ``others`` (float [K, 4] xyxy boxes in that frame) lies, 0 where one does;
    None where nothing is covered, or too much (less than MIN_TEMPLATE_SHARE_OWN would be left)."""
    own = outside_boxes(shape, origin, others)
    if own is None or own.mean() < MIN_TEMPLATE_SHARE_OWN:
        return None
    return own


def masked_correlation(
    window: np.ndarray, template: np.ndarray, mask: np.ndarray, window_mask: np.ndarray | None = None,
    min_in_view: float = 0.0,
) -> np.ndarray:
    """``cv2.matchTemplate(window, template, cv2.TM_CCOEFF_NORMED, mask=mask)`` (``uint8 [h, w, 3]``
    or grey ``[h, w]`` images, ``uint8 [th, tw]`` 0/1 mask with some 1s), built from plain
    correlations: OpenCV's own masked path takes four times as long as an unmasked match, this
    about twice. Places where the window is flat under the mask score -1 (OpenCV gives NaN or
    infinity there).

    Over the masked pixels, with the template's channel means taken out (``centred``, zero
    outside the mask), the numerator is the correlation of the window with ``centred``; the
    window's own variance there is its masked sum of squares less its masked sums squared
    over the pixel count.

    With ``window_mask`` (``uint8 [h, w]`` 0/1), the window's 0 pixels are left out too, so each
    place is scored over the template pixels that fall on the window's 1s, with both means
    taken over those (Padfield's masked normalised cross-correlation, IEEE TIP 2012); OpenCV
    has no such mode. It takes five plain correlations per channel. Places where less than
    ``min_in_view`` of the template's mask falls on the window's 1s score -1 too.
    """
    if window_mask is not None:
        return _masked_both_correlation(window, template, mask, window_mask, min_in_view)
    image, pattern, weight = window.astype(np.float32), template.astype(np.float32), mask.astype(np.float32)
    if image.ndim == 2:  # grey
        image, pattern = image[..., None], pattern[..., None]
    image -= image.mean(axis=(0, 1))  # changes no score; smaller squares lose less to rounding
    count = float(weight.sum())
    weights = np.repeat(weight[..., None], pattern.shape[2], axis=2)
    centred = (pattern - (pattern * weights).sum(axis=(0, 1)) / count) * weights
    numerator = cv2.matchTemplate(image, centred, cv2.TM_CCORR)
    sums = [cv2.matchTemplate(np.ascontiguousarray(image[..., c]), weight, cv2.TM_CCORR) for c in range(image.shape[2])]
    variance = cv2.matchTemplate(image * image, weights, cv2.TM_CCORR) - sum(s * s for s in sums) / count
    denominator = np.sqrt(np.maximum(variance, 0.0) * float((centred * centred).sum()))
    scores = np.full(numerator.shape, -1.0, np.float32)
    # Flat: under a hundredth of a grey level squared per pixel, which is rounding, not texture.
    np.divide(numerator, denominator, out=scores, where=variance > 0.01 * count)
    return scores


def _masked_both_correlation(
    window: np.ndarray, template: np.ndarray, mask: np.ndarray, window_mask: np.ndarray, min_in_view: float
) -> np.ndarray:
    """:func:`masked_correlation` with pixels left out of both the template and the window."""
    image, pattern = window.astype(np.float32), template.astype(np.float32)
    if image.ndim == 2:  # grey
        image, pattern = image[..., None], pattern[..., None]
    image -= image.mean(axis=(0, 1))  # changes no score; smaller squares lose less to rounding
    seen, weight = window_mask.astype(np.float32), mask.astype(np.float32)

    def correlate(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return cv2.matchTemplate(np.ascontiguousarray(a), np.ascontiguousarray(b), cv2.TM_CCORR)

    count = correlate(seen, weight)  # the pixels both keep, per place
    some = (count > 0.5) & (count >= min_in_view * float(weight.sum()))  # sums of 0/1 products, up to rounding
    count = np.maximum(count, 1.0)
    numerator = template_variance = window_variance = 0.0
    for channel in range(image.shape[2]):
        kept_image, kept_pattern = image[..., channel] * seen, pattern[..., channel] * weight
        pattern_sums, image_sums = correlate(seen, kept_pattern), correlate(kept_image, weight)
        numerator = numerator + correlate(kept_image, kept_pattern) - pattern_sums * image_sums / count
        template_variance = template_variance + correlate(seen, kept_pattern * pattern[..., channel]) - (
            pattern_sums * pattern_sums / count)
        window_variance = window_variance + correlate(kept_image * image[..., channel], weight) - (
            image_sums * image_sums / count)
    denominator = np.sqrt(np.maximum(template_variance, 0.0) * np.maximum(window_variance, 0.0))
    scores = np.full(numerator.shape, -1.0, np.float32)
    flat = 0.01 * count  # as in masked_correlation: rounding, not texture
    np.divide(numerator, denominator, out=scores, where=some & (window_variance > flat) & (template_variance > flat))
    return scores


def overlapping_others(boxes, rows) -> list[np.ndarray]:
    """For each of ``rows`` of ``boxes`` (float [N, 4] xyxy of one frame), ``float32 [K, 4]`` the
    other boxes that overlap it (``redetect_boxes``'s ``others``)."""
    boxes = as_boxes(boxes)
    overlap = iou_matrix(boxes, boxes) > 0
    np.fill_diagonal(overlap, False)
    return [boxes[overlap[row]] for row in rows]


def redetect_boxes(
    prev_rgb: np.ndarray,
    next_rgb: np.ndarray,
    boxes,
    *,
    seconds_apart: float = 1.0,
    taken: Sequence[np.ndarray] | None = None,
    others: Sequence[np.ndarray] | None = None,
    hidden: Sequence[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Find each box of ``prev_rgb`` again in ``next_rgb`` by its appearance.

    Args:
        prev_rgb, next_rgb: ``uint8 [H, W, 3]`` RGB frames of the same size.
        boxes: ``float32 [N, 4]`` xyxy pixels in ``prev_rgb``.
        seconds_apart: time between the two frames; sets how far and over which scales to look.
        taken: optional, per box, ``float32 [K, 4]`` places in ``next_rgb`` held by other
            objects; a place overlapping one at IoU >= ``TAKEN_IOU`` is not chosen.
        others: optional, per box, ``float32 [K, 4]`` the other labelled boxes of ``prev_rgb``
            that overlap it; their pixels are left out of its template (:func:`own_pixels`).
        hidden: optional, per box, ``float32 [K, 4]`` places in ``next_rgb`` of objects that may
            stand in front of it there; their pixels are left out of the frame searched and of
            the colour check, and a place keeps at least ``MIN_VISIBLE_SHARE`` of the template
            in view (the box found is the whole template's, hidden part included).
    Returns:
        ``(boxes float32 [N, 4], confidence float32 [N] in [0, 1])``: the best match of the box's
        content over a window around it and a few scales, and its correlation times its colour
        similarity (0 where the box is too small to match).
    """
    boxes = as_boxes(boxes)
    height, width = prev_rgb.shape[:2]
    found = boxes.copy()
    confidence = np.zeros(len(boxes), np.float32)
    scales, margin_boxes = search_range(seconds_apart)
    for index, box in enumerate(clip_boxes(boxes, width, height)):
        x1, y1, x2, y2 = box
        box_w, box_h = x2 - x1, y2 - y1
        if box_w < 4 or box_h < 4:
            continue
        # Work at a resolution where the template's long side is TEMPLATE_LONG_SIDE pixels.
        factor = min(1.0, TEMPLATE_LONG_SIDE / max(box_w, box_h))
        margin = max(margin_boxes * max(box_w, box_h), SEARCH_MARGIN_FRAME * min(width, height))
        wx1, wy1 = int(max(0, x1 - margin)), int(max(0, y1 - margin))
        wx2, wy2 = int(min(width, x2 + margin)), int(min(height, y2 + margin))
        template = prev_rgb[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))]
        template_colours = colour_histogram(prev_rgb, box)
        own = own_pixels(template.shape[:2], (int(x1), int(y1)), others[index] if others is not None else [])
        held = as_boxes(taken[index]) if taken is not None else as_boxes([])
        peaks = PEAKS_PER_SCALE + (EXTRA_PEAKS_WHEN_TAKEN if len(held) else 0)
        in_front = as_boxes(hidden[index]) if hidden is not None else as_boxes([])
        window = next_rgb[wy1:wy2, wx1:wx2]
        small_window = cv2.resize(window, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        in_view = outside_boxes(window.shape[:2], (wx1, wy1), in_front)
        if in_view is not None:
            in_view = cv2.resize(in_view, small_window.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        best = (-1.0, None)
        for scale in scales.tolist():
            size = (max(2, round(box_w * scale * factor)), max(2, round(box_h * scale * factor)))
            if size[0] >= small_window.shape[1] or size[1] >= small_window.shape[0]:
                continue
            small_template = cv2.resize(template, size, interpolation=cv2.INTER_AREA)
            if float(small_template.std()) < 1.0:
                continue  # a flat box matches anything
            small_own = None if own is None else cv2.resize(own, size, interpolation=cv2.INTER_NEAREST)
            if small_own is None or small_own.sum() < MIN_OWN_PIXELS:
                small_own = None if in_view is None else np.ones(size[::-1], np.uint8)
            if in_view is not None:
                scores = masked_correlation(small_window, small_template, small_own, in_view, MIN_VISIBLE_SHARE)
            elif small_own is None:
                scores = cv2.matchTemplate(small_window, small_template, cv2.TM_CCOEFF_NORMED)
            else:
                scores = masked_correlation(small_window, small_template, small_own)
            for _ in range(peaks):
                _, score, _, (left, top) = cv2.minMaxLoc(scores)
                if score <= 0:
                    break
                candidate = np.array([left / factor + wx1, top / factor + wy1, 0, 0], np.float32)
                candidate[2:] = candidate[:2] + (box_w * scale, box_h * scale)
                # Blank out this peak (half a template around it) to find the next-best place.
                half_w, half_h = max(1, size[0] // 2), max(1, size[1] // 2)
                scores[max(0, top - half_h):top + half_h + 1, max(0, left - half_w):left + half_w + 1] = -1.0
                if len(held) and iou_matrix(candidate[None], held).max() >= TAKEN_IOU:
                    continue
                score *= colour_weight(template_colours, next_rgb, candidate, in_front)
                if score > best[0]:
                    best = (score, candidate)
        if best[1] is not None:
            found[index] = best[1]
            confidence[index] = float(np.clip(best[0], 0.0, 1.0))
    return clip_boxes(found, width, height), confidence


def propagate_boxes(
    prev_rgb: np.ndarray,
    next_rgb: np.ndarray,
    boxes,
    *,
    seconds_apart: float = 1.0,
    between: Sequence[np.ndarray] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Move ``boxes`` from ``prev_rgb`` to ``next_rgb``.

    Args:
        prev_rgb, next_rgb: ``uint8 [H, W, 3]`` RGB frames of the same size.
        boxes: ``float32 [N, 4]`` xyxy pixels in ``prev_rgb``.
        seconds_apart: time between the frames, for boxes that flow loses (:func:`redetect_boxes`).
        between: optional video frames between the two, in order from ``prev_rgb``, about
            ``FLOW_STEP_SECONDS`` apart (see :func:`propagate_boxes_through`).
    Returns:
        ``(boxes float32 [N, 4], confidence float32 [N] in [0, 1])``. Confidence is the share of
        points passing the forward-backward check times the appearance and colour similarities
        of the box before and after; a box that cannot be followed keeps its position with
        confidence 0.
    """
    boxes = as_boxes(boxes)
    height, width = prev_rgb.shape[:2]
    moved, confidence = follow_with_flow(prev_rgb, next_rgb, boxes)
    lost = np.flatnonzero(confidence < REDETECT_BELOW)
    if len(lost):
        found, found_confidence = redetect_boxes(
            prev_rgb, next_rgb, boxes[lost], seconds_apart=seconds_apart, others=overlapping_others(boxes, lost)
        )
        better = found_confidence > confidence[lost]
        moved[lost[better]] = found[better]
        confidence[lost[better]] = found_confidence[better]
    moved, confidence = separate_collisions(prev_rgb, next_rgb, boxes, moved, confidence, seconds_apart=seconds_apart)
    if len(between) and len(boxes):
        # Flow alone, step by step (see the module's docstring); a box it lets go of keeps the
        # one jump's answer.
        chained, held = propagate_boxes_through([prev_rgb, *between, next_rgb], boxes)
        kept = held >= HELD_BY_FLOW
        moved[kept] = chained[kept]
        confidence[kept] = np.maximum(confidence[kept], held[kept])
    moved, confidence = look_behind(prev_rgb, next_rgb, boxes, moved, confidence, seconds_apart=seconds_apart)
    return clip_boxes(moved, width, height), confidence


def frames_between(source: int, target: int, step_frames: float) -> list[int]:
    """Numbers of the frames strictly between frame ``source`` and frame ``target``, about
    ``step_frames`` apart and evenly spaced, in order from ``source`` (for ``between``)."""
    gap = target - source
    steps = max(1, round(abs(gap) / step_frames)) if step_frames > 0 else 1
    return [source + round(gap * step / steps) for step in range(1, steps)]


def follow_with_flow(prev_rgb: np.ndarray, next_rgb: np.ndarray, boxes) -> tuple[np.ndarray, np.ndarray]:
    """Move ``boxes`` from ``prev_rgb`` to ``next_rgb`` by optical flow alone: the median
    shift and scale of the box's points that pass the forward-backward check.

    Returns ``(boxes float32 [N, 4] clipped to the frame, confidence float32 [N] in [0, 1])``,
    as :func:`propagate_boxes`; a box flow cannot follow keeps its place with confidence 0.
    """
    boxes = as_boxes(boxes)
    height, width = prev_rgb.shape[:2]
    moved = clip_boxes(boxes, width, height)
    confidence = np.zeros(len(boxes), dtype=np.float32)
    if len(boxes) == 0:
        return moved, confidence
    gray_prev, gray_next = to_gray(prev_rgb), to_gray(next_rgb)

    valid = valid_box_mask(moved, min_size=3.0)
    point_sets = [
        _points_in_box(gray_prev, box, FLOW_POINTS_PER_BOX) if ok else np.zeros((0, 2), np.float32)
        for box, ok in zip(moved, valid)
    ]
    owners = np.concatenate([np.full(len(p), i) for i, p in enumerate(point_sets)]).astype(int)
    if len(owners) == 0:
        return moved, confidence
    start = np.concatenate(point_sets).reshape(-1, 1, 2)
    forward, status_forward, _ = cv2.calcOpticalFlowPyrLK(gray_prev, gray_next, start, None, **LK_PARAMS)
    backward, status_backward, _ = cv2.calcOpticalFlowPyrLK(gray_next, gray_prev, forward, None, **LK_PARAMS)
    start, forward, backward = start.reshape(-1, 2), forward.reshape(-1, 2), backward.reshape(-1, 2)
    round_trip_error = np.linalg.norm(start - backward, axis=1)
    reliable = (status_forward.ravel() == 1) & (status_backward.ravel() == 1)
    reliable &= round_trip_error < FORWARD_BACKWARD_MAX_PIXELS

    trackable = status_forward.ravel() == 1
    for index, box in enumerate(moved.copy()):
        mine = owners == index
        if not mine.any():
            continue
        keep = mine & reliable
        if keep.sum() < 2:
            continue
        shift = np.median(forward[keep] - start[keep], axis=0)
        scale = _median_scale(start[keep], forward[keep])
        centre = (box[:2] + box[2:]) / 2 + shift
        half_size = (box[2:] - box[:2]) * scale / 2
        new_box = np.concatenate([centre - half_size, centre + half_size])
        moved[index] = new_box
        # Flat points that LK refuses from the start say nothing about this frame pair.
        inlier_share = keep.sum() / max(1, (mine & trackable).sum())
        confidence[index] = (
            inlier_share * _appearance_similarity(gray_prev, box, gray_next, new_box)
            * colour_similarity(prev_rgb, box, next_rgb, new_box)
        )
    return clip_boxes(moved, width, height), confidence


def separate_collisions(
    prev_rgb: np.ndarray, next_rgb: np.ndarray, boxes, moved, confidence, *, seconds_apart: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Where two of ``boxes`` (distinct in ``prev_rgb``) landed on one place in ``next_rgb``,
    look for the less sure one again with the places of the others left out.

    Args:
        prev_rgb, next_rgb: ``uint8 [H, W, 3]`` RGB frames of the same size.
        boxes: ``float32 [N, 4]`` xyxy in ``prev_rgb``; moved, confidence: where they were carried
            in ``next_rgb`` (``float32 [N, 4]``, ``float32 [N]``).
    Returns:
        ``(float32 [N, 4], float32 [N])``: copies, with each colliding box that a surer one holds
        moved to its best free place and given that place's confidence (kept where there is none).
    """
    boxes, moved = as_boxes(boxes), as_boxes(moved).copy()
    confidence = np.asarray(confidence, np.float32).copy()
    if len(boxes) < 2:
        return moved, confidence
    apart = iou_matrix(boxes, boxes) < SOURCE_APART_IOU
    for index in np.argsort(confidence, kind="stable"):  # the least sure moves first
        overlaps = iou_matrix(moved[index:index + 1], moved)[0]
        overlaps[index] = 0.0
        if not ((overlaps >= COLLIDE_IOU) & apart[index] & (confidence > confidence[index])).any():
            continue
        found, found_confidence = redetect_boxes(
            prev_rgb, next_rgb, boxes[index:index + 1], seconds_apart=seconds_apart,
            taken=[moved[overlaps >= COLLIDE_IOU]],
        )
        if found_confidence[0] > 0:
            moved[index], confidence[index] = found[0], found_confidence[0]
    return moved, confidence


def look_behind(
    prev_rgb: np.ndarray, next_rgb: np.ndarray, boxes, moved, confidence, *, seconds_apart: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Look again for each unsure box of ``boxes`` that a surer one overlaps in ``next_rgb``, with
    the surer ones' pixels left out of the frame searched: the object may be partly behind them.

    Args:
        prev_rgb, next_rgb: ``uint8 [H, W, 3]`` RGB frames of the same size.
        boxes: ``float32 [N, 4]`` xyxy in ``prev_rgb``; moved, confidence: where they were carried
            in ``next_rgb`` (``float32 [N, 4]``, ``float32 [N]``).
    Returns:
        ``(float32 [N, 4], float32 [N])``: copies, with each box under ``LOOK_BEHIND_BELOW`` that a
        box at least ``HIDES_WHEN_SURE`` (and surer) overlaps moved to the place found that way
        where its confidence there is higher, least sure first.
    """
    boxes, moved = as_boxes(boxes), as_boxes(moved).copy()
    confidence = np.asarray(confidence, np.float32).copy()
    if len(boxes) < 2:
        return moved, confidence
    for index in np.argsort(confidence, kind="stable"):
        if confidence[index] >= LOOK_BEHIND_BELOW:
            break
        overlaps = iou_matrix(moved[index:index + 1], moved)[0] > 0
        overlaps[index] = False
        in_front = overlaps & (confidence >= HIDES_WHEN_SURE) & (confidence > confidence[index])
        if not in_front.any():
            continue
        found, found_confidence = redetect_boxes(
            prev_rgb, next_rgb, boxes[index:index + 1], seconds_apart=seconds_apart,
            others=overlapping_others(boxes, [index]), hidden=[moved[in_front]],
        )
        if found_confidence[0] > confidence[index]:
            moved[index], confidence[index] = found[0], found_confidence[0]
    return moved, confidence


def propagate_boxes_through(frames: Sequence[np.ndarray], boxes) -> tuple[np.ndarray, np.ndarray]:
    """Carry ``boxes`` from ``frames[0]`` to ``frames[-1]`` one step at a time, by flow alone.

    Args:
        frames: ``uint8 [H, W, 3]`` RGB frames in order (at least one).
        boxes: ``float32 [N, 4]`` xyxy pixels in ``frames[0]``.
    Returns:
        ``(boxes float32 [N, 4], confidence float32 [N])``; confidence is the weakest step's,
        since one lost step loses the object.
    """
    current = as_boxes(boxes)
    confidence = np.ones(len(current), dtype=np.float32)
    for prev_rgb, next_rgb in zip(frames[:-1], frames[1:]):
        current, step_confidence = follow_with_flow(prev_rgb, next_rgb, current)
        confidence = np.minimum(confidence, step_confidence)
    return current, confidence


def fuse_estimates(
    estimates: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    """One box per object from the boxes carried into a frame from several labelled frames.

    Each labelled frame's tracking errs on its own (other points, other flow, another
    scale), so where two estimates of the same label agree (IoU >= ``AGREE_IOU``, matched
    one to one, most overlapping first) their mean is closer to the object than either:
    on the generated videos, carried from the frames a second before and after, 79 % of
    boxes were good enough to accept (IoU >= 0.7) keeping the more confident estimate and
    82 % with the mean (85 % -> 88 % on the night look). Estimates that agree with none
    are kept as they are.

    Agreement is also the best evidence that a box is right: of boxes carried with a flow
    confidence of 0.6-0.8, 96-98 % of those two frames agreed on were on an object, and only
    22-44 % of those that one frame alone carried (the other lost the object, or the first
    followed something else). So an object's confidence is the sum of its estimates'
    confidences over the number of labelled frames: unchanged with one, and a box no other
    frame confirms counts for less.

    Args:
        estimates: per labelled frame, ``(float32 [N, 4] xyxy, float32 [N] confidence,
            int64 [N] label ids)`` in the frame proposed for.
    Returns:
        ``(float32 [M, 4], float32 [M], int64 [M], rows)``: the mean box of each group of
        agreeing estimates with its confidence and label, then the unmatched ones; ``rows[k]``
        (int64 [N_k]) is the row each box of estimate ``k`` went to.
    """
    totals = np.zeros((0, 4), np.float64)
    counts = np.zeros(0, np.int64)
    confidence = np.zeros(0, np.float32)
    labels = np.zeros(0, np.int64)
    rows_of_estimates = []
    for boxes, estimate_confidence, estimate_labels in estimates:
        boxes = as_boxes(boxes)
        estimate_confidence = np.asarray(estimate_confidence, np.float32).reshape(-1)
        estimate_labels = np.asarray(estimate_labels, np.int64).reshape(-1)
        overlaps = iou_matrix((totals / np.maximum(counts, 1)[:, None]).astype(np.float32), boxes)
        overlaps[labels[:, None] != estimate_labels[None, :]] = 0.0
        matched = np.zeros(len(boxes), bool)
        grown = np.zeros(len(totals), bool)  # one estimate per labelled frame and object
        row_of = np.full(len(boxes), -1, np.int64)
        rows, columns = np.nonzero(overlaps >= AGREE_IOU)
        for row, column in sorted(zip(rows, columns), key=lambda pair: -overlaps[pair]):
            if matched[column] or grown[row]:
                continue
            totals[row] += boxes[column]
            counts[row] += 1
            confidence[row] += estimate_confidence[column]
            matched[column] = grown[row] = True
            row_of[column] = row
        row_of[~matched] = len(totals) + np.arange(int((~matched).sum()))
        rows_of_estimates.append(row_of)
        totals = np.concatenate([totals, boxes[~matched].astype(np.float64)])
        counts = np.concatenate([counts, np.ones(int((~matched).sum()), np.int64)])
        confidence = np.concatenate([confidence, estimate_confidence[~matched]])
        labels = np.concatenate([labels, estimate_labels[~matched]])
    mean_boxes = (totals / np.maximum(counts, 1)[:, None]).astype(np.float32)
    return mean_boxes, confidence / max(1, len(estimates)), labels, rows_of_estimates
