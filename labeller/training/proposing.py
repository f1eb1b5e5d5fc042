"""The learning loop's proposing side: label suggestions for hand-drawn boxes and the
region proposals of each frame, built from the project's index (see ``services``)."""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field, replace
from datetime import timedelta

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from labeller import ml
from labeller.annotations.models import (Annotation, AnnotationAction, AnnotationEvent, AnnotationSource,
                                        AnnotationStatus, Label)
from labeller.annotations.services import annotation_snapshot
from labeller.media.files import read_frame_rgb, read_frames_around, read_shot_frames
from labeller.media.models import Frame, FrameStatus
from labeller.media.selectors import in_queue_order
from labeller.training.clock import learning_clock_read
from labeller.training.feature_models import current_detector, current_refiner, project_feature_weights
from labeller.training.hooks import refresh_frame_soon
from labeller.training.models import FrameProposals, ProjectLearning, ProposalOutcome
from labeller.training.outcomes import box_of as _box_of
from labeller.training.services import IndexConflict, index_load, index_state, index_state_peek, index_sync
from proposals.boxes import edge_moves, iou_matrix
from proposals.calibration import (ActionCosts, Calibration, ShapeAdjustment, box_features, distinct_sizes,
                                   fit_calibration, fit_shape_adjustment, followed_cover, label_surplus,
                                   lost_object_matches, relative_log_sizes, select_shown, size_distance)
from proposals.edge_bias import fit_edge_bias, shift_edges
from proposals.labels import BACKGROUND
from proposals.regions import CARRIED, FROM_PIXELS, MOTION_OFFSETS_S
from proposals.tracking import FLOW_STEP_SECONDS, frames_between

logger = logging.getLogger(__name__)

MODEL_SOURCES = (AnnotationSource.MODEL, AnnotationSource.PROPAGATION)
# Proposals carried from confirmed boxes (followed, or between two labelled frames) are stored
# as propagation; the rest as the model's.
CARRIED_SOURCES = tuple(str(source) for source in CARRIED)
# The published per-action costs (seconds) that decide whether a proposal is worth showing.
COSTS = ActionCosts()
# Proposals built per frame; those not worth showing stay hidden but are still scored
# against the person's boxes when the frame is completed, to calibrate the next ones.
PROPOSALS_GENERATED = 30
PROPOSALS_SHOWN_MAX = 20
# While the project has decided fewer outcomes than this, show a few careful guesses.
WARM_AFTER_DECISIONS = 30
COLD_START_SHOWN = 3
# Per-source prior chance that a proposal is useful, until the project's history speaks:
# a box followed from a confirmed one is usually right, a class-agnostic segment rarely.
SOURCE_PRIOR = {
    "propagation": 0.5, "interpolation": 0.3, "detector": 0.3, "exemplar": 0.2, "motion": 0.15, "candidate": 0.1,
}
DEFAULT_PRIOR = 0.1
# In a shot with labelled frames their confirmed boxes are followed in, and a detector's box
# there is nearly always one of those objects again (3 of 94 kept in four kept bench/assist.py
# runs): at its own prior a newly promoted detector's first boxes were shown beside the followed
# ones until a dozen had been rejected. Moving blobs there are seldom kept either (10 of 155),
# but they find what the tracker loses (night's street lights), and at this prior their first
# was hidden, so the calibration never learned it: theirs stays (bench/ASSIST.md, session 43).
LABELLED_SHOT_DETECTOR_PRIOR = 0.05
CALIBRATION_HISTORY = 2000
# The pixels' boxes (class-agnostic segments, moving blobs) of a size no confirmed box of the
# project has, further than this from every one (proposals.calibration.size_distance), are
# calibrated on a history of their own: mostly several objects merged or a sliver of an edge,
# they were never kept, and among them the few boxes of object size that were kept sank
# under the break-even (bench/ASSIST.md, session 46). Their own history starts from a
# fraction of their source's prior, and says whether this project's odd sizes are objects.
SIZE_TYPED_SOURCES = tuple(str(source) for source in FROM_PIXELS)
ODD_SIZE_DISTANCE = 0.4
ODD_SIZE_PRIOR_SHARE = 0.25
# A pixels' box that may be an object the tracker lost (proposals.calibration.lost_object_matches:
# its label is one the labelled frames carry more of than the followed boxes hold, in free space,
# of that object's size) is calibrated on a history of its own, from a prior above the break-even:
# beside followed boxes the others are nearly never kept (chances of 0.003-0.04), and a hand's
# segment at IoU 0.93 with its own label was hidden among them. Of such boxes in three kept
# bench/assist.py runs (counter, night, an unseen counter video), 3 of 5 were kept, against 7 of
# 2,272 other pixels' boxes there (bench/ASSIST.md, session 48); the project's own history
# says whether its lost objects are found this way.
LOST_OBJECT_PRIOR = 0.3
# Where nothing is followed, a box that another source found too (RegionProposal.backed) is
# calibrated on a history of its own, as likely as not until the project's history speaks: of
# such boxes on the first frames of a generated counter and night video's shots, 0.86 lay on an
# object, against 0.15 of the others (bench/ASSIST.md, session 50).
BACKED_PRIOR = 0.5
# Sizes count once the project has confirmed this many boxes; the latest this many count.
OBJECT_SIZES_MIN = 5
OBJECT_SIZES_HISTORY = 2000
# The latest kept followed boxes a label's edge bias is learned from (proposals.edge_bias).
EDGE_BIAS_HISTORY = 1000
POLICY_CACHE_SIZE = 64
# A refreshed proposal on a held frame replaces an open one it overlaps this much.
IN_PLACE_IOU = 0.5
# Frames re-proposed ahead of time when a frame is completed: the next one in the queue.
REFRESH_FRAMES_AFTER_COMPLETION = 1

# Exemplars: a few of the latest confirmed boxes per label, for the latest labels; their
# crops are kept per process (keyed by annotation id and version). Enough labels for a whole
# taxonomy of the usual size: with only the latest six, four of a counter's ten labels were
# never searched on a new shot, and their objects were left to the candidates and their often
# wrong index labels (bench/ASSIST.md, session 44). Each crop costs about 40 ms on two CPU
# cores (three scales of template matching), so the bound keeps a large taxonomy's search near
# 1.6 s; the next frame in the queue is refreshed while the person works on the current one.
EXEMPLARS_PER_LABEL = 2
EXEMPLAR_LABELS = 20
EXEMPLAR_SCAN = 400
EXEMPLAR_CACHE_SIZE = 256

# Guards both per-process caches below (show policies, exemplar crops).
_cache_lock = threading.Lock()
_exemplar_cache: dict[tuple[int, int], tuple[np.ndarray, int]] = {}
_policy_cache: dict[int, tuple[tuple[int, int], "ShowPolicy"]] = {}


