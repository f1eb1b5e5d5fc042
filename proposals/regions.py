"""Region proposals: where the objects in a frame probably are, and what they probably are.

Candidate boxes come from these generators, are embedded in one batch, scored and merged
with NMS:

* propagation of confirmed boxes from neighbouring frames of the same shot (strong evidence),
* the project's trained detector, when one exists (a plain callable),
* more objects like the confirmed ones (exemplar search, for stills),
* in a video, objects that move against the scene in the frames around, the camera's own pan
  and zoom taken out,
* class-agnostic candidates from the pixels alone (a selective-search-like hierarchy of
  watershed superpixels plus MSER blobs), ranked by colour contrast with their surroundings
  times agreement between generators.

With a label index, a candidate's score mixes its generator's confidence with its objectness
(similarity to confirmed objects rather than to background), and its labels come from the
nearest confirmed examples.
"""

from __future__ import annotations

import heapq
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

from proposals.boxes import (
    as_boxes, averaged_with_closest, box_areas, clip_boxes, covered_shares, iou_matrix, nms_keep, valid_box_mask,
)
from proposals.bridging import fuse_and_bridge
from proposals.features import FeatureExtractor
from proposals.labels import BACKGROUND, LabelIndex
from proposals.outline import colour_model, pulled_to_colour_outlines, pulled_to_own_outlines
from proposals.tracking import colour_histogram, colour_weight, propagate_boxes
from proposals.types import LabelSuggestion, RegionProposal

# Segmentation runs on a reduced copy: the hierarchy cost grows with pixels, boxes do not need
# more precision than this for IoU 0.5.
WORKING_LONG_SIDE = 320
# (superpixel seed spacing in working pixels, colour space) per segmentation strategy.
SEGMENTATION_STRATEGIES = ((12, cv2.COLOR_RGB2LAB), (20, cv2.COLOR_RGB2HSV), (28, cv2.COLOR_RGB2LAB))
# Boxes from two generators with at least this IoU count as the same outline.
SUPPORT_IOU = 0.7
MAX_ASPECT_RATIO = 6.0
HISTOGRAM_BINS = 12
PALETTE_SIZE = 16
SURROUND_MARGIN = 0.35

Detector = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]
# ``rgb, float32 [N, 4] boxes, float [N] the tracker's confidence (None: not followed) ->
# float32 [N, 4]``: moves boxes to their objects' visible extent
# (proposals.training.refiner.refine_boxes with a project's refiner).
BoxRefiner = Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]
# ``(str [N] sources, float32 [N] scores, float32 [N, 4] boxes, int [N] labels (BACKGROUND where
# the source has none)) -> float [N] P(useful)``.
Chance = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
CHANCE_TIE_BREAK = 1e-3
# A followed box and a pixels' outline (a class-agnostic candidate or a moving blob) that
# overlap by an IoU of FOLLOWED_OUTLINE_IOU or more are two estimates of one object's visible
# extent: one from the labelled frame's template, which cannot see how much more of the object
# has come out from behind another or grown, one from this frame's pixels, which often take in
# a shadow or miss a part. The box shown moves FOLLOWED_OUTLINE_WEIGHT of the way to the outline.
# Measured on the followed boxes of three kept bench runs against the true boxes (session 18),
# boxes at IoU >= 0.7 with their object: +6/+7/+9 and -0/-0/-1 a third of the way, +7/+7/+13
# and -2/-5/-2 halfway.
FOLLOWED_OUTLINE_IOU = 0.5
FOLLOWED_OUTLINE_WEIGHT = 1 / 3


# --- class-agnostic candidates ---------------------------------------------------------------


def _working_copy(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """``uint8 [h, w, 3]`` reduced copy and the factor that maps its pixels back to ``rgb``."""
    height, width = rgb.shape[:2]
    factor = min(1.0, WORKING_LONG_SIDE / max(height, width))
    if factor == 1.0:
        return np.ascontiguousarray(rgb), 1.0
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), 1.0 / factor


