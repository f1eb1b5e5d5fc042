"""How far off, edge by edge, a label's followed boxes usually are, learned from the person's fixes.

A tracker's error is not all spread: some objects lose the same part in every frame they are
followed into. A thin part (a knife's tip, a cat's ears) has few pixels of the object's own
colours and texture, so flow, the template and the outline all leave it out, and the followed
box of that label ends short of the same edge each time. On the generated videos (bench/ASSIST.md,
session 39) the fixed followed knives ended 11-30 px short of their right edge, and the cats 2-6 px
inside every edge; such a box is just under the IoU a person accepts, so it costs a box fix, and
the boxes accepted just above it are the labelled boxes the next frames are followed from.

The person's decisions measure this, but with a selection: a box is fixed only where it was far
enough off, and accepted as it is where it was close enough. So the fixes alone overstate a bias
(their mean over a label moved the followed boxes too far, and offline cost more than it saved),
and counting the accepted boxes as exact understates it. Here each edge's offset, relative to the
box's size, is taken as normal around the label's bias: a fixed box's offset is observed, an
accepted box's lies within ``ACCEPT_RADIUS`` of the shift applied to it (it is censored), and the
bias has a normal prior around 0 (``PRIOR_SPREAD``), so that a few fixes move boxes little. The
estimate is the most likely bias on a grid, the spread chosen by likelihood from a few values.

Offsets are ``(x1, y1, x2, y2)`` edge moves divided by ``(width, height, width, height)`` of the
box before any shift.
"""

from __future__ import annotations

import numpy as np

from proposals.boxes import as_boxes, clip_boxes, moved_boxes

# The share of a box's size within which a person accepts each edge as it is (about IoU 0.7
# with every edge off by the same share in the worst direction).
ACCEPT_RADIUS = 0.08
# The prior on a label's bias: most labels have none, and a few fixes must not move boxes far.
PRIOR_SPREAD = 0.05
EDGE_SPREADS = (0.03, 0.05, 0.08, 0.12)
BIAS_GRID = np.linspace(-0.3, 0.3, 121)
_LOG_FLOOR = 1e-12


def shift_edges(boxes, offsets, frame_size: tuple[int, int] | None = None) -> np.ndarray:
    """float32 [N, 4]: ``boxes`` with each edge moved by ``offsets`` ([4] or [N, 4], shares of
    the box's size, :func:`proposals.boxes.edge_moves`), kept inside ``frame_size`` (width,
    height) and never turned inside out."""
    boxes = as_boxes(boxes)
    moved = moved_boxes(boxes, offsets)
    if frame_size is not None:
        moved = clip_boxes(moved, *frame_size)
    inside_out = (moved[:, 2] - moved[:, 0] < 1.0) | (moved[:, 3] - moved[:, 1] < 1.0)
    moved[inside_out] = boxes[inside_out]
    return moved


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    """Abramowitz and Stegun 7.1.26 (error under 1.5e-7), vectorised: numpy has no erf."""
    z = np.abs(x) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    return 0.5 * (1.0 + np.sign(x) * erf)


def _log_normal(x: np.ndarray, spread: float) -> np.ndarray:
    return -0.5 * (x / spread) ** 2 - np.log(spread * np.sqrt(2.0 * np.pi))


def fit_edge_bias(fixed, accepted, *, accept_radius: float = ACCEPT_RADIUS, prior_spread: float = PRIOR_SPREAD) -> np.ndarray:
    """float64 [4]: the most likely bias of one label's boxes, edge by edge (see the module).

    ``fixed``: [N, 4] offsets of the boxes the person moved to where they belong (observed);
    ``accepted``: [M, 4] offsets of the boxes accepted as shown, i.e. the shift applied before
    they were shown (0 where none was): the true offset lies within ``accept_radius`` of it.
    Zeros where nothing was fixed: accepted boxes alone say the boxes are good enough.
    """
    fixed = np.asarray(fixed, dtype=np.float64).reshape(-1, 4)
    accepted = np.asarray(accepted, dtype=np.float64).reshape(-1, 4)
    bias = np.zeros(4)
    if not len(fixed):
        return bias
    grid = BIAS_GRID
    for edge in range(4):
        best_log, best_value = -np.inf, 0.0
        for spread in EDGE_SPREADS:
            log_likelihood = _log_normal(fixed[:, edge][:, None] - grid[None, :], spread).sum(axis=0)
            if len(accepted):
                upper = _normal_cdf((accepted[:, edge][:, None] + accept_radius - grid[None, :]) / spread)
                lower = _normal_cdf((accepted[:, edge][:, None] - accept_radius - grid[None, :]) / spread)
                log_likelihood += np.log(np.maximum(upper - lower, _LOG_FLOOR)).sum(axis=0)
            log_likelihood += _log_normal(grid, prior_spread)
            at = int(np.argmax(log_likelihood))
            if log_likelihood[at] > best_log:
                best_log, best_value = float(log_likelihood[at]), float(grid[at])
        bias[edge] = best_value
    return bias
