"""The simulated annotator's matching and cost model (bench/assist_sim.py): pure functions."""

import pytest

from bench.assist_sim import (
    Action,
    ActionKind,
    FrameRecord,
    Shown,
    Truth,
    fix_seconds,
    frame_kind,
    greedy_match,
    iou,
    percentile,
    plan_frame,
    summarize,
    worst_of,
)

APPLE, PEAR = 1, 2


def proposal(id_, box, label=APPLE, status="proposed"):
    return Shown(id=id_, box=box, label_id=label, version=1, status=status)


def shifted(box, dx):
    """The box moved right by dx pixels (same size)."""
    return (box[0] + dx, box[1], box[2] + dx, box[3])


TRUTH_BOX = (0.0, 0.0, 100.0, 100.0)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        pytest.param((0, 0, 10, 10), (0, 0, 10, 10), 1.0, id="same"),
        pytest.param((0, 0, 10, 10), (10, 0, 20, 10), 0.0, id="touching"),
        pytest.param((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150, id="half-shifted"),
        pytest.param((0, 0, 10, 10), (2, 2, 4, 4), 4 / 100, id="inside"),
    ],
)
def test_iou(a, b, expected):
    assert iou(a, b) == pytest.approx(expected)


def test_greedy_match_takes_the_highest_iou_first_and_one_to_one():
    truths = [(0, 0, 10, 10), (3, 0, 13, 10)]
    # Box 0 fits truth 0 best (0.82), but box 1 fits it exactly: box 0 gets truth 1 (0.67).
    boxes = [(1, 0, 11, 10), (0, 0, 10, 10)]

    matches = greedy_match(boxes, truths)

    assert [(i, j) for i, j, _ in matches] == [(1, 0), (0, 1)]
    assert [overlap for _, _, overlap in matches] == pytest.approx([1.0, 8 / 12])


def test_greedy_match_ignores_pairs_under_the_threshold():
    assert greedy_match([(0, 0, 10, 10)], [(6, 0, 16, 10)]) == []


@pytest.mark.parametrize(
    ("fix_label", "fix_box", "seconds"),
    [
        pytest.param(False, False, 1.5, id="accept"),
        pytest.param(True, False, 4.5, id="label"),
        pytest.param(False, True, 5.5, id="box"),
        pytest.param(True, True, 8.5, id="both"),
    ],
)
def test_fix_costs_add_up(fix_label, fix_box, seconds):
    assert fix_seconds(fix_label=fix_label, fix_box=fix_box) == seconds


def test_a_fix_never_costs_more_than_drawing(monkeypatch):
    monkeypatch.setattr("bench.assist_sim.FIX_BOX_SECONDS", 9.0)

    assert fix_seconds(fix_label=True, fix_box=True) == 10.0


def test_a_correct_close_proposal_is_accepted_for_one_and_a_half_seconds():
    plan = plan_frame([proposal(1, shifted(TRUTH_BOX, 5))], [Truth(TRUTH_BOX, APPLE)])

    assert [(a.kind, a.seconds) for a in plan.actions] == [(ActionKind.ACCEPT, 1.5)]
    assert (plan.shown, plan.matched, plan.right_label, plan.truths) == (1, 1, 1, 1)


def test_a_loose_proposal_with_the_wrong_label_gets_both_fixes():
    # Shifted by 25 px: IoU 75/125 = 0.6, between 0.5 and 0.7.
    plan = plan_frame([proposal(1, shifted(TRUTH_BOX, 25), label=PEAR)], [Truth(TRUTH_BOX, APPLE)])

    (action,) = plan.actions
    assert (action.kind, action.fix_label, action.fix_box, action.seconds) == (ActionKind.FIX, True, True, 8.5)
    assert plan.right_label == 0


def test_a_proposal_without_a_label_needs_its_label_fixed():
    plan = plan_frame([proposal(1, TRUTH_BOX, label=None)], [Truth(TRUTH_BOX, APPLE)])

    assert plan.actions[0].fix_label and plan.seconds == 4.5


