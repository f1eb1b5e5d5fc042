"""Which proposals are worth showing: calibrated chances and the annotator's costs.

A proposal is worth showing when its chance of being useful (the person keeps it, maybe
after fixing its label or box) times the time it saves outweighs the time it costs to
reject it when it is wrong. Both sides come from the published per-action costs
(:class:`ActionCosts`); the chance comes from the project's own history.

Calibration. For one source of proposals (propagation, class-agnostic candidates, a
detector ...), the history is pairs (score, useful). :func:`fit_calibration` fits a
monotone non-decreasing map score -> P(useful): scores are cut into quantile bins, each
bin's rate is smoothed towards a prior with a Beta(strength * prior, strength * (1 -
prior)) pseudo-count, the bin rates are made monotone by the pool-adjacent-violators
algorithm (isotonic regression), and scores between bin centres are interpolated. With
no history the map is the prior.

Below the lowest bin's centre the chance keeps falling with the score, along the slope of
a logistic fit of the whole history, instead of staying at that bin's rate: a source whose
boxes mostly score high (followed boxes) puts its rare weak ones in one wide bin with the
middling ones, and the bin's rate, often above the break-even, then showed every box scoring
below it, nearly none of which are kept. Above the highest centre the chance stays at that
bin's rate: extrapolating up would show boxes no history vouches for.

While a source's history is short (fewer than :data:`LOGISTIC_BELOW` decisions) there is
too little of it for more than one or two bins, and one bin is a flat map: every proposal
of the source is shown, or none. A short history is fitted with a logistic curve of the
score instead (Platt scaling; with little data it calibrates better than isotonic bins),
with the same ``strength`` pseudo-decisions at the prior, so a source's first few frames
already tell its strong proposals from its weak ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from proposals.boxes import covered_shares

# At least this many decisions per bin; fewer bins while history is short. The share of
# followed boxes kept rises from one in ten to nearly all between scores of 0.3 and 0.5, where
# a project's first few hundred decisions hold a few dozen: bins of 20 blurred that rise (weak
# boxes shown) more than bins of 15 add noise (bench/policy_replay.py, six kept videos).
MIN_PER_BIN = 15
MAX_BINS = 12
PRIOR_STRENGTH = 2.0
# Below this many decisions a source is calibrated by a logistic curve rather than bins;
# the curve is read at this many score quantiles.
LOGISTIC_BELOW = 60
LOGISTIC_KNOTS = 12
NEWTON_STEPS = 25


@dataclass(frozen=True)
class ActionCosts:
    """Seconds a person spends per action (the published annotation cost model)."""

    draw: float = 10.0  # draw a box (7 s) and choose its label (3 s)
    accept: float = 1.5
    fix_label: float = 3.0
    fix_box: float = 4.0
    reject: float = 1.0

    def saving(self, label_wrong: float, box_loose: float) -> float:
        """Expected seconds saved by a useful proposal against drawing the box by hand.

        ``label_wrong``/``box_loose``: the share of useful proposals whose label or box had
        to be fixed."""
        fix = label_wrong * self.fix_label + box_loose * self.fix_box
        return max(0.0, self.draw - min(self.draw, self.accept + fix))

    def break_even(self, label_wrong: float, box_loose: float) -> float:
        """The chance of being useful above which showing a proposal saves time on average."""
        saving = self.saving(label_wrong, box_loose)
        if saving <= 0:
            return 1.0
        return self.reject / (saving + self.reject)


@dataclass(frozen=True)
class Calibration:
    """Monotone map from a proposal score to P(useful), for one source.

    ``knots``/``values``: float64 [B] bin centres (increasing) and smoothed, monotone rates;
    ``decisions``: how many outcomes it was fitted on; ``tail_slope``: how fast the chance's
    logit falls per unit of score below the first knot (0: it stays at the first rate).
    """

    knots: np.ndarray
    values: np.ndarray
    decisions: int
    prior: float
    tail_slope: float = 0.0

    def probability(self, scores) -> np.ndarray:
        """float64 [N] P(useful) for float [N] scores."""
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(self.knots) == 0:
            return np.full(len(scores), self.prior)
        chance = np.interp(scores, self.knots, self.values)
        below = scores < self.knots[0]
        if self.tail_slope > 0 and below.any():
            shift = self.tail_slope * (scores[below] - self.knots[0])
            chance[below] = _logistic(_logit(self.values[0], 1e-6) + shift)
        return chance

    def as_dict(self) -> dict:
        return {
            "decisions": self.decisions,
            "prior": self.prior,
            "curve": [[round(float(k), 4), round(float(v), 4)] for k, v in zip(self.knots, self.values)],
        }


def _pool_adjacent_violators(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted isotonic (non-decreasing) regression of ``values`` float64 [B]."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for value, weight in zip(values.tolist(), weights.tolist()):
        blocks.append([value, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean_b, weight_b, count_b = blocks.pop()
            mean_a, weight_a, count_a = blocks.pop()
            total = weight_a + weight_b
            blocks.append([(mean_a * weight_a + mean_b * weight_b) / total, total, count_a + count_b])
    return np.concatenate([np.full(count, mean) for mean, _, count in blocks])


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(chance, bound: float) -> np.ndarray:
    """The inverse of :func:`_logistic`, for chances kept within ``[bound, 1 - bound]``."""
    chance = np.clip(np.asarray(chance, dtype=np.float64), bound, 1 - bound)
    return np.log(chance / (1 - chance))


def _soft_targets(useful: np.ndarray, prior: float, strength: float) -> np.ndarray:
    """Each decision's 0/1 target shrunk towards ``prior`` by ``strength`` pseudo-decisions
    spread over the history (the logistic fits' counterpart of the bins' Beta pseudo-counts)."""
    extra = strength / len(useful)
    return (useful + extra * prior) / (1.0 + extra)


def _newton_logistic(design: np.ndarray, target: np.ndarray, ridge: np.ndarray) -> np.ndarray:
    """Weights ``theta`` float64 [F] of logistic(design @ theta) ~ ``target`` float [N] for
    ``design`` float [N, F], with an L2 penalty ``ridge`` float [F] per weight."""
    penalty = np.diag(ridge)
    theta = np.zeros(design.shape[1])
    for _ in range(NEWTON_STEPS):
        chance = _logistic(design @ theta)
        gradient = design.T @ (chance - target) + penalty @ theta
        hessian = design.T @ (design * (chance * (1 - chance))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        theta = theta - step
        if np.abs(step).max() < 1e-7:
            break
    return theta


def _fit_logistic(scores: np.ndarray, useful: np.ndarray, *, prior: float, strength: float) -> tuple[float, float]:
    """(slope, intercept) of P(useful) = logistic(slope * score + intercept), fitted by
    Newton's method to the history plus ``strength`` pseudo-decisions at the ``prior``. The
    slope is kept >= 0: a history that contradicts the score order gets the flat fit."""
    target = _soft_targets(useful, prior, strength)
    # The tiny slope penalty keeps it 0 when every score is equal.
    slope, intercept = _newton_logistic(np.stack([scores, np.ones_like(scores)], axis=1), target, np.array([1e-3, 0.0]))
    if slope < 0:
        slope, intercept = 0.0, _logit(target.mean(), 1e-6)
    return float(slope), float(intercept)


def fit_calibration(scores, useful, *, prior: float, strength: float = PRIOR_STRENGTH) -> Calibration:
    """Fit P(useful | score) from history: ``scores`` float [N], ``useful`` bool [N]."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    useful = np.asarray(useful, dtype=np.float64).reshape(-1)
    if len(scores) != len(useful):
        raise ValueError("scores and useful differ in length")
    if len(scores) == 0:
        return Calibration(np.zeros(0), np.zeros(0), 0, prior)
    if len(scores) < LOGISTIC_BELOW:
        slope, intercept = _fit_logistic(scores, useful, prior=prior, strength=strength)
        knots = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, LOGISTIC_KNOTS)))
        return Calibration(knots, _logistic(slope * knots + intercept), len(scores), prior, slope)
    slope, _ = _fit_logistic(scores, useful, prior=prior, strength=strength)  # for the low tail
    order = np.argsort(scores, kind="stable")
    scores, useful = scores[order], useful[order]
    bins = int(np.clip(len(scores) // MIN_PER_BIN, 1, MAX_BINS))
    groups = np.array_split(np.arange(len(scores)), bins)
    knots = np.array([scores[g].mean() for g in groups])
    counts = np.array([len(g) for g in groups], dtype=np.float64)
    rates = np.array([(useful[g].sum() + strength * prior) / (len(g) + strength) for g in groups])
    values = _pool_adjacent_violators(rates, counts + strength)
    # Equal knots (many identical scores) would make interpolation ill-defined: merge them.
    knots, first = np.unique(knots, return_index=True)
    return Calibration(knots, values[first], len(scores), prior, slope)


# --- the box's shape and place ---------------------------------------------------------

# A source's calibrated chance is moved by the box's shape and place once its history holds
# SHAPE_MIN_EACH kept decisions and as many not kept; the weights are penalised (ridge, on
# standardised features) so that a short history moves little.
SHAPE_RIDGE = 1.0
# Features are standardised by at least this spread (a history of boxes all of one size
# says nothing about other sizes), and a box far outside the history's spread counts as
# at most this many spreads away: no extrapolation to certainty.
SHAPE_MIN_SPREAD = 0.1
SHAPE_MAX_SPREADS = 4.0
# Columns of :func:`box_features`.
BOX_FEATURES = 5
# At least as many kept decisions, and as many others, as the adjustment has weights (the
# score's chance, the box features and the intercept). With fewer of one kind the fit follows
# a few boxes: on the bench's night video, the shots' first frames in the warm-up left 4
# useful template matches (exemplars), all small (two stop signs, a cat, a street light), and
# 18 others; on the next new shot's first frame that pushed tiny boxes to a chance of 0.26
# whatever their score (0.16-0.35, all rejected) and a pedestrian's match (score 0.41, IoU
# 0.97 with it) down to 0.07, so it was drawn (bench/ASSIST.md, session 41).
SHAPE_MIN_EACH = 2 + BOX_FEATURES


def followed_cover(boxes, followed, followed_scores, own=None) -> np.ndarray:
    """float64 [N]: how much of each of ``boxes`` (float [N, 4] xyxy) a box followed from a
    confirmed one already claims: the largest share of it that one of ``followed`` (float
    [M, 4]) covers, times that box's score (float [M], clipped to [0, 1]). ``own`` (int [N]):
    the row in ``followed`` of a box that is itself followed, -1 for others; a box does not
    cover itself.

    Beside followed boxes, a candidate mostly inside a confidently followed object is a part
    of it or that object again, while one in free space may be an object the shot's labels
    do not carry (or one the tracker lost): the project's history says how much each is kept.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    followed = np.asarray(followed, dtype=np.float64).reshape(-1, 4)
    if not len(boxes) or not len(followed):
        return np.zeros(len(boxes))
    cover = covered_shares(boxes, followed) * np.clip(np.asarray(followed_scores, np.float64), 0.0, 1.0)[None, :]
    if own is not None:
        own = np.asarray(own, dtype=np.int64).reshape(-1)
        rows = np.flatnonzero(own >= 0)
        cover[rows, own[rows]] = 0.0
    return cover.max(axis=1).astype(np.float64)


def label_surplus(labels, scores, followed) -> np.ndarray:
    """float64 [N]: 1 for each followed box (bool [N] ``followed``) that another followed box
    of its label (int [N] ``labels``; a negative one is no label, with no rivals) outscores
    (float [N] ``scores``; of equal scores the earlier counts as higher), else 0.

    Where the labelled frames on the two sides of a frame disagree on an object's place, both
    places are followed in, each at half the confidence: one label, two boxes, of which at
    most one is on the object (unless the shot holds two such objects). The weaker one is
    rejected far more often than a box of the same score with no rival (bench/ASSIST.md,
    session 29), and how often a project's rivals are right is in its own history.
    """
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    followed = np.asarray(followed, dtype=bool).reshape(-1)
    surplus = np.zeros(len(labels))
    for i in np.flatnonzero(followed & (labels >= 0)):
        rivals = followed & (labels == labels[i])
        rivals[i] = False
        earlier = np.arange(len(labels)) < i
        surplus[i] = float(np.any(rivals & ((scores > scores[i]) | ((scores == scores[i]) & earlier))))
    return surplus


# A followed box scoring under this is one the tracker is not sure it held (its flow let go
# and its search found only a weak likeness).
LOST_BELOW = 0.3
# A pixels' box is taken for a lost object only where the followed boxes leave it free (its
# followed_cover under this) and its size is this near one of that object's labelled boxes
# (size_distance: 0.3 is a third as wide again at the same height).
LOST_FREE_BELOW = 0.3
LOST_SIZE_WITHIN = 0.3
# A followed box this much inside a surer followed box of its label is that object again (the
# labelled frames on two sides disagreed on its place), not a second object held.
LOST_SAME_OBJECT = 0.5


def lost_object_matches(boxes, scores, labels, pixels, cover, followed, carried, frame_size) -> np.ndarray:
    """bool [N]: which of ``boxes`` (float [N, 4] xyxy, in a frame of ``frame_size``) may be an
    object of the shot that the tracker lost: a pixels' box (bool [N] ``pixels``) in free space
    (float [N] ``cover``, :func:`followed_cover`, under LOST_FREE_BELOW) whose label (int [N]
    ``labels``) is one that a labelled frame it was followed from carries more boxes of (one
    ``(labels int [M], boxes float [M, 4])`` pair per frame in ``carried``) than the frame's
    followed boxes (``followed``: int [F] labels, float [F] scores, float [F, 4] boxes) hold
    surely (at LOST_BELOW or more, each not mostly inside a surer one of its label), and whose
    size is within LOST_SIZE_WITHIN of one of those labelled boxes; of those, only as many as
    objects of the label are missing, the best scored (float [N] ``scores``): the rest are parts
    of it or background of its size.

    Beside followed boxes the pixels' boxes are nearly all background or parts of followed
    objects (10 of 2,277 segments and moving blobs kept in three kept bench/assist.py runs), so
    their chance there is far under the break-even, and an object the tracker lost was drawn
    even where one lay on it with its own label (a hand's segment at IoU 0.93, a croissant's
    moving blob at 0.90). Of those these rules pick, 3 of 5 were kept (bench/ASSIST.md, session 48).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    free = np.asarray(cover, dtype=np.float64).reshape(-1) < LOST_FREE_BELOW
    candidates = np.asarray(pixels, dtype=bool).reshape(-1) & free
    matches = np.zeros(len(boxes), dtype=bool)
    if not candidates.any() or not carried:
        return matches
    held = _held_labels(*followed)
    carried = [(np.asarray(l).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1, 4)) for l, b in carried]
    sizes = relative_log_sizes(boxes, frame_size)
    for label in {int(label) for label in labels[candidates]}:
        missing = max(int((frame_labels == label).sum()) for frame_labels, _ in carried) - int((held == label).sum())
        if missing <= 0:
            continue
        their_boxes = np.concatenate([frame_boxes[frame_labels == label] for frame_labels, frame_boxes in carried])
        rows = np.flatnonzero(candidates & (labels == label))
        rows = rows[size_distance(sizes[rows], relative_log_sizes(their_boxes, frame_size)) < LOST_SIZE_WITHIN]
        matches[rows[np.argsort(-scores[rows], kind="stable")[:missing]]] = True
    return matches


def _held_labels(labels, scores, boxes) -> np.ndarray:
    """int [H]: the labels of the followed boxes (int [F] ``labels``, float [F] ``scores``,
    float [F, 4] ``boxes``) that hold an object surely: at LOST_BELOW or more, and not mostly
    inside a surer one of the same label (LOST_SAME_OBJECT)."""
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] >= LOST_BELOW]
    inside = covered_shares(boxes[order], boxes[order]) >= LOST_SAME_OBJECT
    same = labels[order][:, None] == labels[order][None, :]
    held = [i for row, i in enumerate(order) if not (inside[row, :row] & same[row, :row]).any()]
    return labels[held]