def _superpixels(colour: np.ndarray, spacing: int) -> np.ndarray:
    """Watershed over-segmentation from one seed per ``spacing`` cell: ``int32 [h, w]`` labels 0..R-1.

    Each seed sits at the flattest pixel of its cell so that borders settle on edges.
    """
    height, width = colour.shape[:2]
    spacing = max(1, min(spacing, height, width))  # tiny images still get one seed
    gradient = cv2.morphologyEx(colour, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)).max(axis=2)
    rows, cols = max(1, height // spacing), max(1, width // spacing)
    cells = gradient[: rows * spacing, : cols * spacing].reshape(rows, spacing, cols, spacing)
    flattest = cells.transpose(0, 2, 1, 3).reshape(rows, cols, -1).argmin(axis=2)
    seed_y = (np.arange(rows)[:, None] * spacing + flattest // spacing).ravel()
    seed_x = (np.arange(cols)[None, :] * spacing + flattest % spacing).ravel()
    markers = np.zeros((height, width), np.int32)
    markers[seed_y, seed_x] = np.arange(1, len(seed_y) + 1)
    cv2.watershed(np.ascontiguousarray(colour), markers)
    # Watershed lines (-1) join the largest neighbouring label.
    grown = cv2.dilate(markers.astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int32)
    markers = np.where(markers > 0, markers, grown)
    _, labels = np.unique(markers, return_inverse=True)
    return labels.reshape(height, width).astype(np.int32)


@dataclass
class _Region:
    size: int
    box: np.ndarray  # float32 [4] xyxy in working pixels
    histogram: np.ndarray  # float32 [3 * HISTOGRAM_BINS], L1-normalised per region


def _initial_regions(labels: np.ndarray, colour: np.ndarray) -> tuple[list[_Region], set[tuple[int, int]]]:
    """Per-superpixel size, box and colour histogram, and the set of adjacent label pairs."""
    count = int(labels.max()) + 1
    flat = labels.ravel()
    sizes = np.bincount(flat, minlength=count)
    ys, xs = np.indices(labels.shape)
    x1 = np.full(count, np.inf)
    y1 = np.full(count, np.inf)
    x2 = np.zeros(count)
    y2 = np.zeros(count)
    np.minimum.at(x1, flat, xs.ravel())
    np.minimum.at(y1, flat, ys.ravel())
    np.maximum.at(x2, flat, xs.ravel() + 1)
    np.maximum.at(y2, flat, ys.ravel() + 1)
    binned = (colour.reshape(-1, 3).astype(np.int32) * HISTOGRAM_BINS) // 256
    histograms = np.concatenate(
        [
            np.bincount(flat * HISTOGRAM_BINS + binned[:, c], minlength=count * HISTOGRAM_BINS).reshape(count, -1)
            for c in range(3)
        ],
        axis=1,
    ).astype(np.float32)
    histograms /= histograms.sum(axis=1, keepdims=True)
    regions = [
        _Region(int(sizes[i]), np.array([x1[i], y1[i], x2[i], y2[i]], np.float32), histograms[i])
        for i in range(count)
    ]
    pairs = np.concatenate(
        [
            np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], axis=1),
            np.stack([labels[:-1, :].ravel(), labels[1:, :].ravel()], axis=1),
        ]
    )
    pairs = np.sort(pairs[pairs[:, 0] != pairs[:, 1]], axis=1)
    return regions, {tuple(p) for p in np.unique(pairs, axis=0).tolist()}


def _similarity(a: _Region, b: _Region, image_size: int) -> float:
    """Selective search's colour + size + fill similarity, each term in [0, 1]."""
    colour = float(np.minimum(a.histogram, b.histogram).sum()) / 3.0
    size = 1.0 - (a.size + b.size) / image_size
    # Plain float arithmetic: this runs thousands of times per frame, numpy calls cost more here.
    ax1, ay1, ax2, ay2 = a.box.tolist()
    bx1, by1, bx2, by2 = b.box.tolist()
    union_area = (max(ax2, bx2) - min(ax1, bx1)) * (max(ay2, by2) - min(ay1, by1))
    fill = 1.0 - (union_area - a.size - b.size) / image_size
    return colour + size + fill