def test_unmatched_proposals_are_rejected_and_missing_boxes_drawn_after_them():
    other = (200.0, 200.0, 250.0, 250.0)
    plan = plan_frame(
        [proposal(1, shifted(TRUTH_BOX, 60)), proposal(2, TRUTH_BOX)],
        [Truth(other, PEAR), Truth(TRUTH_BOX, APPLE)],
    )

    assert [(a.kind, a.seconds) for a in plan.actions] == [
        (ActionKind.ACCEPT, 1.5),
        (ActionKind.REJECT, 1.0),
        (ActionKind.DRAW, 10.0),
    ]
    assert plan.actions[2].truth == Truth(other, PEAR)
    assert plan.seconds == 12.5


def test_a_frame_without_proposals_costs_the_manual_baseline():
    truths = [Truth((0, 0, 10, 10), APPLE), Truth((20, 20, 40, 40), PEAR)]

    assert plan_frame([], truths).seconds == 20.0


def test_boxes_already_confirmed_cost_nothing_again():
    mine = proposal(7, TRUTH_BOX, status="confirmed")

    plan = plan_frame([mine, proposal(8, shifted(TRUTH_BOX, 2))], [Truth(TRUTH_BOX, APPLE)])

    assert [(a.kind, a.annotation.id) for a in plan.actions] == [(ActionKind.REJECT, 8)]
    assert plan.truths == 0


def record(charged, truths, **kwargs):
    defaults = dict(frame_id=0, shown=0, matched=0, right_label=0)
    return FrameRecord(truths=truths, charged_s=charged, **{**defaults, **kwargs})


def test_the_headline_skips_the_first_tenth_of_the_frames():
    records = [record(100.0, 5)] * 2 + [record(25.0, 5)] * 18  # 20 frames: the first 2 are warm-up

    figures = summarize(records)

    assert figures["human_ratio_after_10pct"] == pytest.approx(0.5)
    assert figures["human_ratio_overall"] == pytest.approx((200 + 450) / 1000)
    assert figures["ratio_curve"] == pytest.approx([(200 + 200) / 500, 0.5])


def test_the_seconds_are_split_by_action_after_the_warm_up():
    warm_up, later = FrameRecord(frame_id=1, truths=1, charged_s=0.0, shown=0, matched=0, right_label=0), []
    warm_up.charge(Action(ActionKind.DRAW, 10.0))
    for _ in range(9):
        frame = FrameRecord(frame_id=2, truths=2, charged_s=0.0, shown=2, matched=1, right_label=1)
        for action in (Action(ActionKind.ACCEPT, 1.5), Action(ActionKind.REJECT, 1.0), Action(ActionKind.DRAW, 10.0)):
            frame.charge(action)
        later.append(frame)

    shares = summarize([warm_up, *later])["seconds_share_after_10pct"]

    assert later[0].charged_s == 12.5
    assert shares == pytest.approx({"accept": 1.5 / 12.5, "fix": 0.0, "reject": 1.0 / 12.5, "draw": 10.0 / 12.5})


def test_proposal_figures_and_unknown_staleness():
    records = [
        record(10.0, 4, shown=5, matched=3, right_label=2, lost_actions=1, stale=True, lag_s=0.5,
               refreshing_at_open=True, fresh_timeout=True),
        record(10.0, 2, shown=1, matched=1, right_label=1, stale=None, lag_s=None),
    ]

    figures = summarize(records)

    assert figures["proposals_per_frame"] == 3
    assert figures["proposal_precision"] == pytest.approx(4 / 6)
    assert figures["label_top1_shown"] == pytest.approx(3 / 4)
    assert figures["region_recall"] == pytest.approx(4 / 6)
    assert figures["lost_actions"] == 1
    assert (figures["stale_shown"], figures["stale_known_frames"]) == (1.0, 1)
    assert figures["worker_lag_s_p95"] == 0.5
    assert (figures["refreshing_at_open"], figures["fresh_timeouts"]) == (1.0, 1)


def test_percentile_is_nearest_rank():
    assert percentile(list(range(1, 101)), 0.95) == 95
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([], 0.95) is None