# Sizes are compared as the log of the box's width and height as shares of its frame's, so
# that a project's videos of other resolutions share them; log sizes this close are one size.
SIZE_GRID = 0.02


def relative_log_sizes(boxes, frame_sizes) -> np.ndarray:
    """float64 [N, 2]: the log of each of float [N, 4] xyxy ``boxes``' width and height as a
    share of its frame's (float [N, 2] or one (width, height)); a box is at least a pixel."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    frame_sizes = np.broadcast_to(np.asarray(frame_sizes, dtype=np.float64).reshape(-1, 2), (len(boxes), 2))
    width = np.maximum(boxes[:, 2] - boxes[:, 0], 1.0) / np.maximum(frame_sizes[:, 0], 1.0)
    height = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0) / np.maximum(frame_sizes[:, 1], 1.0)
    return np.log(np.stack([width, height], axis=1))


def distinct_sizes(log_sizes) -> np.ndarray:
    """float64 [K, 2]: ``log_sizes`` (float [N, 2]) with those within :data:`SIZE_GRID` of
    each other kept once: a project's thousands of confirmed boxes come in a few hundred sizes."""
    log_sizes = np.asarray(log_sizes, dtype=np.float64).reshape(-1, 2)
    return np.unique(np.round(log_sizes / SIZE_GRID), axis=0) * SIZE_GRID