def _hierarchy_boxes(labels: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Boxes of every region met while greedily merging the most similar neighbours.

    Returns ``float32 [M, 4]`` in working pixels: the superpixels, then each merge.
    """
    regions, adjacent = _initial_regions(labels, colour)
    image_size = labels.size
    neighbours: dict[int, set[int]] = {i: set() for i in range(len(regions))}
    for a, b in adjacent:
        neighbours[a].add(b)
        neighbours[b].add(a)
    heap = [(-_similarity(regions[a], regions[b], image_size), a, b) for a, b in adjacent]
    heapq.heapify(heap)
    alive = [True] * len(regions)
    boxes = [r.box for r in regions]
    while heap:
        _, a, b = heapq.heappop(heap)
        if not (alive[a] and alive[b]):
            continue
        ra, rb = regions[a], regions[b]
        size = ra.size + rb.size
        merged = _Region(
            size,
            np.concatenate([np.minimum(ra.box[:2], rb.box[:2]), np.maximum(ra.box[2:], rb.box[2:])]),
            (ra.histogram * ra.size + rb.histogram * rb.size) / size,
        )
        new = len(regions)
        regions.append(merged)
        alive[a] = alive[b] = False
        alive.append(True)
        boxes.append(merged.box)
        merged_neighbours = (neighbours.pop(a) | neighbours.pop(b)) - {a, b}
        neighbours[new] = merged_neighbours
        for n in merged_neighbours:
            neighbours[n] -= {a, b}
            neighbours[n].add(new)
            heapq.heappush(heap, (-_similarity(merged, regions[n], image_size), n, new))
    return np.stack(boxes).astype(np.float32)


def _mser_boxes(gray: np.ndarray) -> np.ndarray:
    """Boxes of maximally stable extremal regions, dark and bright: ``float32 [M, 4]``."""
    area = gray.size
    mser = cv2.MSER_create(delta=5, min_area=max(16, area // 4000), max_area=area // 3)
    _, bboxes = mser.detectRegions(gray)
    if len(bboxes) == 0:
        return np.zeros((0, 4), np.float32)
    xywh = np.asarray(bboxes, np.float32).reshape(-1, 4)
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)


def _palette_indices(small_rgb: np.ndarray) -> np.ndarray:
    """``int32 [h, w]`` index into a k-means colour palette of the frame (deterministic seed)."""
    pixels = cv2.cvtColor(small_rgb, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float32)
    sample = pixels[:: max(1, len(pixels) // 4000)]
    k = min(PALETTE_SIZE, len(np.unique(sample, axis=0)))
    cv2.setRNGSeed(0)
    _, _, centres = cv2.kmeans(
        sample, k, None, (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0), 1, cv2.KMEANS_PP_CENTERS
    )
    distances = ((pixels[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    return distances.argmin(axis=1).reshape(small_rgb.shape[:2]).astype(np.int32)


def colour_contrast(small_rgb: np.ndarray, boxes) -> np.ndarray:
    """Centre-surround colour contrast of each box, ``float32 [N]`` in [0, 1].

    Chi-square distance between the palette histogram inside the box and in a ring around it
    (integral histograms, so every box costs the same). Objects differ from what surrounds
    them; pieces of an object or of the background do not.

    Args:
        small_rgb: ``uint8 [h, w, 3]``; boxes: ``float32 [N, 4]`` in its pixels.
    """
    boxes = as_boxes(boxes)
    if len(boxes) == 0:
        return np.zeros(0, np.float32)
    height, width = small_rgb.shape[:2]
    palette = _palette_indices(small_rgb)
    one_hot = (palette[..., None] == np.arange(palette.max() + 1)).astype(np.float32)
    integral = np.zeros((height + 1, width + 1, one_hot.shape[2]), np.float32)
    integral[1:, 1:] = one_hot.cumsum(0).cumsum(1)

    def box_histograms(b: np.ndarray) -> np.ndarray:
        x1, y1, x2, y2 = (np.clip(np.round(b[:, i]), 0, width if i % 2 == 0 else height).astype(int) for i in range(4))
        return integral[y2, x2] - integral[y1, x2] - integral[y2, x1] + integral[y1, x1]

    sizes = boxes[:, 2:] - boxes[:, :2]
    ring = np.concatenate([boxes[:, :2] - sizes * SURROUND_MARGIN, boxes[:, 2:] + sizes * SURROUND_MARGIN], axis=1)
    inside = box_histograms(boxes)
    surround = box_histograms(ring) - inside
    inside /= np.maximum(inside.sum(axis=1, keepdims=True), 1.0)
    surround_total = surround.sum(axis=1, keepdims=True)
    surround /= np.maximum(surround_total, 1.0)
    chi_square = 0.5 * ((inside - surround) ** 2 / np.maximum(inside + surround, 1e-6)).sum(axis=1)
    # A box filling the frame has no surround to differ from.
    chi_square[surround_total[:, 0] < 1.0] = 0.0
    return chi_square.astype(np.float32)


def scored_candidate_boxes(rgb: np.ndarray, *, max_candidates: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Class-agnostic candidates with their prior: ``(float32 [N, 4] xyxy, float32 [N] in [0, 1])``.

    The prior is colour contrast times support, the share of generators (MSER and each
    segmentation strategy) that produce nearly the same box: a real object's outline survives
    different colour spaces and superpixel sizes, accidental groupings do not. Sorted best
    first, near-duplicates removed, at most ``max_candidates``.
    """
    height, width = rgb.shape[:2]
    small, factor = _working_copy(rgb)
    blurred = cv2.GaussianBlur(small, (0, 0), 0.8)
    generated = [_mser_boxes(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))]
    for spacing, conversion in SEGMENTATION_STRATEGIES:
        colour = cv2.cvtColor(blurred, conversion)
        generated.append(_hierarchy_boxes(_superpixels(colour, spacing), colour))
    boxes = np.concatenate(generated)
    generator = np.concatenate([np.full(len(b), i) for i, b in enumerate(generated)])
    small_height, small_width = small.shape[:2]
    sizes = boxes[:, 2:] - boxes[:, :2]
    plausible = valid_box_mask(boxes, min_size=3.0)
    plausible &= (sizes[:, 0] < 0.95 * small_width) | (sizes[:, 1] < 0.95 * small_height)
    plausible &= np.maximum(sizes[:, 0], sizes[:, 1]) < MAX_ASPECT_RATIO * np.maximum(sizes.min(axis=1), 1)
    boxes, generator = boxes[plausible], generator[plausible]
    same_box = iou_matrix(boxes, boxes) >= SUPPORT_IOU
    support = np.stack([same_box[:, generator == g].any(axis=1) for g in range(len(generated))], axis=1)
    prior = colour_contrast(small, boxes) * support.mean(axis=1)
    keep = nms_keep(boxes, prior, iou_threshold=0.7)[:max_candidates]
    boxes = clip_boxes(boxes[keep] * factor, width, height)
    return boxes, np.clip(prior[keep], 0.0, 1.0)


def candidate_boxes(rgb: np.ndarray, *, max_candidates: int = 100) -> np.ndarray:
    """Class-agnostic object candidates in ``rgb`` (``uint8 [H, W, 3]``): ``float32 [N, 4]`` best first."""
    return scored_candidate_boxes(rgb, max_candidates=max_candidates)[0]


# Motion works on a copy this size, and the camera's motion is estimated on one half as wide
# (ECC converges in a few iterations there; its translation is scaled back).
MOTION_LONG_SIDE = 320
MOTION_ALIGN_SCALE = 0.5
MOTION_ALIGN_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 1e-3)
# A pixel moved when it differs from the median of the aligned other frames by this many
# robust noise deviations (and at least this many grey levels). Each difference tolerates
# this many working pixels of misalignment, so the edges of a zooming background stay quiet.
MOTION_NOISE_DEVIATIONS = 4.0
MOTION_MIN_DIFFERENCE = 10
MOTION_ALIGN_TOLERANCE = 1
MOTION_MIN_AREA_SHARE = 0.0008
MOTION_EDGE_MARGIN = 3
# The frames of a shot to look for motion in, seconds from the frame: both sides, so that the
# median sees the scene behind an object wherever it stands, and far enough that an object
# moving at a slow walk has left its place (offline, on held-out generated videos, boxes at
# IoU >= 0.7 found by candidates and motion together: counter 36-40 % -> 68-69 %, night
# 66-72 % -> 80-86 %; ±0.8 s found fewer, ±2.4 s no more).
MOTION_OFFSETS_S = (-1.6, -1.2, -0.8, -0.4, 0.4, 0.8, 1.2, 1.6)
# A moving blob this much covered by a box followed from the shot's labels is not proposed.
MOTION_FOLLOWED_OVERLAP = 0.3