def test_worst_takes_the_bad_end_of_each_figure():
    worst = worst_of({"a": {"human_ratio_after_10pct": 0.6, "region_recall": 0.9},
                      "b": {"human_ratio_after_10pct": 0.8, "region_recall": 0.4, "worker_lag_s_p95": None}})

    assert worst["human_ratio_after_10pct"] == 0.8
    assert worst["region_recall"] == 0.4
    assert worst["worker_lag_s_p95"] is None


class FakeApi:
    """Answers the annotator's calls from a script: frame details in turn, and statuses per call."""

    def __init__(self, details, statuses):
        self.details, self.statuses, self.calls, self.latencies = list(details), statuses, [], []

    def expect(self, method, path, payload=None):
        self.calls.append((method, path, payload))
        return self.details.pop(0) if method == "GET" else {}

    def call(self, method, path, payload=None):
        from bench.assist import Answer

        self.calls.append((method, path, payload))
        status = self.statuses.get((method, path), 200)
        return Answer(status, {"status": "confirmed", "version": 2} if status < 300 else {"detail": "gone"})


def frame_detail(*annotations):
    return {"id": 5, "original_name": "a.jpg", "width": 100, "height": 100, "proposals_state": "fresh",
            "proposals_index_version": 3, "index_version": 3,
            "annotations": [{"id": id_, "box": list(box), "label_id": APPLE, "version": 1, "status": "proposed"}
                            for id_, box in annotations]}


def test_a_lost_action_is_counted_and_the_frame_redone_from_a_fresh_read(tmp_path):
    from bench.assist import Annotator, Dataset

    dataset = Dataset(name="fake", classes=["apple"], images={"a.jpg": (tmp_path / "a.jpg", [(TRUTH_BOX, "apple")])})
    # The first read shows proposal 10; a refresh replaced it by 11 before the accept landed.
    api = FakeApi([frame_detail((10, TRUTH_BOX)), frame_detail((11, TRUTH_BOX))],
                  {("POST", "annotations/10/confirm"): 404})
    annotator = Annotator(api, project_id=1, label_ids={"apple": APPLE}, dataset=dataset, time_scale=0)

    record = annotator.label({"id": 5})

    assert record.lost_actions == 1
    assert record.charged_s == 3.0  # the accept, paid twice
    assert [path for method, path, _ in api.calls if method == "POST"] == [
        "annotations/10/confirm", "annotations/11/confirm", "frames/5/complete"]
    assert (record.shown, record.matched, record.stale, record.lag_s) == (1, 1, False, 0.0)


def test_frames_are_told_apart_by_what_the_machine_can_lean_on():
    labelled: set = set()
    kinds = []
    for detail in ({"shot_id": 4, "is_keyframe": True}, {"shot_id": 4, "is_keyframe": True},
                   {"shot_id": 4, "is_keyframe": False}, {"shot_id": 5, "is_keyframe": False},
                   {"shot_id": None, "is_keyframe": False}):
        kinds.append(frame_kind(detail, labelled).value)
        labelled.add(detail["shot_id"])

    assert kinds == ["first_of_shot", "keyframe", "other", "first_of_shot", "still"]


def test_the_figures_are_split_by_frame_kind_after_the_warm_up():
    def charged(kind, seconds, truths):
        frame = FrameRecord(frame_id=1, truths=truths, charged_s=0.0, shown=0, matched=0, right_label=0, kind=kind)
        frame.charge(Action(ActionKind.DRAW, seconds))
        return frame

    records = [charged("first_of_shot", 10.0, 1)] + [charged("first_of_shot", 40.0, 5)] * 2 + [charged("other", 10.0, 5)] * 7

    split = summarize(records)["by_frame_kind_after_10pct"]

    assert split == {
        "first_of_shot": {"frames": 2, "seconds_share": pytest.approx(80 / 150), "human_ratio": pytest.approx(0.8)},
        "other": {"frames": 7, "seconds_share": pytest.approx(70 / 150), "human_ratio": pytest.approx(0.2)},
    }