def size_distance(log_sizes, known) -> np.ndarray:
    """float64 [N]: how far each of ``log_sizes`` (float [N, 2], :func:`relative_log_sizes`) is
    from the nearest of ``known`` (float [K, 2]), the Euclidean distance between the logs of
    width and height (0.4: half as wide again, or two thirds as wide, at the same height); inf
    where none are known.

    A project's objects come in the sizes its people have confirmed. A moving blob or a segment
    of several objects merged, or a sliver along an edge, does not: of the
    pixels' boxes in a kept bench/assist.py run (two videos), the 37 kept were all within 0.35
    of a size confirmed before them, and none of the 400 further (bench/ASSIST.md, session 46).
    """
    log_sizes = np.asarray(log_sizes, dtype=np.float64).reshape(-1, 2)
    known = np.asarray(known, dtype=np.float64).reshape(-1, 2)
    if not len(known):
        return np.full(len(log_sizes), np.inf)
    gaps = log_sizes[:, None, :] - known[None, :, :]
    return np.sqrt((gaps**2).sum(axis=2)).min(axis=1)


def box_features(boxes, frame_sizes, cover=None, surplus=None) -> np.ndarray:
    """float64 [N, 5] for float [N, 4] xyxy ``boxes`` in frames of float [N, 2] (width,
    height) ``frame_sizes``: the log of the box's share of the frame, its square, the
    squared log aspect ratio (0 for a square), ``cover`` (float [N],
    :func:`followed_cover`; 0 where nothing is followed) and ``surplus`` (float [N],
    :func:`label_surplus`; 0 where not given). Objects of a project have typical
    sizes and shapes, and a class-agnostic segment of a table top or a sliver of a shadow
    does not."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    frame_sizes = np.asarray(frame_sizes, dtype=np.float64).reshape(-1, 2)
    width = np.maximum(boxes[:, 2] - boxes[:, 0], 1.0)
    height = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    share = np.log(width * height / np.maximum(frame_sizes[:, 0] * frame_sizes[:, 1], 1.0))
    cover = np.zeros(len(boxes)) if cover is None else np.asarray(cover, dtype=np.float64).reshape(-1)
    surplus = np.zeros(len(boxes)) if surplus is None else np.asarray(surplus, dtype=np.float64).reshape(-1)
    return np.stack([share, share**2, np.log(width / height) ** 2, cover, surplus], axis=1)


@dataclass(frozen=True)
class ShapeAdjustment:
    """P(useful) = logistic(weights . [standardised (logit of the score's calibrated chance,
    box features), 1]): the score's chance, moved by what the project's history says about
    boxes of this size, shape and place (stacking on top of :class:`Calibration`)."""

    mean: np.ndarray  # float64 [1 + BOX_FEATURES]
    scale: np.ndarray  # float64 [1 + BOX_FEATURES]
    weights: np.ndarray  # float64 [2 + BOX_FEATURES], the intercept last

    def probability(self, base_probability, features) -> np.ndarray:
        """float64 [N] for float [N] chances from the score and float [N, 5] box features."""
        design = _stacked_design(_stacked_features(base_probability, features), self.mean, self.scale)
        return _logistic(design @ self.weights)

    def as_dict(self) -> dict:
        return {"weights": [round(float(w), 4) for w in self.weights]}


def _stacked_features(base_probability, features) -> np.ndarray:
    """float64 [N, 1 + BOX_FEATURES]: the logit of each chance from the score, then its box features."""
    chance = np.asarray(base_probability, dtype=np.float64).reshape(-1)
    return np.column_stack([_logit(chance, 1e-4), np.asarray(features, dtype=np.float64).reshape(-1, BOX_FEATURES)])


def _stacked_design(features: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``features`` standardised and clipped, with a column of ones for the intercept."""
    standardised = np.clip((features - mean) / scale, -SHAPE_MAX_SPREADS, SHAPE_MAX_SPREADS)
    return np.column_stack([standardised, np.ones(len(standardised))])


