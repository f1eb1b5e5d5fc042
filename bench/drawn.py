"""The boxes a person drew in a kept bench/assist.py run, and what was proposed where they lie;
and the shown proposals they had to fix or reject.

    .venv/bin/python bench/assist.py --keep ...        # note the folder it keeps
    .venv/bin/python bench/drawn.py FOLDER [--projects 2,3]

A drawn box is the costliest action (10 s, against 1.5 s to accept), and after the show policy's
calibration most of what separates a run from the floor (0.15: every box accepted). Why each was
drawn is in the run's records: every proposal the loop made for the frame, shown or hidden, is a
``ProposalOutcome``, and the frame's proposals were followed from the shot's labelled frames
completed before they were made. For each frame completed after the first 10 % of a project's
frames (as bench/assist_sim.py counts them), each box the person drew (its first event is theirs,
not a proposal's) is put down to one cause (:func:`draw_cause`):

- ``hidden``: a proposal the show policy hid lay on it (IoU >= 0.5): the policy's loss;
- ``matched another``: a shown proposal lay on it, but the person kept it for a nearer object;
- ``shown, too loose``: a shown proposal lay near it (IoU 0.3-0.5) and was rejected;
- ``nothing near``: no proposal within IoU 0.5, shown or not: the proposers' loss (for a labelled
  shot's frame, mostly an object the tracker lost).

Each draw also says where its frame was followed from (:func:`followed_from`: the two nearest
labelled frames of its shot, in seconds before (-) and after (+); none on a shot's first labelled
frame). Sessions wrote this analysis again and again by hand (bench/ASSIST.md); it is here so
that nobody has to.

The other seconds above accepting every box are the shown proposals the person did not accept as
they were (:func:`shown_cost`): a box fix, a label fix, or a reject. Those are counted by the
proposal's source (and context, as the show policy calibrates it) and by where its frame was
followed from (``fixes_and_rejects``).

Prints one line per draw, then ONE JSON line; ``draws`` is the count over all projects.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from bench.assist_sim import MATCH_IOU, iou  # noqa: E402
from bench.policy_replay import django_setup, frames_by_completion  # noqa: E402

# A shown proposal this close to a drawn box (but under MATCH_IOU) that the person rejected was
# about that object and too loose to fix (one they kept was another object's).
NEAR_IOU = 0.3
# The labelled frames a frame is followed from (labeller.training.proposing follows the two nearest).
FOLLOWED_FROM = 2

HIDDEN = "hidden"
MATCHED_ANOTHER = "matched another"
TOO_LOOSE = "shown, too loose"
NOTHING_NEAR = "nothing near"


@dataclass(frozen=True)
class Proposed:
    """One recorded proposal of a frame."""

    source: str
    shot_labelled: bool
    score: float
    chance: float | None
    label_id: int | None
    box: tuple[float, float, float, float]
    shown: bool
    useful: bool | None


BOX_FIX = "box fixed"
LABEL_FIX = "label fixed"
REJECTED = "rejected"


def shown_cost(shown: bool, useful: bool | None, label_right: bool | None, box_right: bool | None) -> str | None:
    """What a recorded proposal cost the person beyond accepting it (None: nothing, or not shown):
    a kept one whose box needed fixing (a label fix too counts as the box fix, the dearer), one
    whose label did, or a shown one they did not keep."""
    if not shown:
        return None
    if not useful:
        return REJECTED
    if box_right is False:
        return BOX_FIX
    return LABEL_FIX if label_right is False else None


def draw_cause(drawn: tuple[float, float, float, float], proposed: Sequence[Proposed]) -> str:
    """Why a box the person drew was drawn, from the frame's recorded proposals (see the module's
    docstring): a hidden proposal on it first, since showing it would have saved the draw."""
    on_it = [p for p in proposed if iou(p.box, drawn) >= MATCH_IOU]
    if any(not p.shown for p in on_it):
        return HIDDEN
    if on_it:
        return MATCHED_ANOTHER
    if any(p.shown and not p.useful and iou(p.box, drawn) >= NEAR_IOU for p in proposed):
        return TOO_LOOSE
    return NOTHING_NEAR


def followed_from(index: int, labelled: Sequence[int], fps: float, most: int = FOLLOWED_FROM) -> list[float]:
    """Seconds from frame ``index`` to the ``most`` nearest of the shot's ``labelled`` frame
    indices, negative before it, in time order ([] where none is labelled)."""
    nearest = sorted(labelled, key=lambda other: (abs(other - index), other))[:most]
    return sorted(round((other - index) / fps, 2) for other in nearest)


def side_of(seconds: Sequence[float]) -> str:
    """``new shot``, ``both sides`` or ``one side``: where a frame was followed from."""
    if not seconds:
        return "new shot"
    return "both sides" if min(seconds) < 0 < max(seconds) else "one side"


def drawn_in_project(project_id: int) -> dict:
    from labeller.annotations.models import Annotation, AnnotationAction, AnnotationEvent, AnnotationStatus, Label
    from labeller.media.models import Frame
    from labeller.training.models import ProposalOutcome
    from labeller.training.proposing import ASSUMED_FPS

    decided = ProposalOutcome.objects.filter(project_id=project_id, decided_at__isnull=False)
    completed, built, counted = frames_by_completion(decided)
    completed_at = dict(completed)
    frames = {f.pk: f for f in Frame.objects.filter(pk__in=completed_at).select_related("video")}
    names = dict(Label.objects.filter(project_id=project_id).values_list("pk", "name"))
    causes: Counter[str] = Counter()
    sides: Counter[str] = Counter()
    costs = {cost: {"by_source": Counter(), "by_side": Counter()} for cost in (BOX_FIX, LABEL_FIX, REJECTED)}
    draws = []
    for frame_id, _ in counted:
        frame = frames[frame_id]
        rows = list(decided.filter(frame_id=frame_id).order_by("id"))
        labelled = [frames[other].index for other, at in completed_at.items()
                    if other != frame_id and frames[other].shot_id == frame.shot_id and frame.shot_id is not None
                    and at < built[frame_id]]
        fps = (frame.video.fps if frame.video_id is not None else None) or ASSUMED_FPS
        seconds = followed_from(frame.index, labelled, fps)
        for row in rows:
            cost = shown_cost(row.shown, row.useful, row.label_right, row.box_right)
            if cost is not None:
                costs[cost]["by_source"][row.source + ("/labelled-shot" if row.shot_labelled else "")] += 1
                costs[cost]["by_side"][side_of(seconds)] += 1
        # The person's own boxes: their first event is the person's, not a proposal's (no actor).
        drawn_ids = set(
            AnnotationEvent.objects.filter(frame_id=frame_id, action=AnnotationAction.CREATED, actor__isnull=False)
            .values_list("annotation_id", flat=True)
        )
        drawn = list(Annotation.objects.filter(pk__in=drawn_ids, status=AnnotationStatus.CONFIRMED)
                     .values_list("x1", "y1", "x2", "y2", "label_id"))
        proposed = [Proposed(r.source, r.shot_labelled, r.score, r.chance, r.label_id, tuple(r.box), r.shown, r.useful)
                    for r in rows]
        for *box, label_id in drawn:
            cause = draw_cause(tuple(box), proposed)
            causes[cause] += 1
            sides[side_of(seconds)] += 1
            near = sorted(((iou(p.box, tuple(box)), p) for p in proposed), key=lambda pair: -pair[0])[:3]
            draws.append({
                "frame": frame_id,
                "label": names.get(label_id),
                "box": [round(v) for v in box],
                "cause": cause,
                "followed_from_s": seconds,
                "nearest": [
                    {"iou": round(overlap, 2), "source": p.source + ("/labelled-shot" if p.shot_labelled else ""),
                     "score": round(p.score, 3), "chance": None if p.chance is None else round(p.chance, 3),
                     "shown": p.shown, "label": names.get(p.label_id, p.label_id)}
                    for overlap, p in near if overlap >= NEAR_IOU
                ],
            })
    return {
        "frames": len(counted),
        "draws": len(draws),
        "draws_by_cause": dict(causes.most_common()),
        "draws_by_side": dict(sides.most_common()),
        "fixes_and_rejects": {cost: {split: dict(counts.most_common()) for split, counts in splits.items()}
                              for cost, splits in costs.items()},
        "each": draws,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="the folder bench/assist.py --keep kept")
    parser.add_argument("--projects", default="", help="project ids, comma-separated (default: all with outcomes)")
    args = parser.parse_args()
    if not (args.folder / "data" / "labeller.sqlite3").is_file():
        parser.error(f"{args.folder} holds no data/labeller.sqlite3: pass the folder bench/assist.py --keep kept")
    started = time.monotonic()
    django_setup(args.folder)
    from labeller.training.models import ProposalOutcome

    wanted = [int(p) for p in args.projects.split(",") if p] or sorted(
        set(ProposalOutcome.objects.filter(decided_at__isnull=False).values_list("project_id", flat=True))
    )
    projects = {}
    for project_id in wanted:
        projects[project_id] = drawn_in_project(project_id)
        for draw in projects[project_id]["each"]:
            print(f"project {project_id}: {json.dumps(draw)}", file=sys.stderr, flush=True)
    print(json.dumps({
        "bench": "drawn",
        "draws": sum(p["draws"] for p in projects.values()),
        "projects": {pk: {k: v for k, v in p.items() if k != "each"} for pk, p in projects.items()},
        "seconds": round(time.monotonic() - started, 1),
        "load_avg": [round(v, 3) for v in os.getloadavg()],
    }))


if __name__ == "__main__":
    main()
