"""The simulated annotator of bench/assist.py: matching, the cost model and the figures.

Pure functions on plain values (no server, no Django, no torch), so they are unit-tested
in tests/bench/test_assist_costs.py. Boxes are ``(x1, y1, x2, y2)`` pixel tuples with
exclusive right/bottom edges, as the API sends them.

Cost model (seconds a person spends; the manual baseline draws every box):

| action | cost |
| --- | --- |
| draw a box | 7 s, plus 3 s to choose its label |
| accept a correct proposal (IoU >= 0.7, right label) | 1.5 s |
| fix a proposal's label | + 3 s |
| fix a proposal's box (IoU 0.5-0.7 with the truth) | + 4 s |
| reject a shown proposal that matches nothing | 1 s |
| manual baseline, per box | 10 s |

A fixed proposal never costs more than drawing the box (capped at 10 s).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

Box = tuple[float, float, float, float]

DRAW_SECONDS = 7.0
CHOOSE_LABEL_SECONDS = 3.0
ACCEPT_SECONDS = 1.5
FIX_LABEL_SECONDS = 3.0
FIX_BOX_SECONDS = 4.0
REJECT_SECONDS = 1.0
MANUAL_SECONDS_PER_BOX = 10.0
MATCH_IOU = 0.5  # a proposal at least this close to a truth is "about that object"
GOOD_IOU = 0.7  # below this a matched proposal's box needs fixing
WARMUP_SHARE = 0.1  # the headline skips the first 10 % of frames labelled
CURVE_BUCKET = 10  # frames per point of the ratio curve


def iou(a: Box, b: Box) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def greedy_match(
    boxes: Sequence[Box], truths: Sequence[Box], threshold: float = MATCH_IOU
) -> list[tuple[int, int, float]]:
    """One-to-one pairs ``(box index, truth index, iou)``, highest IoU first, IoU >= threshold.

    Ties go to the lower box index, then the lower truth index, so the result is deterministic.
    """
    pairs = [(iou(box, truth), i, j) for i, box in enumerate(boxes) for j, truth in enumerate(truths)]
    pairs = sorted((p for p in pairs if p[0] >= threshold), key=lambda p: (-p[0], p[1], p[2]))
    used_boxes: set[int] = set()
    used_truths: set[int] = set()
    matches = []
    for overlap, i, j in pairs:
        if i not in used_boxes and j not in used_truths:
            used_boxes.add(i)
            used_truths.add(j)
            matches.append((i, j, overlap))
    return matches


def fix_seconds(*, fix_label: bool, fix_box: bool) -> float:
    """What handling one matched proposal costs: accept, plus any fixes, never more than drawing."""
    seconds = ACCEPT_SECONDS + FIX_LABEL_SECONDS * fix_label + FIX_BOX_SECONDS * fix_box
    return min(seconds, DRAW_SECONDS + CHOOSE_LABEL_SECONDS)


class ActionKind(str, Enum):
    ACCEPT = "accept"  # confirm as shown
    FIX = "fix"  # PATCH label and/or box, then confirm
    REJECT = "reject"
    DRAW = "draw"  # POST a confirmed box with its label


@dataclass(frozen=True)
class Truth:
    box: Box
    label_id: int


@dataclass(frozen=True)
class Shown:
    """An annotation of the frame as the API showed it."""

    id: int
    box: Box
    label_id: int | None
    version: int
    status: str  # "proposed" or "confirmed" (rejected ones are not shown)


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    seconds: float
    annotation: Shown | None = None
    truth: Truth | None = None
    fix_label: bool = False
    fix_box: bool = False


@dataclass(frozen=True)
class FramePlan:
    """What the annotator does on one frame, and what the frame showed them."""

    actions: list[Action]
    shown: int  # proposals shown
    matched: int  # proposals matched to a truth at IoU >= 0.5
    right_label: int  # matched proposals whose label was right
    truths: int  # truths still to label (not yet covered by a confirmed box)

    @property
    def seconds(self) -> float:
        return sum(action.seconds for action in self.actions)


def plan_frame(annotations: Sequence[Shown], truths: Sequence[Truth]) -> FramePlan:
    """Plan the work on a frame: proposals first (accept, fix or reject), then draw what is missing.

    Confirmed boxes already on the frame (a person's earlier work, e.g. before a lost
    action) cover the truths they match and cost nothing again.
    """
    confirmed = [a for a in annotations if a.status == "confirmed"]
    proposals = [a for a in annotations if a.status == "proposed"]
    covered = {j for _, j, _ in greedy_match([a.box for a in confirmed], [t.box for t in truths])}
    open_truths = [t for j, t in enumerate(truths) if j not in covered]
    matches = greedy_match([p.box for p in proposals], [t.box for t in open_truths])
    actions = []
    matched_proposals, matched_truths = set(), set()
    right_label = 0
    for i, j, overlap in sorted(matches):
        proposal, truth = proposals[i], open_truths[j]
        fix_label, fix_box = proposal.label_id != truth.label_id, overlap < GOOD_IOU
        right_label += not fix_label
        kind = ActionKind.FIX if fix_label or fix_box else ActionKind.ACCEPT
        seconds = fix_seconds(fix_label=fix_label, fix_box=fix_box)
        actions.append(Action(kind, seconds, proposal, truth, fix_label, fix_box))
        matched_proposals.add(i)
        matched_truths.add(j)
    for i, proposal in enumerate(proposals):
        if i not in matched_proposals:
            actions.append(Action(ActionKind.REJECT, REJECT_SECONDS, annotation=proposal))
    for j, truth in enumerate(open_truths):
        if j not in matched_truths:
            actions.append(Action(ActionKind.DRAW, DRAW_SECONDS + CHOOSE_LABEL_SECONDS, truth=truth))
    actions.sort(key=lambda a: a.kind == ActionKind.DRAW)  # proposals first, as on screen
    return FramePlan(actions, len(proposals), len(matches), right_label, len(open_truths))


# --- figures ----------------------------------------------------------------------------


@dataclass
class FrameRecord:
    """One labelled frame. ``stale`` and ``lag_s`` are None when the API does not say."""

    frame_id: int
    truths: int
    charged_s: float
    shown: int
    matched: int
    right_label: int
    lost_actions: int = 0
    stale: bool | None = None
    lag_s: float | None = None
    refreshing_at_open: bool | None = None
    fresh_timeout: bool = False  # still refreshing after the wait: shown without fresh proposals
    completion_to_fresh_s: float | None = None
    api_s: list[float] = field(default_factory=list)
    seconds_by_action: dict[str, float] = field(default_factory=dict)  # ActionKind value -> charged s
    kind: str | None = None  # a FrameKind value, where the frame detail says

    def charge(self, action: Action) -> None:
        self.charged_s += action.seconds
        kind = action.kind.value
        self.seconds_by_action[kind] = self.seconds_by_action.get(kind, 0.0) + action.seconds

    @property
    def manual_s(self) -> float:
        return self.truths * MANUAL_SECONDS_PER_BOX


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (``fraction`` in [0, 1]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _ratio(records: Sequence[FrameRecord]) -> float | None:
    manual = sum(r.manual_s for r in records)
    return sum(r.charged_s for r in records) / manual if manual else None


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole else None


class FrameKind(str, Enum):
    """Where a frame stands when it is labelled: what the machine can lean on there."""

    FIRST_OF_SHOT = "first_of_shot"  # nothing of its shot is labelled yet: nothing to follow
    KEYFRAME = "keyframe"  # another keyframe of a labelled shot, often seconds from its labels
    OTHER = "other"  # any other video frame
    STILL = "still"  # an image


def frame_kind(detail: dict, labelled_shots: set) -> FrameKind:
    """The kind of the frame the API describes in ``detail``; ``labelled_shots`` holds the
    shots labelled before it (the caller adds this one's after)."""
    if detail.get("shot_id") is None:
        return FrameKind.STILL
    if detail["shot_id"] not in labelled_shots:
        return FrameKind.FIRST_OF_SHOT
    return FrameKind.KEYFRAME if detail.get("is_keyframe") else FrameKind.OTHER


def ratios_by_kind(records: Sequence[FrameRecord]) -> dict[str, dict]:
    """Per frame kind present: how many frames, their share of the charged seconds, and
    their own assisted / manual ratio."""
    total = sum(r.charged_s for r in records)
    kinds = sorted({r.kind for r in records if r.kind is not None})
    return {
        kind: {
            "frames": len(mine),
            "seconds_share": _share(sum(r.charged_s for r in mine), total),
            "human_ratio": _ratio(mine),
        }
        for kind in kinds
        for mine in [[r for r in records if r.kind == kind]]
    }


def action_shares(records: Sequence[FrameRecord]) -> dict[str, float]:
    """Where the charged seconds went: each action kind's share of them (every kind listed)."""
    total = sum(r.charged_s for r in records)
    return {
        kind.value: (sum(r.seconds_by_action.get(kind.value, 0.0) for r in records) / total if total else 0.0)
        for kind in ActionKind
    }


def summarize(records: Sequence[FrameRecord]) -> dict:
    """The figures of one dataset, in labelling order."""
    warmup = math.ceil(WARMUP_SHARE * len(records))
    known_stale = [r.stale for r in records if r.stale is not None]
    known_refreshing = [r.refreshing_at_open for r in records if r.refreshing_at_open is not None]
    lags = [r.lag_s for r in records if r.lag_s is not None]
    to_fresh = [r.completion_to_fresh_s for r in records if r.completion_to_fresh_s is not None]
    api = [s for r in records for s in r.api_s]
    shown = sum(r.shown for r in records)
    matched = sum(r.matched for r in records)
    truths = sum(r.truths for r in records)
    return {
        "frames": len(records),
        "boxes": truths,
        "human_ratio_after_10pct": _ratio(records[warmup:]),
        "human_ratio_overall": _ratio(records),
        "seconds_share_after_10pct": action_shares(records[warmup:]),
        "by_frame_kind_after_10pct": ratios_by_kind(records[warmup:]),
        "ratio_curve": [_ratio(records[i:i + CURVE_BUCKET]) for i in range(0, len(records), CURVE_BUCKET)],
        "assisted_s": sum(r.charged_s for r in records),
        "manual_s": sum(r.manual_s for r in records),
        "proposals_per_frame": _share(shown, len(records)),
        "proposal_precision": _share(matched, shown),
        "label_top1_shown": _share(sum(r.right_label for r in records), matched),
        "region_recall": _share(matched, truths),
        "lost_actions": sum(r.lost_actions for r in records),
        "stale_shown": _share(sum(known_stale), len(known_stale)),
        "stale_known_frames": len(known_stale),
        "worker_lag_s_p95": percentile(lags, 0.95),
        "worker_lag_known_frames": len(lags),
        "refreshing_at_open": _share(sum(known_refreshing), len(known_refreshing)),
        "fresh_timeouts": sum(r.fresh_timeout for r in records),
        "completion_to_fresh_s_p95": percentile(to_fresh, 0.95),
        "completion_to_fresh_frames": len(to_fresh),
        "api_ms_p95": None if not api else percentile(api, 0.95) * 1000,
    }


# Per figure: which dataset is the worst (max or min).
WORST = {
    "human_ratio_after_10pct": max,
    "human_ratio_overall": max,
    "proposal_precision": min,
    "label_top1_shown": min,
    "region_recall": min,
    "lost_actions": max,
    "stale_shown": max,
    "worker_lag_s_p95": max,
    "fresh_timeouts": max,
    "completion_to_fresh_s_p95": max,
    "api_ms_p95": max,
}


def worst_of(per_dataset: dict[str, dict]) -> dict:
    """The worst value of each figure over the datasets (figures a dataset lacks are skipped)."""
    worst = {}
    for name, pick in WORST.items():
        values = [figures[name] for figures in per_dataset.values() if figures.get(name) is not None]
        worst[name] = pick(values) if values else None
    return worst


def overall_of(records_by_dataset: dict[str, Sequence[FrameRecord]]) -> dict:
    """Every dataset's frames together (each dataset keeps its own warm-up)."""
    after, every = [], []
    for records in records_by_dataset.values():
        every.extend(records)
        after.extend(records[math.ceil(WARMUP_SHARE * len(records)):])
    return {
        "frames": len(every),
        "human_ratio_after_10pct": _ratio(after),
        "human_ratio_overall": _ratio(every),
        "lost_actions": sum(r.lost_actions for r in every),
    }


def rounded(value, digits: int = 3):
    """Floats rounded for the JSON line, recursively."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v, digits) for v in value]
    return value