def fit_shape_adjustment(
    base_probability, features, useful, *, prior: float, strength: float = PRIOR_STRENGTH
) -> ShapeAdjustment | None:
    """Fit how a box's shape and place move its chance, from history: the chances its score
    was given (float [N]), its box features (float [N, 5], :func:`box_features`) and whether
    it was useful (bool [N]). None while the history is too short to say: fewer than
    SHAPE_MIN_EACH decisions kept, or not kept."""
    useful = np.asarray(useful, dtype=np.float64).reshape(-1)
    kept = int(useful.sum())
    if min(kept, len(useful) - kept) < SHAPE_MIN_EACH:
        return None
    stacked = _stacked_features(base_probability, features)
    mean, scale = stacked.mean(axis=0), np.maximum(stacked.std(axis=0), SHAPE_MIN_SPREAD)
    design = _stacked_design(stacked, mean, scale)
    ridge = np.array([SHAPE_RIDGE] * stacked.shape[1] + [0.0])
    weights = _newton_logistic(design, _soft_targets(useful, prior, strength), ridge)
    return ShapeAdjustment(mean, scale, weights)


def select_shown(probabilities, break_even, *, ranking=None, limit: int | None = None) -> np.ndarray:
    """Indices of the proposals whose P(useful) clears ``break_even`` (one chance for all, or
    float [N], each proposal's own), most likely first (ties broken by ``ranking``, e.g. the
    raw scores), at most ``limit``."""
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    ranking = probabilities if ranking is None else np.asarray(ranking, dtype=np.float64).reshape(-1)
    break_even = np.broadcast_to(np.asarray(break_even, dtype=np.float64), probabilities.shape)
    order = np.lexsort((-ranking, -probabilities))
    worth = order[probabilities[order] > break_even[order]]
    return worth[:limit].astype(np.int64)