def _camera_motion(reference_gray: np.ndarray, other_gray: np.ndarray) -> np.ndarray | None:
    """The affine map from ``reference_gray``'s pixels to ``other_gray``'s (the camera's pan and
    zoom, which the background dominates), or None where ECC does not converge."""
    height, width = reference_gray.shape
    size = (max(8, round(width * MOTION_ALIGN_SCALE)), max(8, round(height * MOTION_ALIGN_SCALE)))
    reference_small = cv2.resize(reference_gray, size, interpolation=cv2.INTER_AREA)
    other_small = cv2.resize(other_gray, size, interpolation=cv2.INTER_AREA)
    warp = np.eye(2, 3, dtype=np.float32)
    try:
        _, warp = cv2.findTransformECC(
            reference_small, other_small, warp, cv2.MOTION_AFFINE, MOTION_ALIGN_CRITERIA, None, 1
        )
    except cv2.error:
        return None  # flat or changed beyond recognition: this frame adds nothing
    warp[:, 2] *= (width / size[0], height / size[1])
    return warp


def motion_boxes(rgb: np.ndarray, others: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Objects that move in ``rgb`` relative to the scene, found against the other frames of its
    shot, with the camera's own pan and zoom taken out.

    Each of ``others`` is aligned to ``rgb`` (ECC, affine) and differenced with a tolerance of a
    pixel; the median difference over them is what the frame shows that the scene does not:
    where an object is now, and not where it was or will be (those differ from one frame only).
    Works when objects move by about their size across ``others``, so pass frames from both
    sides, seconds apart. Args: ``rgb`` and ``others`` ``uint8 [H, W, 3]``, one size. Returns
    ``(float32 [N, 4] xyxy, float32 [N] share of the box that moved)``.
    """
    empty = np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    if len(others) < 2:
        return empty
    height, width = rgb.shape[:2]
    factor = min(1.0, MOTION_LONG_SIDE / max(height, width))
    size = (max(1, round(width * factor)), max(1, round(height * factor)))

    def prepared(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        small = cv2.GaussianBlur(cv2.resize(image, size, interpolation=cv2.INTER_AREA), (3, 3), 0)
        return small, cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY), (5, 5), 0).astype(np.float32)

    reference, reference_gray = prepared(rgb)
    reference = reference.astype(np.int16)
    window = np.ones((2 * MOTION_ALIGN_TOLERANCE + 1,) * 2, np.uint8)
    # A few pixels in from the other frame's edge, its pixels are interpolated with (and
    # blurred from) the border it repeats: slivers that "move" as the camera pans.
    margin = np.ones((2 * MOTION_EDGE_MARGIN + 1,) * 2, np.uint8)
    everywhere = np.ones(size[::-1], np.uint8)
    differences = []
    for other in others:
        small, gray = prepared(other)
        warp = _camera_motion(reference_gray, gray)
        if warp is None:
            continue
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        aligned = cv2.warpAffine(small, warp, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        seen = cv2.warpAffine(everywhere, warp, size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
        seen = cv2.erode(seen, margin, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        above = reference - cv2.dilate(aligned, window).astype(np.int16)
        below = cv2.erode(aligned, window).astype(np.int16) - reference
        difference = np.maximum(np.maximum(above, below), 0).max(axis=2).astype(np.float32)
        difference[seen == 0] = np.nan  # outside the other frame's view: no evidence either way
        differences.append(difference)
    if len(differences) < 2:
        return empty
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels at the border
        moved = np.nanmedian(np.stack(differences), axis=0)
    known = ~np.isnan(moved)
    if not known.any():
        return empty
    moved[~known] = 0
    noise = 1.4826 * float(np.median(moved[known])) + 1.0  # robust deviation: most pixels are scene
    mask = (moved > max(MOTION_NOISE_DEVIATIONS * noise, MOTION_MIN_DIFFERENCE)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7)))
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    stats = stats[1:]
    stats = stats[stats[:, cv2.CC_STAT_AREA] >= MOTION_MIN_AREA_SHARE * mask.size]
    xywh = stats[:, :4].astype(np.float32)
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    fill = stats[:, cv2.CC_STAT_AREA] / np.maximum(box_areas(boxes), 1.0)
    return clip_boxes(boxes / factor, width, height), fill.astype(np.float32)


# --- more objects like the confirmed ones --------------------------------------------------

# Exemplar search works where the exemplar's long side is this many pixels.
EXEMPLAR_LONG_SIDE = 20
EXEMPLAR_SCALES = (0.8, 1.0, 1.25)
# Peaks below this correlation are not objects; at most this many per exemplar and scale.
EXEMPLAR_MIN_SCORE = 0.55
EXEMPLAR_MAX_PEAKS = 40
# The best this many survive: each is embedded to be scored, and embedding is the cost.
EXEMPLAR_MAX_BOXES = 20


def exemplar_boxes(
    rgb: np.ndarray, exemplars: Sequence[tuple[np.ndarray, int]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Objects that look like confirmed ones: for crowded scenes of similar things (cells,
    products on a shelf) where segments merge, but a confirmed example matches each copy.

    Args:
        rgb: ``uint8 [H, W, 3]``; exemplars: ``(uint8 [h, w, 3] crop of a confirmed box, label id)``.
    Returns:
        ``(float32 [N, 4] xyxy, float32 [N] score in [0, 1], int64 [N] the exemplar's label)``:
        peaks of normalised cross-correlation over a few scales, near-duplicates removed. The
        score is the correlation times the colour similarity of the place and the exemplar:
        correlation takes out each channel's mean, so on its own it finds the pattern of a
        red apple in a green one, or in textured background (on the first frames of the
        generated videos' shots, colour cut the boxes scoring 0.3 or more from 84-100 to
        11-24 and kept 50-86 % of the right ones).
    """
    height, width = rgb.shape[:2]
    boxes, scores, labels = [], [], []
    for patch, label_id in exemplars:
        patch_h, patch_w = patch.shape[:2]
        if min(patch_h, patch_w) < 4 or float(patch.std()) < 1.0:
            continue
        factor = min(1.0, EXEMPLAR_LONG_SIDE / max(patch_h, patch_w))
        small = cv2.resize(rgb, (max(1, round(width * factor)), max(1, round(height * factor))), interpolation=cv2.INTER_AREA)
        # The exemplar's colours are compared with every peak's; on a grey frame they say nothing.
        patch_colours = colour_histogram(patch, (0, 0, patch_w, patch_h)) if rgb.ndim == patch.ndim == 3 else None
        for scale in EXEMPLAR_SCALES:
            size = (max(3, round(patch_w * factor * scale)), max(3, round(patch_h * factor * scale)))
            if size[0] >= small.shape[1] or size[1] >= small.shape[0]:
                continue
            template = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)
            response = cv2.matchTemplate(small, template, cv2.TM_CCOEFF_NORMED)
            # Local maxima: a peak is the best of its neighbourhood of half a template.
            kernel = np.ones((max(1, size[1] // 2) * 2 + 1, max(1, size[0] // 2) * 2 + 1), np.uint8)
            peaks = (response >= cv2.dilate(response, kernel)) & (response >= EXEMPLAR_MIN_SCORE)
            ys, xs = np.nonzero(peaks)
            best = np.argsort(-response[ys, xs])[:EXEMPLAR_MAX_PEAKS]
            for y, x in zip(ys[best], xs[best]):
                box = [x / factor, y / factor, (x + size[0]) / factor, (y + size[1]) / factor]
                boxes.append(box)
                scores.append(float(response[y, x]) * colour_weight(patch_colours, rgb, box))
                labels.append(label_id)
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    boxes_array = clip_boxes(np.array(boxes, np.float32), width, height)
    scores_array = np.clip(np.array(scores, np.float32), 0.0, 1.0)
    keep = nms_keep(boxes_array, scores_array, iou_threshold=0.5)[:EXEMPLAR_MAX_BOXES]
    return boxes_array[keep], scores_array[keep], np.array(labels, np.int64)[keep]


# --- scoring and merging ---------------------------------------------------------------------


class Source(StrEnum):
    PROPAGATION = "propagation"
    INTERPOLATION = "interpolation"  # between two labelled frames (proposals.bridging)
    DETECTOR = "detector"
    EXEMPLAR = "exemplar"
    MOTION = "motion"
    CANDIDATE = "candidate"


# Boxes carried from confirmed ones: followed by the tracker, or interpolated between two.
CARRIED = (Source.PROPAGATION, Source.INTERPOLATION)
# Boxes cut from the pixels alone: class-agnostic segments and moving blobs.
FROM_PIXELS = (Source.CANDIDATE, Source.MOTION)

# Where nothing is followed (a new shot's first frame, a still), a box that another source found
# too, at this overlap or more, is far likelier an object than a box its source found alone: the
# sources look for different things (a segment of even colour, pixels that move, a confirmed
# object's pattern, a detector's learned classes), so their mistakes seldom coincide. On the
# first frames of the six shots of a generated counter and a night video, of the boxes before
# suppression, 81 of the 94 backed ones lay on an object (IoU 0.5 or more), against 68 of the 454
# others (segments 0.80 against 0.15, template matches 0.89 against 0.13, moving blobs 0.93
# against 0.21; bench/ASSIST.md, session 50). Suppression keeps one box of such a pair, so the
# pair is marked on the box kept, and the show policy calibrates backed boxes apart. A template
# match backing a pixels' box also names it: the match's label is a confirmed object's, and on
# those first frames it was right for 33 of 34 such boxes on objects, where the index, which has
# seen few crops by then, mostly labelled them wrong.
BACKED_IOU = 0.6


def backing(
    boxes, sources, labels, confidence, iou_threshold: float = BACKED_IOU
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which of float [N, 4] ``boxes`` (from str [N] ``sources``) a box of another source
    overlaps at IoU ``iou_threshold`` or more, and what the surest such box with a label of its
    own says (int [N] ``labels``, ``BACKGROUND`` for none; float [N] ``confidence``).

    Returns ``(bool [N] backed, int64 [N] the backer's label or BACKGROUND, float32 [N] its
    confidence)``."""
    boxes = as_boxes(boxes)
    sources = np.asarray(sources).reshape(-1)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    confidence = np.asarray(confidence, dtype=np.float32).reshape(-1)
    backer_label = np.full(len(boxes), BACKGROUND, dtype=np.int64)
    backer_confidence = np.zeros(len(boxes), dtype=np.float32)
    if len(boxes) < 2:
        return np.zeros(len(boxes), dtype=bool), backer_label, backer_confidence
    backs = (iou_matrix(boxes, boxes) >= iou_threshold) & (sources[:, None] != sources[None, :])
    labelled = np.where(backs & (labels != BACKGROUND)[None, :], confidence[None, :], -np.inf)
    surest = labelled.argmax(axis=1)
    named = np.isfinite(labelled.max(axis=1))
    backer_label[named] = labels[surest[named]]
    backer_confidence[named] = confidence[surest[named]]
    return backs.any(axis=1), backer_label, backer_confidence


# How much a source's own confidence counts against the index's objectness: a box followed
# from a confirmed one is strong evidence, a segment of colour is weak.
SOURCE_WEIGHT = {
    Source.PROPAGATION: 0.8,
    Source.INTERPOLATION: 0.8,
    Source.DETECTOR: 0.6,
    Source.EXEMPLAR: 0.5,
    Source.MOTION: 0.35,
    Source.CANDIDATE: 0.3,
}


@dataclass
class _Candidates:
    boxes: list[np.ndarray]
    confidence: list[np.ndarray]
    sources: list[str]
    known_labels: list[np.ndarray]  # int64, BACKGROUND where the generator has no label

    def extend(self, boxes, confidence, source: Source | Sequence[str], labels=None) -> None:
        """``source``: one for all the boxes, or one per box."""
        boxes = as_boxes(boxes)
        self.boxes.append(boxes)
        self.confidence.append(np.asarray(confidence, np.float32).reshape(-1))
        self.sources.extend([source] * len(boxes) if isinstance(source, Source) else list(source))
        labels = np.full(len(boxes), BACKGROUND) if labels is None else labels
        self.known_labels.append(np.asarray(labels, np.int64).reshape(-1))


@dataclass(frozen=True)
class FrameCandidates:
    """A frame's class-agnostic candidates, best first, and their embeddings.

    They depend only on the pixels and the feature model, not on what the project has
    learned, so callers may compute them once per frame and reuse them on every refresh.
    ``boxes`` float32 [N, 4] xyxy; ``prior`` float32 [N] in [0, 1]; ``vectors`` float32
    [N, D] under the extractor, or None when they were not embedded; ``sources`` str [N],
    :class:`Source` ``candidate`` (the pixels) or ``motion`` (moving against the scene), or
    None when all are candidates.
    """

    boxes: np.ndarray
    prior: np.ndarray
    vectors: np.ndarray | None = None
    sources: np.ndarray | None = None

    def source_of_each(self) -> np.ndarray:
        if self.sources is None:
            return np.full(len(self.boxes), Source.CANDIDATE.value)
        return self.sources


def frame_candidates(
    rgb: np.ndarray,
    *,
    extractor: FeatureExtractor | None = None,
    max_candidates: int = 28,
    others: Sequence[np.ndarray] = (),
) -> FrameCandidates:
    """Class-agnostic candidates of ``rgb`` (``uint8 [H, W, 3]``), embedded when an extractor is given.

    ``others``: for a video frame, frames of its shot seconds before and after, resized to
    ``rgb``'s size; the objects that move against the scene in them join the candidates
    (see :func:`motion_boxes`).
    """
    boxes, prior = scored_candidate_boxes(rgb, max_candidates=max_candidates)
    moving, fill = motion_boxes(rgb, others)
    sources = np.array([Source.CANDIDATE.value] * len(boxes) + [Source.MOTION.value] * len(moving))
    boxes, prior = np.concatenate([boxes, moving]), np.concatenate([prior, fill])
    vectors = extractor.embed_crops(rgb, boxes) if extractor is not None and len(boxes) else None
    return FrameCandidates(boxes, prior, vectors, sources)


def follow_neighbours(
    rgb: np.ndarray, neighbours: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The confirmed boxes of ``neighbours`` (as :func:`propose_regions` takes them) followed
    into ``rgb`` and fused, and between the nearest labelled frame on each side interpolated
    where their estimates disagree (:func:`proposals.bridging.fuse_and_bridge`); each fused box
    then pulled towards the extent of its object's colours, as the labelled frames show them
    (:func:`proposals.outline.pulled_to_colour_outlines`): (float32 [N, 4] boxes, float [N]
    confidence, int64 [N] label ids, bool [N] interpolated)."""
    carried, sides = [], []
    for neighbour_rgb, neighbour_boxes, neighbour_labels, *extra in neighbours:
        options = dict(zip(("seconds_apart", "between", "after"), extra))
        after = options.pop("after", None)
        moved, confidence = propagate_boxes(neighbour_rgb, rgb, neighbour_boxes, **options)
        carried.append((moved, confidence, neighbour_labels))
        sides.append((after, options.get("seconds_apart", 1.0), neighbour_boxes))
    boxes, confidence, labels, interpolated, rows = fuse_and_bridge(carried, sides)
    models = objects_colour_models([neighbour[:2] for neighbour in neighbours], rows, len(boxes))
    return pulled_to_colour_outlines(rgb, boxes, models), confidence, labels, interpolated


def objects_colour_models(labelled: Sequence[tuple[np.ndarray, np.ndarray]], rows: Sequence[np.ndarray],
                          count: int) -> list[np.ndarray | None]:
    """Per fused box (``count`` of them), its object's colour model
    (:func:`proposals.outline.colour_model`), averaged over the labelled frames ``labelled``
    (``(uint8 [H, W, 3], float32 [N, 4] confirmed boxes)`` each) whose boxes went to it
    (``rows``, as :func:`proposals.bridging.fuse_and_bridge` returns them); None for a box
    no labelled box went to (a line's own box), or where none could be modelled."""
    found: list[list[np.ndarray]] = [[] for _ in range(count)]
    for (neighbour_rgb, neighbour_boxes), row_of in zip(labelled, rows):
        neighbour_boxes = as_boxes(neighbour_boxes)
        for column, row in enumerate(row_of.tolist()):
            others = np.delete(neighbour_boxes, column, axis=0)
            model = colour_model(neighbour_rgb, neighbour_boxes[column], others)
            if model is not None:
                found[row].append(model)
    return [np.mean(models, axis=0) if models else None for models in found]


def propose_regions(
    rgb: np.ndarray,
    *,
    neighbours: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]] = (),
    label_index: LabelIndex | None = None,
    extractor: FeatureExtractor | None = None,
    detector: Detector | None = None,
    refiner: BoxRefiner | None = None,
    exemplars: Sequence[tuple[np.ndarray, int]] = (),
    candidates: FrameCandidates | None = None,
    top_k: int = 20,
    nms_iou: float = 0.5,
    max_embedded: int = 28,
    chance: Chance | None = None,
) -> list[RegionProposal]:
    """Regions worth showing in ``rgb``, best first.

    Args:
        rgb: ``uint8 [H, W, 3]`` RGB frame.
        neighbours: frames of the same shot with confirmed boxes, each
            ``(uint8 [H, W, 3], float32 [N, 4] xyxy, int64 [N] label ids)``, optionally with
            a fourth item, the seconds between that frame and ``rgb`` (1 when absent), and a
            fifth, the video's frames between the two in order from the neighbour (see
            :func:`proposals.tracking.propagate_boxes`), and a sixth, whether the neighbour
            comes after ``rgb`` in the video (None: not known; with one on each side, the
            frame is also bridged and pulled towards its objects' colours, see
            :func:`follow_neighbours`). The boxes followed from them are then moved by
            ``refiner``, then towards their own outline in ``rgb`` (:mod:`proposals.outline`),
            before anything else sees them.
        label_index, extractor: when both are given (and the index is not empty), candidates are
            embedded in one batch, scored by objectness and labelled by their nearest examples.
        detector: optional ``rgb -> (float32 [N, 4], float32 [N] scores, int64 [N] label ids)``.
        refiner: optional :data:`BoxRefiner`, learned from the project's confirmed boxes: the
            boxes followed from neighbours are moved by it before anything else sees them; where
            nothing is followed, the boxes proposed (detected, matched, moving, segmented) are,
            before the new ones are embedded (cached candidates keep their segment's embedding).
        exemplars: crops of confirmed boxes with their label ids, to find more like them
            (see :func:`exemplar_boxes`).
        candidates: the frame's class-agnostic and moving candidates computed earlier (see
            :func:`frame_candidates`); their cached embeddings cost nothing here, so all of
            them are scored and only the other boxes count against ``max_embedded``.
        top_k: most proposals returned; nms_iou: overlap above which the weaker box is dropped.
        max_embedded: most boxes embedded; embedding dominates the cost (~20 ms a box on CPU).
        chance: the caller's calibrated P(useful) of each box (see :data:`Chance`). Of two
            overlapping boxes, the likelier then stays, and proposals come likeliest first.
            Without it, the raw score decides.
    Returns:
        At most ``top_k`` proposals with boxes clipped to the frame, sorted by decreasing
        chance (or score). Where nothing is followed, each is marked ``backed`` when a box of
        another source overlapped it before suppression, and one without a label of its own
        takes its surest backer's (see :func:`backing`).
    """
    height, width = rgb.shape[:2]
    found = _Candidates([], [], [], [])
    if neighbours:
        fused_boxes, fused_confidence, fused_labels, interpolated = follow_neighbours(rgb, neighbours)
        if refiner is not None and len(fused_boxes):
            fused_boxes = refiner(rgb, fused_boxes, fused_confidence)
        # Then towards each box's own outline in this frame's pixels (see proposals.outline).
        fused_boxes = pulled_to_own_outlines(rgb, fused_boxes)
        found.extend(
            fused_boxes, fused_confidence, np.where(interpolated, Source.INTERPOLATION, Source.PROPAGATION).tolist(),
            fused_labels,
        )
    if detector is not None:
        detected_boxes, detected_scores, detected_labels = detector(rgb)
        found.extend(detected_boxes, detected_scores, Source.DETECTOR, detected_labels)
    if exemplars:
        similar, similarity, similar_labels = exemplar_boxes(rgb, exemplars)
        found.extend(similar, similarity, Source.EXEMPLAR, similar_labels)
    strong = sum(len(b) for b in found.boxes)
    if candidates is None:
        boxes, prior = scored_candidate_boxes(rgb, max_candidates=max(0, max_embedded - strong))
        candidates = FrameCandidates(boxes, prior)
    cached = candidates.vectors is not None
    found.extend(candidates.boxes, candidates.prior, candidates.source_of_each())

    boxes = clip_boxes(np.concatenate(found.boxes), width, height)
    confidence = np.concatenate(found.confidence)
    known_labels = np.concatenate(found.known_labels)
    sources = np.asarray(found.sources)
    # Row of each box in the cached candidate embeddings, -1 for boxes to embed now.
    cached_row = np.full(len(boxes), -1)
    if cached:
        cached_row[strong:] = np.arange(len(candidates.boxes))
    valid = valid_box_mask(boxes)
    # Boxes carried from confirmed ones, followed or interpolated, are pulled to the pixels'
    # outlines alike, and a moving blob over either is that object again.
    is_followed = np.isin(sources, CARRIED)
    is_outline = np.isin(sources, FROM_PIXELS)
    boxes[is_followed] = averaged_with_closest(
        boxes[is_followed], boxes[is_outline], min_iou=FOLLOWED_OUTLINE_IOU, weight=FOLLOWED_OUTLINE_WEIGHT
    )
    moving, followed = np.flatnonzero(sources == Source.MOTION), boxes[is_followed]
    if len(moving) and len(followed):
        # A moving blob over a followed box is that object again, looser, or several merged:
        # only where nothing is followed can it be an object the shot's labels do not carry.
        valid[moving[covered_shares(boxes[moving], followed).max(axis=1) > MOTION_FOLLOWED_OVERLAP]] = False
    boxes, confidence, known_labels, sources, cached_row = (
        a[valid] for a in (boxes, confidence, known_labels, sources, cached_row)
    )
    # Strong sources first, so that the embedding budget never drops a propagated box; boxes
    # whose embedding is cached cost nothing and are always kept.
    weight = np.array([SOURCE_WEIGHT[Source(s)] for s in sources], np.float32)
    to_embed = np.flatnonzero(cached_row < 0)
    ranked = to_embed[np.lexsort((-confidence[to_embed], -weight[to_embed]))][:max_embedded]
    budget = np.sort(np.concatenate([ranked, np.flatnonzero(cached_row >= 0)]))
    boxes, confidence, known_labels, sources, weight, cached_row = (
        a[budget] for a in (boxes, confidence, known_labels, sources, weight, cached_row)
    )
    if refiner is not None and len(boxes) and not np.isin(sources, CARRIED).any():
        # Where nothing is followed (a still, a shot nobody has labelled) the other boxes are all
        # there is, and a detector's box, a template match, a moving blob or a segment of the
        # pixels is as loose as a followed box or looser: the refiner, which learned the
        # project's objects' edges from its confirmed boxes, moves them too. On 30 BCCD test
        # images, the true boxes whose closest class-agnostic candidate a person accepts as it is
        # (IoU >= 0.7) went from 91 to 170 of 416 with a refiner learned from five train images,
        # 189 from twenty (bench/refiner.py). Beside followed boxes they are left as they are:
        # there they are mostly those objects again, and refined, a new detector's were shown
        # and rejected more often (bench/ASSIST.md, session 45).
        boxes = clip_boxes(refiner(rgb, boxes, None), width, height)

    suggestions: list[tuple[LabelSuggestion, ...]] = [() for _ in range(len(boxes))]
    if label_index is not None and extractor is not None and len(label_index) > 0 and len(boxes):
        vectors = np.zeros((len(boxes), label_index.index.dim), np.float32)
        fresh = cached_row < 0
        if fresh.any():
            vectors[fresh] = extractor.embed_crops(rgb, boxes[fresh])
        if (~fresh).any():
            vectors[~fresh] = candidates.vectors[cached_row[~fresh]]
        scores = weight * confidence + (1.0 - weight) * label_index.objectness(vectors)
        suggestions = label_index.suggest(vectors)
    else:
        scores = weight * confidence

    # Scores of different sources are on different scales (a candidate's 0.7 is worth less
    # than a propagated box's 0.6), so suppression compares calibrated chances where given;
    # the score breaks ties within a flat stretch of a calibration curve.
    if chance is None or not len(boxes):
        rank = scores
    else:
        rank = chance(sources, scores, boxes, known_labels) + CHANCE_TIE_BREAK * scores
    keep = nms_keep(boxes, rank, iou_threshold=nms_iou)[:top_k]
    backed = np.zeros(len(boxes), dtype=bool)
    if not neighbours:  # beside followed boxes another source's box is mostly one of those objects again
        backed, backer_label, backer_confidence = backing(boxes, sources, known_labels, confidence)
        unnamed = known_labels == BACKGROUND
        known_labels = np.where(unnamed, backer_label, known_labels)
        confidence = np.where(unnamed & (backer_label != BACKGROUND), backer_confidence, confidence)
    return [
        RegionProposal(
            box=tuple(float(v) for v in boxes[i]),
            score=float(scores[i]),
            source=str(sources[i]),
            suggestions=_with_known_label(suggestions[i], int(known_labels[i]), float(confidence[i])),
            backed=bool(backed[i]),
        )
        for i in keep
    ]


def _with_known_label(
    suggestions: tuple[LabelSuggestion, ...], label_id: int, confidence: float, top: int = 3
) -> tuple[LabelSuggestion, ...]:
    """Put the generator's own label (a propagated or detected one) first, then the index's others."""
    if label_id == BACKGROUND:
        return suggestions[:top]
    others = tuple(s for s in suggestions if s.label_id != label_id)
    return ((LabelSuggestion(label_id=label_id, score=confidence),) + others)[:top]
