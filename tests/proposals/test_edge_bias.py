"""A label's followed boxes' edge bias, learned from what people fixed and what they accepted."""

import numpy as np
import pytest

from proposals.boxes import edge_moves
from proposals.edge_bias import ACCEPT_RADIUS, fit_edge_bias, shift_edges


def decisions(bias, spread, count, seed, shift=(0.0, 0.0, 0.0, 0.0)):
    """What people did with ``count`` boxes whose edges are off by ``bias`` (shares of the box's
    size) and a normal ``spread``, after ``shift`` moved them: a box with every edge within
    ACCEPT_RADIUS of its object is accepted as shown, any other is fixed. Returns the fixed
    boxes' offsets from the box as followed, and the shifts of the accepted ones."""
    rng = np.random.default_rng(seed)
    offsets = np.asarray(bias) + rng.normal(0.0, spread, (count, 4))
    accepted = np.all(np.abs(offsets - np.asarray(shift)) <= ACCEPT_RADIUS, axis=1)
    return offsets[~accepted], np.tile(np.asarray(shift, dtype=np.float64), (int(accepted.sum()), 1))


def test_a_bias_on_one_edge_is_found_where_the_fixes_alone_overstate_it():
    # Knives followed short of their tip: the right edge 12 % of the width too far in.
    fixed, accepted = decisions((0.0, 0.0, 0.12, 0.0), 0.05, 60, seed=0)

    bias = fit_edge_bias(fixed, accepted)

    assert bias[2] == pytest.approx(0.12, abs=0.03)
    assert np.abs(bias[[0, 1, 3]]).max() <= 0.02
    # Only the boxes far enough off are fixed, so their mean is further out than the bias.
    assert fixed[:, 2].mean() > bias[2] + 0.01


def test_boxes_off_by_chance_alone_are_not_moved():
    fixed, accepted = decisions((0.0, 0.0, 0.0, 0.0), 0.05, 200, seed=1)

    assert len(fixed) > 10
    assert np.abs(fit_edge_bias(fixed, accepted)).max() <= 0.02


def test_nothing_fixed_says_nothing_and_a_few_fixes_move_boxes_little():
    assert fit_edge_bias(np.zeros((0, 4)), np.zeros((30, 4))).tolist() == [0.0, 0.0, 0.0, 0.0]
    one_fix = fit_edge_bias([[0.0, 0.0, 0.25, 0.0]], np.zeros((3, 4)))
    assert 0.0 < one_fix[2] < 0.1


def test_once_boxes_are_moved_by_the_bias_and_accepted_the_bias_is_kept():
    # Later boxes were shifted by the bias and most were accepted: the accepted ones say the
    # object lies around the shifted box, not around the box as followed.
    bias = np.array([-0.06, -0.06, 0.06, 0.06])  # cats followed 6 % inside every edge
    fixed, accepted = decisions(bias, 0.04, 150, seed=2, shift=bias)

    assert len(accepted) > 5 * len(fixed)
    assert fit_edge_bias(fixed, accepted) == pytest.approx(bias, abs=0.02)


def test_edges_move_by_shares_of_the_box_and_stay_in_the_frame():
    boxes = np.array([[100, 100, 200, 150], [600, 10, 636, 30]], np.float32)

    moved = shift_edges(boxes, [-0.1, 0.0, 0.2, 0.1], frame_size=(640, 360))

    assert moved[0].tolist() == pytest.approx([90, 100, 220, 155])
    assert moved[1].tolist() == pytest.approx([596.4, 10, 640, 32])  # clipped at the right edge
    assert edge_moves(boxes[:1], moved[:1])[0].tolist() == pytest.approx([-0.1, 0.0, 0.2, 0.1])
    # A shift that would turn a box inside out leaves it as it was.
    assert shift_edges(boxes[:1], [0.6, 0.0, -0.6, 0.0]).tolist() == boxes[:1].tolist()
