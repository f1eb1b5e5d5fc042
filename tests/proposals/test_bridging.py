import numpy as np
import pytest

from proposals.bridging import LabelledSide, bridge_sides, fuse_and_bridge, paired_objects
from proposals.tracking import fuse_estimates

RED, GREEN = 1, 2


def side(boxes, labels, seconds, rows) -> LabelledSide:
    return LabelledSide(np.array(boxes, np.float32), np.array(labels, np.int64), seconds, np.array(rows, np.int64))


def fused_between(before_boxes, before_estimates, after_boxes, after_estimates, labels_before, labels_after,
                  seconds=(1.0, 1.0)):
    """The two sides' estimates fused as the tracker fuses them, then bridged."""
    carried = [estimate(*before_estimates, labels_before), estimate(*after_estimates, labels_after)]
    boxes, confidence, labels, rows = fuse_estimates(carried)
    return (boxes, confidence, labels), bridge_sides(
        boxes, confidence, labels,
        side(before_boxes, labels_before, seconds[0], rows[0]), side(after_boxes, labels_after, seconds[1], rows[1]),
    )


def estimate(boxes, confidence, labels):
    return np.array(boxes, np.float32), np.array(confidence, np.float32), np.array(labels)


def test_fusion_says_which_row_each_estimate_went_to():
    before = estimate([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.2], [RED, GREEN])
    after = estimate([[90, 0, 99, 9], [1, 0, 11, 10]], [0.3, 0.5], [RED, RED])

    _, _, _, rows = fuse_estimates([before, after])

    assert [r.tolist() for r in rows] == [[0, 1], [2, 0]]


def test_where_both_sides_agree_nothing_changes():
    # One red object moved right by 20 between the labelled frames; both followed it to x = 10.
    fused, bridged = fused_between(
        [[0, 0, 10, 10]], ([[10, 0, 20, 10]], [0.8]), [[20, 0, 30, 10]], ([[11, 0, 21, 10]], [0.6]), [RED], [RED],
    )

    boxes, confidence, labels, interpolated = bridged
    assert boxes.tolist() == fused[0].tolist() and confidence.tolist() == pytest.approx(fused[1].tolist())
    assert labels.tolist() == [RED] and interpolated.tolist() == [False]


def test_where_the_sides_disagree_the_line_between_the_labelled_boxes_backs_the_estimate_it_agrees_with():
    # Followed from before, the object landed where the line says (x = 10); from after, it
    # jumped to a look-alike at x = 60.
    _, (boxes, confidence, labels, interpolated) = fused_between(
        [[0, 0, 10, 10]], ([[10, 0, 20, 10]], [0.6]), [[20, 0, 30, 10]], ([[60, 0, 70, 10]], [0.8]), [RED], [RED],
    )

    assert boxes.tolist() == [[10, 0, 20, 10], [60, 0, 70, 10]]
    # Counted as confirmed twice (its own and the line's), and the other at half of what it had.
    assert confidence.tolist() == pytest.approx([0.3 + 0.3, 0.4 * 0.5])
    assert labels.tolist() == [RED, RED] and interpolated.tolist() == [False, False]


def test_where_the_line_agrees_with_neither_side_it_is_a_box_of_its_own_if_the_sides_are_close_enough():
    # Both sides lost the object; it moved steadily from x = 0 to x = 40 over 0.5 + 1.5 seconds.
    lost = dict(before_estimates=([[70, 50, 80, 60]], [0.5]), after_estimates=([[0, 50, 10, 60]], [0.5]),
                after_boxes=[[40, 0, 50, 10]], labels_before=[GREEN], labels_after=[GREEN])
    _, (boxes, confidence, labels, interpolated) = fused_between([[0, 0, 10, 10]], seconds=(0.5, 1.5), **lost)

    assert boxes[-1].tolist() == [10, 0, 20, 10]  # a quarter of the way, as a quarter of the time
    assert labels.tolist()[-1] == GREEN and interpolated.tolist() == [False, False, True]
    assert confidence.tolist() == pytest.approx([0.25, 0.25, 0.3])

    # Over four seconds a straight line is seldom where the object is: no box of its own.
    _, (far_boxes, _, _, far_interpolated) = fused_between([[0, 0, 10, 10]], seconds=(1.0, 3.0), **lost)
    assert len(far_boxes) == 2 and not far_interpolated.any()


def test_over_a_long_stretch_the_line_still_backs_the_estimate_it_agrees_with():
    _, (_, confidence, _, interpolated) = fused_between(
        [[0, 0, 10, 10]], ([[10, 0, 20, 10]], [0.6]), [[20, 0, 30, 10]], ([[60, 0, 70, 10]], [0.8]), [RED], [RED],
        seconds=(2.0, 2.0),
    )

    assert confidence.tolist() == pytest.approx([0.6, 0.2]) and not interpolated.any()


def test_only_boxes_of_one_label_near_enough_are_taken_for_one_object_nearest_first():
    before = side([[0, 0, 10, 10], [100, 0, 110, 10], [0, 100, 10, 110]], [RED, RED, GREEN], 1.0, [0, 1, 2])
    after = side([[95, 0, 105, 10], [5, 0, 15, 10], [0, 0, 10, 10], [300, 300, 310, 310]], [RED, RED, GREEN, RED],
                 1.0, [3, 4, 5, 6])

    pairs = paired_objects(before, after, [0, 1, 2], [0, 1, 2, 3])

    # Each red box pairs with the red box nearest it; the green boxes are 10 sizes apart, and
    # the far red box after has nobody left.
    assert sorted(pairs) == [(0, 1), (1, 0)]


def test_nothing_is_bridged_without_boxes_on_both_sides():
    boxes, confidence, labels = estimate([[0, 0, 10, 10]], [0.4], [RED])
    nobody_after = side(np.zeros((0, 4)), [], 1.0, [])
    bridged = bridge_sides(boxes, confidence, labels, side([[0, 0, 10, 10]], [RED], 1.0, [0]), nobody_after)

    assert bridged[0].tolist() == boxes.tolist() and bridged[3].tolist() == [False]


def test_fuse_and_bridge_says_which_row_each_followed_box_went_to_and_puts_lines_after_them():
    # RED agreed on by both sides (row 0); GREEN lost by both, so its line is a box of its own.
    starts = [np.array([[0, 0, 10, 10], [40, 0, 50, 10]], np.float32), np.array([[0, 0, 10, 10], [80, 0, 90, 10]],
                                                                                 np.float32)]
    carried = [estimate([[0, 0, 10, 10], [0, 90, 10, 100]], [0.8, 0.6], [RED, GREEN]),
               estimate([[1, 0, 11, 10], [90, 90, 100, 100]], [0.8, 0.6], [RED, GREEN])]

    boxes, _, labels, interpolated, rows = fuse_and_bridge(carried, [(False, 1.0, starts[0]), (True, 1.0, starts[1])])

    assert [r.tolist() for r in rows] == [[0, 1], [0, 2]]
    assert interpolated.tolist() == [False, False, False, True]
    assert boxes[3].tolist() == [60, 0, 70, 10] and labels[3] == GREEN
