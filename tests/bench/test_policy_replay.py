"""bench/policy_replay.py: what a show policy's choice on a frame costs, and a kept run replayed."""

from datetime import timedelta

from bench.policy_replay import COSTS, Decided, choice_costs, choice_seconds, draw_instead_seconds, replay_project
from labeller.training.models import ProposalOutcome
from tests.factories import FrameFactory

BOX = (10.0, 10.0, 60.0, 60.0)
ELSEWHERE = (200.0, 200.0, 250.0, 250.0)
NEARLY_BOX = (12.0, 10.0, 62.0, 60.0)  # IoU 0.92 with BOX


def decided(box, useful, score=0.5, label_right=True, box_right=True):
    if not useful:
        label_right = box_right = None
    return Decided("propagation", score, box, 1, useful, label_right, box_right)


def test_showing_exactly_the_useful_proposals_costs_nothing():
    outcomes = [decided(BOX, True), decided(ELSEWHERE, False)]
    assert choice_seconds(outcomes, [0]) == 0.0


def test_a_shown_useless_proposal_costs_a_reject():
    outcomes = [decided(BOX, True), decided(ELSEWHERE, False)]
    assert choice_seconds(outcomes, [0, 1]) == COSTS.reject


def test_a_second_shown_box_on_a_covered_object_costs_a_reject():
    outcomes = [decided(BOX, True, score=0.9), decided(NEARLY_BOX, True, score=0.4)]
    assert choice_seconds(outcomes, [0, 1]) == COSTS.reject
    # Hidden, the second one costs nothing: the object is covered by the first.
    assert choice_seconds(outcomes, [0]) == 0.0


def test_a_hidden_useful_proposal_costs_drawing_its_box_instead():
    outcomes = [decided(BOX, True), decided(ELSEWHERE, True, label_right=False)]
    assert choice_seconds(outcomes, [0]) == COSTS.draw - COSTS.accept - COSTS.fix_label
    # Two hidden proposals on one object: it is drawn once.
    outcomes = [decided(BOX, True, score=0.9), decided(NEARLY_BOX, True, score=0.4)]
    assert choice_seconds(outcomes, []) == COSTS.draw - COSTS.accept


def test_the_seconds_lost_are_split_by_source_context_and_what_went_wrong():
    outcomes = [
        Decided("detector", 0.5, ELSEWHERE, 1, False, None, None, shot_labelled=True),
        Decided("candidate", 0.5, BOX, 1, True, False, True),
    ]

    costs = choice_costs(outcomes, [0])

    assert costs == {
        "detector/labelled-shot: shown, not kept": COSTS.reject,
        "candidate: hidden, would be kept": COSTS.draw - COSTS.accept - COSTS.fix_label,
    }
    assert choice_seconds(outcomes, [0]) == sum(costs.values())


def test_drawing_never_saves_against_a_proposal_that_needs_every_fix():
    worst = decided(BOX, True, label_right=False, box_right=False)
    assert draw_instead_seconds(worst) == COSTS.draw - (COSTS.accept + COSTS.fix_label + COSTS.fix_box)
    assert draw_instead_seconds(worst) > 0


def test_a_run_is_replayed_frame_by_frame_on_what_was_decided_before(tenant):
    """The first frame's decisions teach the policy that only high scores are useful; on the
    second, the run showed a low-scoring useless proposal (recorded: a reject) that the
    replayed policy, fitted on the first frame alone, hides."""
    first, second = (FrameFactory(project=tenant.project, width=640, height=360) for _ in range(2))
    history = [(i / 40, i >= 20) for i in range(40)]
    ProposalOutcome.objects.bulk_create(
        ProposalOutcome(
            project=tenant.project, frame=first, source="candidate", score=score, box=[i * 12, 0, i * 12 + 10, 10],
            shown=useful, useful=useful, label_right=True if useful else None, box_right=True if useful else None,
            decided_at=first.created_at,
        )
        for i, (score, useful) in enumerate(history)
    )
    later = first.created_at + timedelta(minutes=1)
    ProposalOutcome.objects.bulk_create([
        ProposalOutcome(project=tenant.project, frame=second, source="candidate", score=0.95, box=[0, 0, 50, 50],
                        shown=True, useful=True, label_right=True, box_right=True, decided_at=later),
        ProposalOutcome(project=tenant.project, frame=second, source="candidate", score=0.05, box=[300, 0, 350, 50],
                        shown=True, useful=False, decided_at=later),
    ])

    replayed = replay_project(tenant.project.pk)

    assert replayed["frames"] == 1  # the first frame is the warm-up
    assert replayed["policy_s_recorded"] == COSTS.reject
    assert replayed["policy_s_replayed"] == 0.0 and replayed["replayed_by_source"] == {}


def test_a_replay_calibrates_a_box_recorded_as_maybe_a_lost_object_on_its_own_history(tenant):
    """Beside followed boxes the first frame's segments were never kept; on the second, a
    segment recorded as maybe an object the tracker lost was hidden by the run (recorded:
    drawn instead) and the replay, with no history of such boxes, shows it from their prior."""
    first, second = (FrameFactory(project=tenant.project, width=640, height=360) for _ in range(2))
    ProposalOutcome.objects.bulk_create(
        ProposalOutcome(
            project=tenant.project, frame=first, source="candidate", shot_labelled=True, score=i / 40,
            box=[i * 12, 0, i * 12 + 10, 10], shown=False, useful=False, decided_at=first.created_at,
        )
        for i in range(40)
    )
    ProposalOutcome.objects.create(
        project=tenant.project, frame=second, source="candidate", shot_labelled=True, score=0.5,
        box=[300, 0, 350, 50], shown=False, useful=True, label_right=True, box_right=True, lost_object=True,
        decided_at=first.created_at + timedelta(minutes=1),
    )

    replayed = replay_project(tenant.project.pk)

    assert replayed["policy_s_recorded"] == COSTS.draw - COSTS.accept
    assert replayed["policy_s_replayed"] == 0.0