def clear_caches() -> None:
    """Forget the cached crops and show policies: they are keyed by ids (an annotation's and
    its version, a project's and its count of decisions) that a new database (a test's)
    reuses for other boxes and projects."""
    with _cache_lock:
        _exemplar_cache.clear()
        _policy_cache.clear()


# --- label suggestions for a box drawn by hand ------------------------------------------


def label_suggestions(*, frame: Frame, box: tuple[float, float, float, float], top: int = 3):
    """The model's top labels for ``box`` on ``frame``: (suggestions, index state)."""
    weights = project_feature_weights(frame.project_id)
    state = index_state_peek(frame.project, weights)
    if state.pk is None or state.size == 0:
        return [], state
    stored = index_load(state)
    vectors = ml.embed_crops(read_frame_rgb(frame), np.array([box], dtype=np.float32), weights)
    return list(ml.suggest_labels(stored, vectors, top=top)[0]), state


# --- proposals --------------------------------------------------------------------------


# For a video whose frame rate the probe could not read.
ASSUMED_FPS = 25.0
# Boxes are followed through the video's frames between a labelled frame and the one proposed
# for when they are at most this far apart: the queue's keyframes are up to about 13 s from
# the labelled ones, and a longer stretch would hold up the proposals to decode.
FOLLOW_THROUGH_MAX_SECONDS = 20.0
# The frames between are held in memory together: at most this many pixels (about 180 MB) per
# labelled frame, so a large video is followed in longer steps (1080p: 28 frames; 640x360: all
# 100 of 20 s).
FOLLOW_THROUGH_MAX_PIXELS = 60_000_000


def _neighbours(frame: Frame, limit: int = 2) -> list[ml.Neighbour]:
    """The nearest frames of the same shot that have confirmed boxes."""
    if frame.shot_id is None:
        return []
    confirmed = Annotation.objects.filter(status=AnnotationStatus.CONFIRMED, label__isnull=False)
    candidates = (
        Frame.objects.filter(shot_id=frame.shot_id, annotations__in=confirmed)
        .exclude(pk=frame.pk)
        .distinct()
        .only("pk", "index", "image")
    )
    nearest = sorted(candidates, key=lambda f: abs(f.index - frame.index))[:limit]
    fps = (frame.video.fps if frame.video_id is not None else None) or ASSUMED_FPS
    wanted = {other.pk: _indices_between(frame, other, fps) for other in nearest}
    # All the labelled frames' frames between in one pass over the video (they often overlap).
    decoded = read_shot_frames(frame, sorted({index for indices in wanted.values() for index in indices}))
    neighbours = []
    for other in nearest:
        rows = list(confirmed.filter(frame=other).values_list("x1", "y1", "x2", "y2", "label_id"))
        neighbours.append(
            ml.Neighbour(
                rgb=read_frame_rgb(other),
                boxes=np.array([r[:4] for r in rows], dtype=np.float32),
                label_ids=np.array([r[4] for r in rows], dtype=np.int64),
                seconds_apart=abs(other.index - frame.index) / fps,
                between=[decoded[index] for index in wanted[other.pk] if index in decoded],
                after=other.index > frame.index,
            )
        )
    return neighbours


