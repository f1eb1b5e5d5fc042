"""The show policy replayed on a kept bench/assist.py run: the seconds its choices cost.

    .venv/bin/python bench/assist.py --keep ...        # note the folder it keeps
    .venv/bin/python bench/policy_replay.py FOLDER [--projects 2,3] [--odd-size-distance inf]

Every proposal the loop makes for a frame, shown or hidden, is a ``ProposalOutcome``, decided
when the frame is completed: a shown one was kept or rejected, a hidden one would have been
kept where it matches a box the person confirmed. So the show policy's choices can be replayed
offline: for each frame completed after the first 10 % of a project's frames, in the order
they were completed, the policy is fitted (``fit_show_policy``) on the outcomes decided before
that frame and chooses (``choose_shown``) among the frame's proposals as the person last saw
them. Each choice is charged what it costs beyond a perfect one, under the published costs
(``proposals.calibration.ActionCosts``):

- a shown proposal that was not useful: a reject (1 s);
- a shown useful one on an object that a likelier shown one already covers (IoU >= 0.5): a reject;
- a hidden useful one on an object no shown useful one covers: its box drawn instead of
  accepted (and fixed as it needed): up to 8.5 s.

A perfect policy costs 0 s. bench/assist.py moves by about 0.01 from run to run, since any change
reshuffles what the person is offered next; the replay holds the run's proposals and decisions
fixed, so a change to the policy is judged on the same evidence before and after, in seconds. It
cannot show how a change would move later frames' proposals (the person's boxes are the run's).

Prints per project the seconds lost as recorded (the run's own shown flags) and as replayed, each
also as a share of the manual seconds of those frames (10 s a confirmed box: what it adds to
``human_ratio_after_10pct``), and the replayed seconds split by source, context (a labelled shot
or a new one) and what went wrong (``replayed_by_source``), then ONE JSON line;
``policy_share_replayed`` is the worst project's.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from bench.assist_sim import MANUAL_SECONDS_PER_BOX, MATCH_IOU, WARMUP_SHARE, iou  # noqa: E402
from proposals.calibration import ActionCosts  # noqa: E402

COSTS = ActionCosts()


@dataclass(frozen=True)
class Decided:
    """One proposal of a frame and what became of it."""

    source: str
    score: float
    box: tuple[float, float, float, float]
    label_id: int | None
    useful: bool
    label_right: bool | None
    box_right: bool | None
    shot_labelled: bool = False
    lost_object: bool = False
    backed: bool = False


REJECTED = "shown, not kept"
DRAWN = "hidden, would be kept"


def cost_key(outcome: Decided, what: str) -> str:
    """Where a lost second is counted: the outcome's source, its context (a shot already
    labelled or not, as the policy calibrates them apart) and ``what`` went wrong."""
    return f"{outcome.source}{'/labelled-shot' if outcome.shot_labelled else ''}: {what}"


def draw_instead_seconds(outcome: Decided) -> float:
    """What hiding a useful proposal costs: drawing its box against accepting (and fixing) it."""
    fixes = COSTS.fix_label * (outcome.label_right is False) + COSTS.fix_box * (outcome.box_right is False)
    return COSTS.draw - min(COSTS.draw, COSTS.accept + fixes)


def choice_costs(outcomes: Sequence[Decided], shown: Sequence[int]) -> dict[str, float]:
    """Seconds the choice ``shown`` (indices into ``outcomes``, likeliest first) costs beyond
    showing exactly the useful proposals, one per object, by :func:`cost_key`."""
    costs: Counter[str] = Counter()
    covered = []
    for i in shown:
        outcome = outcomes[i]
        if not outcome.useful or any(iou(outcome.box, box) >= MATCH_IOU for box in covered):
            costs[cost_key(outcome, REJECTED)] += COSTS.reject
        else:
            covered.append(outcome.box)
    hidden = sorted(set(range(len(outcomes))) - set(shown), key=lambda i: -outcomes[i].score)
    for i in hidden:
        outcome = outcomes[i]
        if outcome.useful and not any(iou(outcome.box, box) >= MATCH_IOU for box in covered):
            costs[cost_key(outcome, DRAWN)] += draw_instead_seconds(outcome)
            covered.append(outcome.box)
    return dict(costs)


def choice_seconds(outcomes: Sequence[Decided], shown: Sequence[int]) -> float:
    """The seconds of :func:`choice_costs`, in all."""
    return sum(choice_costs(outcomes, shown).values())


def django_setup(folder: Path) -> None:
    os.environ.pop("DATABASE_URL", None)
    os.environ.update(DJANGO_SETTINGS_MODULE="labeller.settings.dev", LABELLER_DATA_DIR=str(folder / "data"))
    import django

    django.setup()


def frames_by_completion(decided) -> tuple[list, dict, list]:
    """``(completed, built, counted)`` for a project's ``decided`` outcomes: its frames as
    ``(frame id, when completed)`` in that order (a frame's outcomes are decided together, when
    it is completed), when each frame's last proposals were made (frame id -> time), and the
    completed frames after the first 10 %, as bench/assist_sim.py counts them."""
    from django.db.models import Max, Min

    completed = list(decided.values_list("frame_id").annotate(at=Min("decided_at")).order_by("at", "frame_id"))
    built = dict(decided.values_list("frame_id").annotate(at=Max("created_at")))
    return completed, built, completed[math.ceil(WARMUP_SHARE * len(completed)):]


def replay_project(project_id: int) -> dict:
    from labeller.annotations.models import Annotation, AnnotationStatus
    from labeller.training.models import ProposalOutcome
    from labeller.training.proposing import choose_shown, fit_show_policy, project_object_sizes

    decided = ProposalOutcome.objects.filter(project_id=project_id, decided_at__isnull=False)
    # The sizes are those of the boxes confirmed before the frame's last proposals were made
    # (``built``), not its own.
    _, built, counted = frames_by_completion(decided)
    recorded = 0.0
    by_source: Counter[str] = Counter()
    boxes = 0
    for frame_id, decided_at in counted:
        rows = list(decided.filter(frame_id=frame_id).select_related("frame").order_by("id"))
        outcomes = [
            Decided(r.source, r.score, tuple(r.box), r.label_id, bool(r.useful), r.label_right, r.box_right,
                    r.shot_labelled, r.lost_object, r.backed)
            for r in rows
        ]
        before = decided.filter(decided_at__lt=decided_at)
        policy = fit_show_policy(before, decisions=before.count(),
                                 object_sizes=project_object_sizes(project_id, confirmed_before=built[frame_id]))
        frame = rows[0].frame
        frame_size = (frame.width, frame.height)
        shown, _ = choose_shown(outcomes, policy, shot_labelled=rows[0].shot_labelled, frame_size=frame_size,
                                lost=[o.lost_object for o in outcomes])
        by_source.update(choice_costs(outcomes, shown))
        recorded += choice_seconds(outcomes, [i for i, r in enumerate(rows) if r.shown])
        boxes += Annotation.objects.filter(frame_id=frame_id, status=AnnotationStatus.CONFIRMED).count()
    manual = boxes * MANUAL_SECONDS_PER_BOX
    replayed = sum(by_source.values())
    return {
        "frames": len(counted),
        "manual_s": manual,
        "policy_s_recorded": recorded,
        "policy_s_replayed": replayed,
        "policy_share_recorded": round(recorded / manual, 4) if manual else None,
        "policy_share_replayed": round(replayed / manual, 4) if manual else None,
        # Where the replayed seconds go, most first: which source, in which context, and why.
        "replayed_by_source": dict(sorted(by_source.items(), key=lambda item: (-item[1], item[0]))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="the folder bench/assist.py --keep kept")
    parser.add_argument("--projects", default="", help="project ids, comma-separated (default: all with outcomes)")
    parser.add_argument("--odd-size-distance", type=float, default=None,
                        help="replay with this ODD_SIZE_DISTANCE (labeller.training.proposing; inf: no box is "
                             "odd-sized, as before session 46)")
    args = parser.parse_args()
    if not (args.folder / "data" / "labeller.sqlite3").is_file():
        parser.error(f"{args.folder} holds no data/labeller.sqlite3: pass the folder bench/assist.py --keep kept")
    started = time.monotonic()
    django_setup(args.folder)
    from labeller.training import proposing
    from labeller.training.models import ProposalOutcome

    if args.odd_size_distance is not None:
        proposing.ODD_SIZE_DISTANCE = args.odd_size_distance

    wanted = [int(p) for p in args.projects.split(",") if p] or sorted(
        set(ProposalOutcome.objects.filter(decided_at__isnull=False).values_list("project_id", flat=True))
    )
    projects = {}
    for project_id in wanted:
        projects[project_id] = replay_project(project_id)
        print(f"project {project_id}: {projects[project_id]}", file=sys.stderr, flush=True)
    worst = max(projects.values(), key=lambda p: p["policy_share_replayed"] or 0.0, default=None)
    print(json.dumps({
        "bench": "policy_replay",
        "policy_share_replayed": worst and worst["policy_share_replayed"],
        "projects": projects,
        "seconds": round(time.monotonic() - started, 1),
        "load_avg": [round(v, 3) for v in os.getloadavg()],
    }))


if __name__ == "__main__":
    main()
