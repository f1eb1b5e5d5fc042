"""bench/tracking.py bridges the two sides' estimates as the app does, and only between sides."""

import numpy as np

from bench.tracking import fused_into

RED = 3


def estimate(box, confidence):
    return np.array([box], np.float32), np.array([confidence], np.float32), np.array([RED])


def test_the_bench_bridges_between_the_nearest_labelled_frame_on_each_side_and_only_there():
    # Candidate frames 25 apart (a second); the object moved from x = 0 to x = 40 and both
    # sides followed something else.
    starts = [(25, np.array([[0, 0, 10, 10]], np.float32)), (75, np.array([[40, 0, 50, 10]], np.float32))]
    carried = [estimate([90, 90, 100, 100], 0.6), estimate([0, 90, 10, 100], 0.6)]

    boxes, _, labels, interpolated = fused_into(50, carried, starts, bridge=True)
    assert interpolated.tolist() == [False, False, True]
    assert boxes[2].tolist() == [20, 0, 30, 10] and labels[2] == RED

    assert not fused_into(50, carried, starts, bridge=False)[3].any()
    assert not fused_into(100, carried, starts, bridge=True)[3].any()  # both before it
