"""bench/drawn.py: why each box a person drew was drawn, and where its frame was followed from."""

from datetime import timedelta

from django.utils import timezone

from bench.drawn import (
    BOX_FIX, HIDDEN, LABEL_FIX, MATCHED_ANOTHER, NOTHING_NEAR, REJECTED, TOO_LOOSE, Proposed, draw_cause,
    drawn_in_project, followed_from, shown_cost, side_of,
)
from labeller.annotations.models import AnnotationAction, AnnotationEvent, AnnotationSource
from labeller.training.models import ProposalOutcome
from tests.factories import AnnotationFactory, FrameFactory, LabelFactory, ShotFactory, VideoFactory

BOX = (10.0, 10.0, 60.0, 60.0)
NEARLY_BOX = (12.0, 10.0, 62.0, 60.0)  # IoU 0.92 with BOX
LOOSE_BOX = (10.0, 10.0, 60.0, 110.0)  # IoU 0.5 with BOX: on it
LOOSER_BOX = (10.0, 10.0, 60.0, 140.0)  # IoU 0.38 with BOX: near it
ELSEWHERE = (200.0, 200.0, 250.0, 250.0)


def proposed(box, shown, useful=None):
    return Proposed("propagation", True, 0.5, 0.4, 1, box, shown, useful)


def test_a_draw_is_put_down_to_a_hidden_proposal_before_anything_shown():
    assert draw_cause(BOX, [proposed(NEARLY_BOX, False, True)]) == HIDDEN
    assert draw_cause(BOX, [proposed(NEARLY_BOX, True, True), proposed(LOOSE_BOX, False, True)]) == HIDDEN


def test_a_shown_proposal_on_the_drawn_box_was_kept_for_another_object():
    assert draw_cause(BOX, [proposed(NEARLY_BOX, True, True)]) == MATCHED_ANOTHER


def test_a_rejected_proposal_near_the_drawn_box_was_too_loose_and_others_say_nothing():
    assert draw_cause(BOX, [proposed(LOOSER_BOX, True, False)]) == TOO_LOOSE
    # Kept, the box near it was another object's.
    assert draw_cause(BOX, [proposed(LOOSER_BOX, True, True)]) == NOTHING_NEAR
    assert draw_cause(BOX, [proposed(LOOSER_BOX, False, False), proposed(ELSEWHERE, True, False)]) == NOTHING_NEAR
    assert draw_cause(BOX, []) == NOTHING_NEAR


def test_a_shown_proposal_costs_a_reject_a_box_fix_or_a_label_fix_beyond_accepting_it():
    assert shown_cost(True, False, None, None) == REJECTED
    assert shown_cost(True, True, False, False) == BOX_FIX  # both wrong: the box fix is the dearer
    assert shown_cost(True, True, False, True) == LABEL_FIX
    assert shown_cost(True, True, True, True) is None  # accepted as it was
    assert shown_cost(False, True, False, False) is None  # hidden: a draw, if anything (draw_cause)


def test_a_frame_is_followed_from_the_two_nearest_labelled_frames_of_its_shot():
    assert followed_from(50, [0, 25, 75, 150], fps=25.0) == [-1.0, 1.0]
    assert followed_from(50, [0, 150], fps=25.0) == [-2.0, 4.0]
    assert followed_from(50, [0], fps=25.0) == [-2.0]
    assert followed_from(50, [], fps=25.0) == []
    assert side_of([-1.0, 1.0]) == "both sides"
    assert side_of([-2.0, -1.0]) == "one side"
    assert side_of([]) == "new shot"


def test_a_kept_runs_draws_are_found_with_their_causes_and_sides(tenant):
    """Three frames of one shot completed in the order 0 s, 2 s, 1 s: the first is the warm-up;
    on the second, followed from one side, the person drew a box nothing was proposed near and
    rejected a shown followed box; on the third, followed from both, they drew one a hidden
    proposal lay on, and fixed a proposal's box (not a draw: its first event is the loop's)."""
    video = VideoFactory(project=tenant.project, fps=25.0)
    shot = ShotFactory(video=video)
    first, second, third = (FrameFactory(project=tenant.project, video=video, shot=shot, index=index,
                                         width=640, height=360) for index in (0, 50, 25))
    label = LabelFactory(project=tenant.project)
    start = timezone.now()
    for step, frame in enumerate((first, second, third)):
        built, completed = start + timedelta(minutes=2 * step), start + timedelta(minutes=2 * step + 1)
        outcome = ProposalOutcome.objects.create(
            project=tenant.project, frame=frame, source="candidate", score=0.3,
            box=list(ELSEWHERE if frame is second else NEARLY_BOX),
            shown=False, useful=frame is third, decided_at=completed,
        )
        shown = ProposalOutcome.objects.create(
            project=tenant.project, frame=frame, source="propagation", shot_labelled=frame is not first, score=0.5,
            box=[300, 300, 340, 340], shown=True, useful=frame is third, label_right=True,
            box_right=frame is not third, decided_at=completed,
        )
        ProposalOutcome.objects.filter(pk__in=[outcome.pk, shown.pk]).update(created_at=built)
        AnnotationFactory(frame=frame, label=label, x1=300, y1=300, x2=340, y2=340, source=AnnotationSource.MODEL)
    for frame in (second, third):
        drawn = AnnotationFactory(frame=frame, label=label, x1=BOX[0], y1=BOX[1], x2=BOX[2], y2=BOX[3])
        AnnotationEvent.objects.create(project=tenant.project, annotation_id=drawn.pk, frame_id=frame.pk,
                                       actor=tenant.annotator, action=AnnotationAction.CREATED, after={})
    fixed = AnnotationFactory(frame=third, label=label, x1=100, y1=100, x2=150, y2=150)
    AnnotationEvent.objects.create(project=tenant.project, annotation_id=fixed.pk, frame_id=third.pk,
                                   actor=None, action=AnnotationAction.CREATED, after={})
    AnnotationEvent.objects.create(project=tenant.project, annotation_id=fixed.pk, frame_id=third.pk,
                                   actor=tenant.annotator, action=AnnotationAction.UPDATED, before={}, after={})

    found = drawn_in_project(tenant.project.pk)

    assert found["frames"] == 2 and found["draws"] == 2
    second_draw, third_draw = found["each"]
    assert (second_draw["frame"], second_draw["cause"], second_draw["followed_from_s"]) == (
        second.pk, NOTHING_NEAR, [-2.0])
    assert (third_draw["frame"], third_draw["cause"], third_draw["followed_from_s"]) == (third.pk, HIDDEN, [-1.0, 1.0])
    assert third_draw["nearest"][0]["source"] == "candidate" and not third_draw["nearest"][0]["shown"]
    assert found["draws_by_cause"] == {NOTHING_NEAR: 1, HIDDEN: 1}
    assert found["draws_by_side"] == {"one side": 1, "both sides": 1}
    assert found["fixes_and_rejects"] == {  # the warm-up's reject counts for nothing
        BOX_FIX: {"by_source": {"propagation/labelled-shot": 1}, "by_side": {"both sides": 1}},
        LABEL_FIX: {"by_source": {}, "by_side": {}},
        REJECTED: {"by_source": {"propagation/labelled-shot": 1}, "by_side": {"one side": 1}},
    }