def followed_into(frame: Frame, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(float32 [N, 4] boxes, float [N] the tracker's confidence): the boxes of the frame's
    labelled neighbours followed into it (``rgb``), as :func:`proposals_refresh` follows them;
    none where nothing in its shot is labelled."""
    return ml.follow_neighbours(rgb, _neighbours(frame))


def _indices_between(frame: Frame, other: Frame, fps: float) -> list[int]:
    """Numbers of the video's frames between a labelled frame ``other`` of the shot and ``frame``,
    a ``FLOW_STEP_SECONDS`` apart, in order from ``other``, to follow its boxes through ([] where
    they are too far apart: the boxes are then followed in one jump, as where the video cannot
    be read)."""
    gap = abs(frame.index - other.index)
    if frame.video_id is None or gap > FOLLOW_THROUGH_MAX_SECONDS * fps:
        return []
    most = max(1, FOLLOW_THROUGH_MAX_PIXELS // max(1, frame.width * frame.height))
    step = max(FLOW_STEP_SECONDS * fps, gap / (most + 1))
    return frames_between(other.index, frame.index, step)


# --- which proposals are worth showing ---------------------------------------------------


@dataclass(frozen=True)
class ShowPolicy:
    """What the project's history says about its proposals: per-source calibrations of the
    score, how the box's shape and place move them, and the break-even chance above which
    showing a proposal saves time: the project's, and each source's (``break_evens``), since
    a kept proposal saves less where its label or box usually needs fixing."""

    calibrations: dict[str, Calibration]
    shape_adjustments: dict[str, ShapeAdjustment]
    label_wrong: float
    box_loose: float
    break_even: float
    decisions: int
    break_evens: dict[str, float] = field(default_factory=dict)
    # label id -> float [4] how far that label's followed boxes' edges usually are from where
    # people put them, as shares of the box's size (proposals.edge_bias); labels with none
    # are left out.
    edge_bias: dict[int, np.ndarray] = field(default_factory=dict)
    # float64 [K, 2] the distinct sizes of the project's confirmed boxes
    # (proposals.calibration.relative_log_sizes); empty while it has fewer than OBJECT_SIZES_MIN.
    object_sizes: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))

    @property
    def cold(self) -> bool:
        return self.decisions < WARM_AFTER_DECISIONS

    def odd_sized(self, sources, boxes, frame_sizes) -> np.ndarray:
        """bool [N]: which of the proposals are pixels' boxes of a size no confirmed box of the
        project has (:func:`odd_sized`)."""
        return odd_sized(sources, boxes, frame_sizes, self.object_sizes)

    def probability(self, source: str, shot_labelled: bool, scores, features=None, odd_size: bool = False,
                    lost_object: bool = False, backed: bool = False) -> np.ndarray:
        """float64 [N] P(useful) for float [N] ``scores`` and, when given, float [N, 5] box
        ``features`` (:func:`box_features`); ``odd_size``: the boxes are of a size no
        confirmed box has (:meth:`odd_sized`); ``lost_object``: they may be objects the tracker
        lost (:func:`lost_object_flags`); ``backed``: another source found them too
        (``RegionProposal.backed``)."""
        stratum = calibration_stratum(source, shot_labelled, odd_size, lost_object, backed)
        calibration = self.calibrations.get(stratum)
        if calibration is None:
            calibration = fit_calibration(
                [], [], prior=source_prior(source, shot_labelled, odd_size, lost_object, backed)
            )
        chance = calibration.probability(scores)
        adjustment = self.shape_adjustments.get(stratum)
        if adjustment is None or features is None:
            return chance
        return adjustment.probability(chance, features)

    def break_even_of(self, source: str) -> float:
        """The chance above which showing a proposal of ``source`` saves time."""
        return self.break_evens.get(source, self.break_even)

    def as_dict(self) -> dict:
        return {
            "decisions": self.decisions,
            "cold": self.cold,
            "break_even": round(self.break_even, 4),
            "break_evens": {source: round(value, 4) for source, value in sorted(self.break_evens.items())},
            "label_wrong": round(self.label_wrong, 4),
            "box_loose": round(self.box_loose, 4),
            "sources": {source: c.as_dict() for source, c in sorted(self.calibrations.items())},
            "shape": {source: a.as_dict() for source, a in sorted(self.shape_adjustments.items())},
            "edge_bias": {str(label): [round(float(v), 3) for v in bias] for label, bias in sorted(self.edge_bias.items())},
        }


def odd_sized(sources, boxes, frame_sizes, object_sizes) -> np.ndarray:
    """bool [N]: which of the proposals (str [N] ``sources``, float [N, 4] ``boxes`` in frames
    of ``frame_sizes``) are pixels' boxes (``SIZE_TYPED_SOURCES``) further than
    ``ODD_SIZE_DISTANCE`` from every one of ``object_sizes`` (:func:`project_object_sizes`;
    none known: no box is)."""
    sources = np.asarray(sources).reshape(-1)
    typed = np.isin(sources, SIZE_TYPED_SOURCES)
    if not len(object_sizes) or not typed.any():
        return np.zeros(len(sources), dtype=bool)
    return typed & (size_distance(relative_log_sizes(boxes, frame_sizes), object_sizes) > ODD_SIZE_DISTANCE)


def calibration_stratum(
    source: str, shot_labelled: bool, odd_size: bool = False, lost_object: bool = False, backed: bool = False
) -> str:
    """The name of the history a proposal is calibrated on: its source, whether its frame's
    shot already had confirmed boxes (see ``ProposalOutcome.shot_labelled``), and for the
    pixels' boxes whether they may be an object the tracker lost (``LOST_OBJECT_PRIOR``) or
    else whether no confirmed box has their size (see ``SIZE_TYPED_SOURCES``); else whether
    another source found the box too (``BACKED_PRIOR``)."""
    context = source + ("/labelled-shot" if shot_labelled else "")
    if lost_object:
        return context + "/lost-object"
    if odd_size:
        return context + "/odd-size"
    return context + ("/backed" if backed else "")


def source_prior(
    source: str, shot_labelled: bool, odd_size: bool = False, lost_object: bool = False, backed: bool = False
) -> float:
    """The chance that a proposal of ``source`` is useful before the project's history says."""
    if lost_object:
        return LOST_OBJECT_PRIOR
    if backed and not odd_size:
        return BACKED_PRIOR
    if source == "detector" and shot_labelled:
        return LABELLED_SHOT_DETECTOR_PRIOR
    return SOURCE_PRIOR.get(source, DEFAULT_PRIOR) * (ODD_SIZE_PRIOR_SHARE if odd_size else 1.0)


def _smoothed_share(hits: int, total: int, prior: float, strength: float = 5.0) -> float:
    return (hits + strength * prior) / (total + strength)


def show_policy(*, project_id: int) -> ShowPolicy:
    """Fit the policy on the project's latest decided outcomes (cached until they change)."""
    decided = ProposalOutcome.objects.filter(project_id=project_id, decided_at__isnull=False)
    decisions = decided.count()
    key = (project_id, decisions)
    with _cache_lock:
        cached = _policy_cache.get(project_id)
        if cached is not None and cached[0] == key:
            return cached[1]
    policy = fit_show_policy(decided, decisions=decisions, object_sizes=project_object_sizes(project_id))
    with _cache_lock:
        if len(_policy_cache) >= POLICY_CACHE_SIZE:
            _policy_cache.pop(next(iter(_policy_cache)))
        _policy_cache[project_id] = (key, policy)
    return policy


def project_object_sizes(project_id: int, *, confirmed_before=None) -> np.ndarray:
    """float64 [K, 2]: the distinct sizes (:func:`proposals.calibration.distinct_sizes`) of the
    project's latest confirmed boxes (those last changed before ``confirmed_before`` when
    given); none while it has fewer than ``OBJECT_SIZES_MIN``."""
    confirmed = Annotation.objects.filter(project_id=project_id, status=AnnotationStatus.CONFIRMED)
    if confirmed_before is not None:
        confirmed = confirmed.filter(updated_at__lt=confirmed_before)
    rows = list(confirmed.order_by("-updated_at", "-id")
                .values_list("x1", "y1", "x2", "y2", "frame__width", "frame__height")[:OBJECT_SIZES_HISTORY])
    if len(rows) < OBJECT_SIZES_MIN:
        return np.zeros((0, 2))
    rows = np.asarray(rows, dtype=np.float64)
    return distinct_sizes(relative_log_sizes(rows[:, :4], rows[:, 4:]))


def fit_show_policy(decided: QuerySet[ProposalOutcome], *, decisions: int, object_sizes=None) -> ShowPolicy:
    """The policy fitted on ``decided`` outcomes (``decisions`` of them), uncached: the
    project's, or those decided before a frame when bench/policy_replay.py replays a run.
    ``object_sizes``: the project's (:func:`project_object_sizes`); none: no box is odd-sized."""
    object_sizes = np.zeros((0, 2)) if object_sizes is None else np.asarray(object_sizes, np.float64)
    fields = ("score", "useful", "box", "frame__width", "frame__height", "lost_object", "backed", "id", "frame_id")
    histories = {
        (source, shot_labelled): list(
            decided.filter(source=source, shot_labelled=shot_labelled)
            .order_by("-decided_at", "-id")
            .values_list(*fields)[:CALIBRATION_HISTORY]
        )
        for source, shot_labelled in decided.values_list("source", "shot_labelled").distinct()
    }
    # One read of the followed boxes for every history: strata share their frames.
    followed = _followed_boxes(decided, {row[-1] for rows in histories.values() for row in rows})
    calibrations, shape_adjustments = {}, {}
    for (source, shot_labelled), history in histories.items():
        odd = odd_sized([source] * len(history), [r[2] for r in history], [r[3:5] for r in history], object_sizes)
        # A box that may be a lost object also stays in its source's own history: taken out, the
        # lost objects took that history's few kept boxes with them, and a moving blob on a lost
        # banana that the index labelled orange sank under the break-even (bench/ASSIST.md,
        # session 48).
        lost = np.array([bool(r[5]) for r in history], dtype=bool)
        # So does a backed box: taken out, the backed boxes took most of a new shot's kept
        # segments with them, and a segment on an orange at IoU 0.98 that nothing backed sank
        # under the break-even (bench/ASSIST.md, session 50).
        backed = np.array([bool(r[6]) for r in history], dtype=bool) & ~odd & ~lost
        members = {
            (False, False, False): ~odd | lost, (True, False, False): odd & ~lost,
            (False, True, False): lost, (False, False, True): backed,
        }
        for (odd_size, lost_object, is_backed), member in members.items():
            rows = [row for row, is_member in zip(history, member.tolist()) if is_member]
            if (odd_size or lost_object or is_backed) and not rows:
                continue
            prior = source_prior(source, shot_labelled, odd_size, lost_object, is_backed)
            stratum = calibration_stratum(source, shot_labelled, odd_size, lost_object, is_backed)
            scores, useful = [r[0] for r in rows], [r[1] for r in rows]
            calibrations[stratum] = fit_calibration(scores, useful, prior=prior)
            adjustment = fit_shape_adjustment(
                calibrations[stratum].probability(scores),
                box_features([r[2] for r in rows], [r[3:5] for r in rows],
                             *_followed_features_of_outcomes(rows, followed)),
                useful, prior=prior,
            )
            if adjustment is not None:
                shape_adjustments[stratum] = adjustment
    kept = list(
        decided.filter(useful=True).order_by("-decided_at", "-id")
        .values_list("source", "label_right", "box_right")[:CALIBRATION_HISTORY]
    )
    label_wrong, box_loose = _fix_shares(kept, label_prior=0.3, box_prior=0.2)
    # A followed box carries its confirmed label, a candidate's comes from the index and is
    # often wrong: each source's kept proposals save what their own fixes leave, shrunk
    # towards the project's while a source has kept few (bench/ASSIST.md, session 30).
    break_evens = {
        source: COSTS.break_even(*_fix_shares([row for row in kept if row[0] == source],
                                              label_prior=label_wrong, box_prior=box_loose))
        for source in {source for source, _ in histories}
    }
    return ShowPolicy(
        calibrations=calibrations,
        shape_adjustments=shape_adjustments,
        label_wrong=label_wrong,
        box_loose=box_loose,
        break_even=COSTS.break_even(label_wrong, box_loose),
        decisions=decisions,
        break_evens=break_evens,
        edge_bias=_edge_biases(decided),
        object_sizes=object_sizes,
    )


def _edge_biases(decided: QuerySet[ProposalOutcome]) -> dict[int, np.ndarray]:
    """label id -> the edge bias of its followed boxes (proposals.edge_bias), from the latest
    ``decided`` followed boxes people kept with their label: a box confirmed as it was shown
    was accepted, one whose box they moved was fixed, and each is measured from the box as
    the tracker gave it (``box_as_followed``), before any bias moved it."""
    rows = list(
        decided.filter(source__in=CARRIED_SOURCES, shown=True, useful=True, label_right=True,
                       annotation_id__isnull=False, label_id__isnull=False)
        .order_by("-decided_at", "-id")
        .values_list("label_id", "box", "box_as_followed", "annotation_id")[:EDGE_BIAS_HISTORY]
    )
    final = {
        pk: box for pk, *box in Annotation.objects.filter(
            pk__in=[row[3] for row in rows], status=AnnotationStatus.CONFIRMED
        ).values_list("pk", "x1", "y1", "x2", "y2")
    }
    accepted: dict[int, list] = {}
    fixed: dict[int, list] = {}
    for label_id, shown_box, followed_box, annotation_id in rows:
        confirmed = final.get(annotation_id)
        if confirmed is None:
            continue
        followed = followed_box or shown_box
        if np.allclose(confirmed, shown_box, atol=0.5):
            accepted.setdefault(label_id, []).append(edge_moves([followed], [shown_box])[0])
        else:
            fixed.setdefault(label_id, []).append(edge_moves([followed], [confirmed])[0])
    biases = {label: fit_edge_bias(offsets, accepted.get(label, [])) for label, offsets in fixed.items()}
    return {label: bias for label, bias in biases.items() if bias.any()}


def _with_edge_bias(proposals: list, policy: ShowPolicy, frame_size: tuple[int, int]) -> tuple[list, list]:
    """``proposals`` with each followed box moved by its label's edge bias, and for each the
    box as followed where it moved (None elsewhere), for its outcome."""
    moved, as_followed = [], []
    for proposal in proposals:
        bias = policy.edge_bias.get(proposal.label_id) if proposal.source in CARRIED_SOURCES else None
        if bias is None:
            moved.append(proposal)
            as_followed.append(None)
            continue
        box = shift_edges([proposal.box], bias, frame_size)[0]
        moved.append(replace(proposal, box=tuple(float(v) for v in box)))
        as_followed.append([float(v) for v in proposal.box])
    return moved, as_followed


def _fix_shares(kept: list, *, label_prior: float, box_prior: float) -> tuple[float, float]:
    """(label_wrong, box_loose): the smoothed shares of ``kept`` ``(source, label_right,
    box_right)`` rows whose label, and whose box, had to be fixed."""
    label_wrong = _smoothed_share(sum(1 for _, label_right, _ in kept if label_right is False), len(kept), label_prior)
    box_loose = _smoothed_share(sum(1 for _, _, box_right in kept if box_right is False), len(kept), box_prior)
    return label_wrong, box_loose


OUTCOME_FRAMES_PER_QUERY = 500


def _followed_boxes(decided, frame_ids) -> dict[int, list]:
    """frame id -> ``(outcome id, box, score, label id)`` of the decided propagation outcomes of
    ``frame_ids``, in the order they were made."""
    frame_ids = sorted(frame_ids)
    followed: dict[int, list] = {}
    for start in range(0, len(frame_ids), OUTCOME_FRAMES_PER_QUERY):
        chunk = frame_ids[start:start + OUTCOME_FRAMES_PER_QUERY]
        for pk, frame_id, box, score, label_id in (
            decided.filter(source="propagation", frame_id__in=chunk)
            .order_by("id").values_list("id", "frame_id", "box", "score", "label_id")
        ):
            followed.setdefault(frame_id, []).append((pk, box, score, label_id))
    return followed


def _followed_features_of_outcomes(rows: list, followed: dict[int, list]) -> tuple[np.ndarray, np.ndarray]:
    """float64 [N] :func:`followed_cover` and float64 [N] :func:`label_surplus` of decided
    outcome ``rows`` (``id`` and ``frame_id`` last), against the boxes followed into the same
    frame by the same build (:func:`_followed_boxes`; a frame's decided outcomes are those of
    its last build)."""
    members_of: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        members_of.setdefault(row[-1], []).append(i)
    cover, surplus = np.zeros(len(rows)), np.zeros(len(rows))
    for frame_id, members in members_of.items():
        entries = followed.get(frame_id)
        if entries:
            row_of = {pk: j for j, (pk, _, _, _) in enumerate(entries)}
            own = np.array([row_of.get(rows[i][-2], -1) for i in members])
            cover[members] = followed_cover(
                [rows[i][2] for i in members], [e[1] for e in entries], [e[2] for e in entries], own=own
            )
            if (own >= 0).any():  # only a followed box has rivals: other strata skip the work
                labels, scores = [_label_or_background(e[3]) for e in entries], [e[2] for e in entries]
                rivalled = label_surplus(labels, scores, [True] * len(entries))
                surplus[members] = np.where(own >= 0, rivalled[np.maximum(own, 0)], 0.0)
    return cover, surplus


def _label_or_background(label_id: int | None) -> int:
    return BACKGROUND if label_id is None else int(label_id)


def proposal_chances(
    policy: ShowPolicy, sources, scores, boxes, labels, *, shot_labelled: bool, frame_size: tuple[int, int],
    lost=None, backed=None,
) -> np.ndarray:
    """float64 [N] P(useful) of proposals from str [N] ``sources`` with float [N] ``scores``,
    float [N, 4] ``boxes`` and int [N] ``labels`` (BACKGROUND where none) on a frame of
    ``frame_size`` (width, height), all of one frame: how much of each box the followed ones
    cover, and whether a likelier followed box has its label, are part of its chance, and
    those of bool [N] ``lost`` (:func:`lost_object_flags`; none where not given) are
    calibrated as boxes of objects the tracker lost, and those of bool [N] ``backed``
    (``RegionProposal.backed``) as boxes another source found too."""
    sources = np.asarray(sources)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    cover = _cover_by_followed(sources, scores, boxes)
    surplus = label_surplus(labels, scores, sources == "propagation")
    features = box_features(boxes, [frame_size] * len(scores), cover, surplus)
    lost = _flags(lost, len(scores))
    odd = policy.odd_sized(sources, boxes, frame_size) & ~lost
    backed = _flags(backed, len(scores)) & ~odd & ~lost
    probabilities = np.zeros(len(scores))
    for source, odd_size, lost_object, is_backed in set(zip(sources.tolist(), odd.tolist(), lost.tolist(),
                                                            backed.tolist())):
        members = np.flatnonzero((sources == source) & (odd == odd_size) & (lost == lost_object)
                                 & (backed == is_backed))
        probabilities[members] = policy.probability(source, shot_labelled, scores[members], features[members],
                                                    odd_size, lost_object, is_backed)
    return probabilities


def _flags(flags, count: int) -> np.ndarray:
    """bool [count] ``flags``, all False where not given."""
    return np.zeros(count, dtype=bool) if flags is None else np.asarray(flags, dtype=bool).reshape(-1)


def _cover_by_followed(sources: np.ndarray, scores: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """float64 [N] :func:`followed_cover` of each of a frame's proposals (str [N] ``sources``,
    float [N] ``scores``, float [N, 4] ``boxes``) by its followed boxes, each but itself."""
    followed = np.flatnonzero(sources == "propagation")
    own = np.full(len(scores), -1)
    own[followed] = np.arange(len(followed))
    return followed_cover(boxes, boxes[followed], scores[followed], own)


def lost_object_flags(proposals: list, carried: list, frame_size: tuple[int, int]) -> np.ndarray:
    """bool [N]: which of a frame's ``proposals`` may be an object the tracker lost
    (:func:`proposals.calibration.lost_object_matches`), given the confirmed boxes of the
    labelled frames they were followed from (``carried``: ``(label ids, boxes)`` per frame)."""
    if not proposals or not carried:
        return np.zeros(len(proposals), dtype=bool)
    sources = np.array([p.source for p in proposals])
    scores = np.array([p.score for p in proposals], dtype=np.float64)
    boxes = np.array([p.box for p in proposals], dtype=np.float64).reshape(-1, 4)
    labels = np.array([_label_or_background(p.label_id) for p in proposals])
    cover = _cover_by_followed(sources, scores, boxes)
    is_carried = np.isin(sources, CARRIED_SOURCES)
    return lost_object_matches(boxes, scores, labels, np.isin(sources, SIZE_TYPED_SOURCES), cover,
                               (labels[is_carried], scores[is_carried], boxes[is_carried]), carried, frame_size)


def choose_shown(
    proposals: list, policy: ShowPolicy, *, shot_labelled: bool, frame_size: tuple[int, int], lost=None
) -> tuple[list[int], np.ndarray]:
    """Indices of ``proposals`` to show (best first) and every proposal's P(useful); ``lost``:
    which may be objects the tracker lost (:func:`lost_object_flags`); which another source found
    too, each proposal says (``backed``).

    Without history the chances are only priors, so a cold project shows the few proposals
    it scores best; once outcomes are decided, every proposal worth showing is shown.
    """
    scores = np.array([p.score for p in proposals], dtype=np.float64)
    probabilities = proposal_chances(
        policy, [p.source for p in proposals], scores, [p.box for p in proposals],
        [_label_or_background(p.label_id) for p in proposals], shot_labelled=shot_labelled, frame_size=frame_size,
        lost=lost, backed=[p.backed for p in proposals],
    )
    if policy.cold:
        return np.argsort(-scores, kind="stable")[:COLD_START_SHOWN].tolist(), probabilities
    break_evens = [policy.break_even_of(p.source) for p in proposals]
    shown = select_shown(probabilities, break_evens, ranking=scores, limit=PROPOSALS_SHOWN_MAX)
    return shown.tolist(), probabilities


def proposal_policy_summary(*, project_id: int, recent_frames: int = 50) -> dict:
    """The show policy as admins see it, with how many proposals the latest frames got."""
    recent = list(
        ProposalOutcome.objects.filter(project_id=project_id)
        .values_list("frame_id", flat=True)
        .order_by("-frame_id")
        .distinct()[:recent_frames]
    )
    outcomes = ProposalOutcome.objects.filter(project_id=project_id, frame_id__in=recent)
    frames = max(len(recent), 1)
    return {
        **show_policy(project_id=project_id).as_dict(),
        "recent_frames": len(recent),
        "shown_per_frame": round(outcomes.filter(shown=True).count() / frames, 2),
        "generated_per_frame": round(outcomes.count() / frames, 2),
        "honesty": _chance_honesty(outcomes.filter(decided_at__isnull=False, chance__isnull=False)),
    }


def _chance_honesty(decided) -> dict:
    """Whether the chances the policy gave are borne out: of ``decided`` outcomes with a
    recorded chance, how many the policy expected to be useful (the sum of their chances)
    against how many were, and the Brier score (mean squared gap between chance and outcome;
    0 is perfect, 0.25 is a coin toss's at 1/2)."""
    rows = np.array(list(decided.values_list("chance", "useful")), dtype=np.float64).reshape(-1, 2)
    if not len(rows):
        return {"decided": 0, "expected_useful": 0.0, "useful": 0, "brier": None}
    return {
        "decided": len(rows),
        "expected_useful": round(float(rows[:, 0].sum()), 1),
        "useful": int(rows[:, 1].sum()),
        "brier": round(float(np.mean((rows[:, 0] - rows[:, 1]) ** 2)), 4),
    }


# --- how unsure the models are about a frame (the queue's order) --------------------------

# A frame with nothing proposed: the models know nothing there, a person's boxes teach most.
UNKNOWN_FRAME_UNCERTAINTY = 0.9
UNCERTAINTY_TOP = 5


def frame_uncertainty(proposals: list, probabilities: np.ndarray) -> float:
    """How unsure the models are about a frame, in [0, 1): over its most likely proposals,
    the mean of two doubts: whether the object is there (P(useful) near 1/2 is the least
    sure) and which label it has (a small margin between the top two suggestions; where the
    detector and the index disagree, the index's label comes second with a score close to
    the detector's)."""
    if not proposals:
        return UNKNOWN_FRAME_UNCERTAINTY
    top = np.argsort(-probabilities, kind="stable")[:UNCERTAINTY_TOP]
    doubts = []
    for i in top:
        presence = 1.0 - abs(2.0 * float(probabilities[i]) - 1.0)
        scores = [s.score for s in proposals[i].suggestions[:2]]
        margin = float(np.clip(scores[0] - (scores[1] if len(scores) > 1 else 0.0), 0.0, 1.0)) if scores else 0.0
        doubts.append(0.5 * presence + 0.5 * (1.0 - margin))
    return float(min(np.mean(doubts), 0.999))


def _record_uncertainty(frame: Frame, uncertainty: float) -> float:
    """Store the frame's uncertainty and move its queue priority by the change (the caller
    holds the frame's row lock). It counts for nothing on keyframes, which the queue offers
    before the other frames in its own order (see media.selectors), nor under the sequential
    order."""
    if frame.is_keyframe or ProjectLearning.objects.filter(
        project_id=frame.project_id, queue_order=ProjectLearning.QueueOrder.SEQUENTIAL
    ).exists():
        uncertainty = 0.0
    before = FrameProposals.objects.filter(frame_id=frame.pk).values_list("uncertainty", flat=True).first() or 0.0
    if uncertainty != before:
        Frame.objects.filter(pk=frame.pk).update(priority=F("priority") + (uncertainty - before))
    return uncertainty


# --- building a frame's proposals --------------------------------------------------------


def _sync_index_quietly(project_id: int) -> None:
    """Bring the index up to date before proposing; a concurrent sync does it for us."""
    try:
        index_sync(project_id=project_id)
    except IndexConflict:
        logger.info("index of project %s is being synced elsewhere; proposing from the current one", project_id)


def _event(annotation: Annotation, action: AnnotationAction, before: dict | None) -> AnnotationEvent:
    after = None if action == AnnotationAction.DELETED else annotation_snapshot(annotation)
    return AnnotationEvent(
        project_id=annotation.project_id, annotation_id=annotation.pk, frame_id=annotation.frame_id,
        action=action, before=before, after=after,
    )


def _proposal_fields(proposal, model_version: str) -> dict:
    return {
        "label_id": proposal.label_id,
        "x1": proposal.box[0], "y1": proposal.box[1], "x2": proposal.box[2], "y2": proposal.box[3],
        "source": AnnotationSource.PROPAGATION if proposal.source in CARRIED_SOURCES else AnnotationSource.MODEL,
        "score": proposal.score,
        "suggestions": [{"label_id": s.label_id, "score": s.score} for s in proposal.suggestions],
        "model_version": model_version,
    }


# In the cache's name: a cache written before motion candidates existed is not read (it
# would lack them for good), but computed again.
CANDIDATES_FORMAT = 2


def _candidates_name(frame: Frame, weights: str | None) -> str:
    feature = hashlib.sha1(ml.feature_key(weights).encode()).hexdigest()[:12]
    folder = f"orgs/{frame.project.organization_id}/projects/{frame.project_id}/candidates"
    return f"{folder}/{frame.pk}-{feature}-v{CANDIDATES_FORMAT}.npz"


def frame_candidates_cached(frame: Frame, rgb: np.ndarray, weights: str | None = None):
    """The frame's class-agnostic candidates (with, in a video, the objects that move in the
    seconds around it) and their embeddings, computed once per frame and feature model: they
    do not change as the project learns, so a refresh only embeds the boxes propagated from
    confirmed ones, and a person waits less."""
    name = _candidates_name(frame, weights)
    try:
        with default_storage.open(name, "rb") as handle:
            return ml.frame_candidates_from_bytes(handle.read())
    except (FileNotFoundError, OSError, ValueError, KeyError):
        pass  # not computed yet (or unreadable): compute and store it
    candidates = ml.frame_candidates(rgb, weights, others=read_frames_around(frame, MOTION_OFFSETS_S))
    if default_storage.exists(name):
        default_storage.delete(name)
    default_storage.save(name, ContentFile(ml.frame_candidates_to_bytes(candidates)))
    return candidates


def _exemplars(frame: Frame, *, shot_labelled: bool) -> list[tuple[np.ndarray, int]]:
    """Crops of the project's latest confirmed boxes, a few per label, to find more like them.

    For still images, and for video frames of shots nobody has labelled yet. A frame of a
    labelled shot gets the confirmed boxes of its neighbours followed into it, which beats
    a search for look-alikes across a moving, textured scene. On the first frame of a new
    shot nothing is followed, yet the objects are often of kinds seen in earlier shots.
    On crowded stills (BCCD) it finds 34% of the cells at 20 boxes an image.
    """
    if frame.video_id is not None and shot_labelled:
        return []
    recent = (
        Annotation.objects.filter(project_id=frame.project_id, status=AnnotationStatus.CONFIRMED, label__isnull=False)
        .order_by("-updated_at", "-id")
        .values_list("pk", "version", "frame_id", "label_id", "x1", "y1", "x2", "y2")[:EXEMPLAR_SCAN]
    )
    chosen: dict[int, list] = {}
    for row in recent:
        if row[3] not in chosen and len(chosen) >= EXEMPLAR_LABELS:
            continue
        picked = chosen.setdefault(row[3], [])
        if len(picked) < EXEMPLARS_PER_LABEL:
            picked.append(row)
    rows = [row for picked in chosen.values() for row in picked]
    missing = [row for row in rows if (row[0], row[1]) not in _exemplar_cache]
    frames = {f.pk: f for f in Frame.objects.filter(pk__in={row[2] for row in missing}).only("pk", "image")}
    for pk, version, frame_id, label_id, x1, y1, x2, y2 in missing:
        if frame_id == frame.pk:
            continue  # boxes already confirmed here are not proposed again anyway
        rgb = read_frame_rgb(frames[frame_id])
        crop = np.ascontiguousarray(rgb[int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))])
        with _cache_lock:
            if len(_exemplar_cache) >= EXEMPLAR_CACHE_SIZE:
                _exemplar_cache.pop(next(iter(_exemplar_cache)))
            _exemplar_cache[(pk, version)] = (crop, label_id)
    return [_exemplar_cache[(row[0], row[1])] for row in rows if (row[0], row[1]) in _exemplar_cache]


def _project_detector(project_id: int):
    """The project's promoted detector, keeping only detections of labels still in use (a
    label deprecated or deleted since the model was trained is not proposed)."""
    detector = current_detector(project_id=project_id)
    if detector is None:
        return None
    usable = np.array(list(Label.objects.filter(project_id=project_id, deprecated=False).values_list("pk", flat=True)))

    def detect(rgb: np.ndarray):
        boxes, scores, labels = detector(rgb)
        keep = np.isin(labels, usable)
        return boxes[keep], scores[keep], labels[keep]

    return detect


def proposals_refresh(*, frame_id: int, force: bool = False) -> int:
    """Rebuild the frame's model proposals from what the loop knows now; never touch human work.

    Shows only the proposals worth showing (see :func:`show_policy`) and records every
    proposal, shown or hidden, as a pending :class:`ProposalOutcome`. On a frame nobody holds
    the open proposals are replaced. On a frame someone holds, nothing they may have seen is
    pulled from under them: matching proposals are updated in place (same id and version,
    so their next accept or reject still applies), new ones are added, none is deleted.
    Without ``force`` a frame whose proposals are already fresh is left alone.
    Returns how many proposals the frame now shows.
    """
    started = timezone.now()
    frame = Frame.objects.select_related("project", "video").filter(pk=frame_id).first()
    if frame is None or frame.status == FrameStatus.COMPLETE:
        return 0
    clock = learning_clock_read(project_id=frame.project_id)
    built = FrameProposals.objects.filter(frame_id=frame.pk).values_list("built_at_change", flat=True).first()
    if not force and built is not None and built >= clock:
        FrameProposals.objects.filter(frame_id=frame.pk).update(refresh_requested_at=None)
        return _open_proposals(frame.pk).count()
    _sync_index_quietly(frame.project_id)
    weights = project_feature_weights(frame.project_id)
    state = index_state(frame.project, weights)
    stored = index_load(state)
    kept = Annotation.objects.filter(frame=frame).exclude(status=AnnotationStatus.PROPOSED, source__in=MODEL_SOURCES)
    avoid = np.array(list(kept.values_list("x1", "y1", "x2", "y2")), dtype=np.float32).reshape(-1, 4)
    rgb = read_frame_rgb(frame)
    neighbours = _neighbours(frame)
    shot_labelled = bool(neighbours)
    policy = show_policy(project_id=frame.project_id)
    frame_size = (frame.width, frame.height)

    def chance(sources, scores, boxes, labels):
        return proposal_chances(
            policy, sources, scores, boxes, labels, shot_labelled=shot_labelled, frame_size=frame_size
        )

    # Only where boxes followed from confirmed ones compete with the pixels' candidates (on
    # stills, BCCD, letting the chance decide between exemplar and candidate boxes cost
    # 0.864 -> 0.893 of the manual time), and once the project has a history: a cold
    # policy's chances are one prior per source, which would put any followed box, however
    # far it drifted, above a candidate that fits the object.
    proposals = [
        p for p in ml.propose(
            rgb, neighbours=neighbours, stored=stored, avoid_boxes=avoid,
            candidates=frame_candidates_cached(frame, rgb, weights),
            exemplars=_exemplars(frame, shot_labelled=shot_labelled),
            detector=_project_detector(frame.project_id), refiner=current_refiner(project_id=frame.project_id),
            weights=weights, top_k=PROPOSALS_GENERATED,
            chance=chance if shot_labelled and not policy.cold else None,
        )
        if p.box[2] > p.box[0] and p.box[3] > p.box[1]
    ]
    proposals, boxes_as_followed = _with_edge_bias(proposals, policy, frame_size)
    lost = lost_object_flags(proposals, [(n.label_ids, n.boxes) for n in neighbours], frame_size)
    shown, probabilities = choose_shown(proposals, policy, shot_labelled=shot_labelled, frame_size=frame_size,
                                        lost=lost)
    uncertainty = frame_uncertainty(proposals, probabilities)
    model_version = f"{state.feature_key}@{state.version}"
    with transaction.atomic():
        locked = Frame.objects.select_for_update().get(pk=frame.pk)
        if locked.status == FrameStatus.COMPLETE:
            return 0
        count = _store_proposals(
            locked, proposals, shown, model_version, held=locked.assigned_to_id is not None,
            shot_labelled=shot_labelled, chances=probabilities, boxes_as_followed=boxes_as_followed, lost=lost,
        )
        # A person who opened the frame while this ran asked for what the loop learned after
        # this refresh read the clock: their request stays pending for its own refresh, or they
        # would stop waiting and be shown these older proposals.
        pending = (
            FrameProposals.objects.filter(frame_id=locked.pk, refresh_requested_at__gt=started)
            .values_list("refresh_requested_at", flat=True)
            .first()
        )
        FrameProposals.objects.update_or_create(
            frame_id=locked.pk,
            defaults={
                "built_at_change": clock, "built_at": timezone.now(), "refresh_requested_at": pending,
                "uncertainty": _record_uncertainty(locked, uncertainty),
            },
        )
    return count


def _open_proposals(frame_id: int):
    return Annotation.objects.filter(frame_id=frame_id, status=AnnotationStatus.PROPOSED, source__in=MODEL_SOURCES)


def _store_proposals(
    frame: Frame, proposals: list, shown: list[int], model_version: str, *, held: bool, shot_labelled: bool,
    chances: np.ndarray | None = None, boxes_as_followed: list | None = None, lost: np.ndarray | None = None,
) -> int:
    """Write the new proposals; the caller holds the frame's row lock. ``chances``: each
    proposal's P(useful) under the show policy, recorded with its outcome, as are each box as
    followed (``boxes_as_followed``, :func:`_with_edge_bias`) and whether it may be an object the
    tracker lost (``lost``, :func:`lost_object_flags`)."""
    # Human work may have landed while the proposals were computed: never duplicate it.
    human = list(
        Annotation.objects.filter(frame_id=frame.pk).exclude(status=AnnotationStatus.PROPOSED, source__in=MODEL_SOURCES)
        .values_list("pk", "x1", "y1", "x2", "y2")
    )
    on_human = np.zeros((len(proposals), len(human)), dtype=bool)  # proposal i duplicates human box j
    if human and proposals:
        human_boxes = np.array([row[1:] for row in human], dtype=np.float32)
        on_human = iou_matrix(np.array([p.box for p in proposals], np.float32), human_boxes) >= IN_PLACE_IOU
        shown = [i for i in shown if not on_human[i].any()]
    old = list(_open_proposals(frame.pk))
    events: list[AnnotationEvent] = []
    outcomes: list[ProposalOutcome] = []
    reused: dict[int, Annotation] = {}  # proposal index -> annotation updated in place
    if held and old:
        overlaps = iou_matrix(
            np.array([proposals[i].box for i in shown], dtype=np.float32).reshape(-1, 4),
            np.concatenate([_box_of(a) for a in old]),
        )
        taken: set[int] = set()
        for row, i in enumerate(shown):
            free = [j for j in np.argsort(-overlaps[row]).tolist() if j not in taken and overlaps[row, j] >= IN_PLACE_IOU]
            if free:
                taken.add(free[0])
                reused[i] = old[free[0]]
    else:
        events += [_event(a, AnnotationAction.DELETED, annotation_snapshot(a)) for a in old]
        Annotation.objects.filter(pk__in=[a.pk for a in old]).delete()
    alive = {a.pk for a in old} if held else set()
    # A proposal the person accepted, fixed or rejected while this refresh ran keeps its
    # outcome: that is their decision on what they were shown. What this refresh made again
    # on such a box is a copy, shown to nobody, and is not recorded beside it (replacing the
    # decision with a hidden copy lost the shown flag, and with it the accepted boxes the
    # edge bias learns from; bench/ASSIST.md, sessions 38 and 40).
    pending = ProposalOutcome.objects.filter(frame_id=frame.pk, decided_at__isnull=True)
    decided_here = set(pending.filter(annotation_id__in=[row[0] for row in human]).values_list("annotation_id", flat=True))
    acted = [j for j, row in enumerate(human) if row[0] in decided_here]
    copies = set(np.flatnonzero(on_human[:, acted].any(axis=1)).tolist())  # never shown: see above
    # Pending outcomes of proposals that are gone, or that were hidden, are replaced below.
    pending.exclude(annotation_id__in=(alive - {a.pk for a in reused.values()}) | decided_here).delete()
    shown_set = set(shown)
    for i, proposal in enumerate(proposals):
        if i in copies:
            continue
        annotation = None
        if i in reused:
            annotation = reused[i]
            before = annotation_snapshot(annotation)
            for name, value in _proposal_fields(proposal, model_version).items():
                setattr(annotation, name, value)
            annotation.save()  # same id and version: the holder's next action still applies
            events.append(_event(annotation, AnnotationAction.UPDATED, before))
        elif i in shown_set:
            annotation = Annotation.objects.create(
                project_id=frame.project_id, frame=frame, status=AnnotationStatus.PROPOSED,
                **_proposal_fields(proposal, model_version),
            )
            events.append(_event(annotation, AnnotationAction.CREATED, None))
        outcomes.append(
            ProposalOutcome(
                project_id=frame.project_id, frame_id=frame.pk, annotation_id=annotation.pk if annotation else None,
                source=proposal.source, shot_labelled=shot_labelled, score=proposal.score,
                label_id=proposal.label_id,
                box=[float(v) for v in proposal.box], shown=annotation is not None,
                box_as_followed=None if boxes_as_followed is None else boxes_as_followed[i],
                chance=None if chances is None else float(chances[i]),
                lost_object=lost is not None and bool(lost[i]),
                backed=proposal.backed,
            )
        )
    AnnotationEvent.objects.bulk_create(events)
    ProposalOutcome.objects.bulk_create(outcomes)
    return _open_proposals(frame.pk).count()


# --- when a frame is opened, and when it is completed -------------------------------------


def _built_at_change(frame: Frame, state: FrameProposals | None, clock: int) -> int:
    """The learning-clock reading the frame's proposals were built at. Proposals the loop
    did not build (imported with a dataset) are not the loop's to rebuild: they count as
    current."""
    if state is not None:
        return state.built_at_change
    return clock if _open_proposals(frame.pk).exists() else -1


def frame_proposals_state(*, frame: Frame) -> dict:
    """How current the frame's proposals are, for the workspace: ``proposals_state`` is
    "fresh", "refreshing" (a refresh is on its way: wait for it) or "stale"; the two
    versions are learning-clock readings (the proposals' and the project's now)."""
    clock = learning_clock_read(project_id=frame.project_id)
    state = FrameProposals.objects.filter(frame_id=frame.pk).first()
    built = _built_at_change(frame, state, clock)
    if state is not None and state.refresh_requested_at is not None:
        status = "refreshing"
    elif built >= clock or frame.status == FrameStatus.COMPLETE:
        status = "fresh"
    else:
        status = "stale"
    return {"proposals_state": status, "proposals_index_version": built, "index_version": clock}


def frame_proposals_prepare_open(*, frame: Frame) -> bool:
    """Called when a person takes ``frame`` (inside that transaction, the frame row locked).

    Stale proposals are dropped before the person sees them and an interactive refresh is
    asked for; the workspace waits for it. Returns whether a refresh was asked for.
    """
    clock = learning_clock_read(project_id=frame.project_id)
    state = FrameProposals.objects.filter(frame_id=frame.pk).first()
    if _built_at_change(frame, state, clock) >= clock or frame.status == FrameStatus.COMPLETE:
        return False
    if state is not None and state.refresh_requested_at is not None:
        return True  # already on its way (the person reopened the frame they hold)
    old = list(_open_proposals(frame.pk))
    AnnotationEvent.objects.bulk_create([_event(a, AnnotationAction.DELETED, annotation_snapshot(a)) for a in old])
    Annotation.objects.filter(pk__in=[a.pk for a in old]).delete()
    ProposalOutcome.objects.filter(frame_id=frame.pk, decided_at__isnull=True).delete()
    FrameProposals.objects.update_or_create(frame_id=frame.pk, defaults={"refresh_requested_at": timezone.now()})
    refresh_frame_soon(frame_id=frame.pk)
    return True


def frame_refreshes_overdue(*, waited: timedelta) -> list[int]:
    """Frames whose holder has waited longer than ``waited`` for a refresh (its message was lost)."""
    overdue = FrameProposals.objects.filter(refresh_requested_at__lt=timezone.now() - waited)
    return list(overdue.exclude(frame__status=FrameStatus.COMPLETE).values_list("frame_id", flat=True)[:100])


def _unheld_stale(queryset, project_id: int):
    clock = learning_clock_read(project_id=project_id)
    return (
        queryset.exclude(status=FrameStatus.COMPLETE)
        .filter(assigned_to__isnull=True)
        .exclude(proposal_state__built_at_change__gte=clock)
    )


def frames_to_repropose(*, project_id: int, built_before: int, limit: int) -> list[int]:
    """Frames nobody holds whose proposals were built before the learning clock read
    ``built_before`` (a promotion), in queue order: the bulk worker rebuilds them."""
    frames = (
        Frame.objects.filter(project_id=project_id, assigned_to__isnull=True)
        .exclude(status=FrameStatus.COMPLETE)
        .exclude(proposal_state__built_at_change__gte=built_before)
    )
    return list(in_queue_order(frames).values_list("pk", flat=True)[:limit])


def frames_to_refresh_after_completion(*, project_id: int, limit: int = REFRESH_FRAMES_AFTER_COMPLETION) -> list[int]:
    """The frame the queue hands out next, if its proposals are behind what the loop learned.

    Only that one: a person opens it within seconds, and every other frame is rebuilt when
    it is opened. Refreshing more would queue work ahead of the refresh a person waits for.
    """
    frames = _unheld_stale(Frame.objects.filter(project_id=project_id), project_id)
    return list(in_queue_order(frames).values_list("pk", flat=True)[:limit])
