"""bench/tracking.py's loosened start boxes: as loose as asked, the same in every run."""

import numpy as np

from bench.tracking import loosened
from proposals.boxes import paired_iou


def test_loosened_boxes_are_about_as_close_to_the_truth_as_accepted_ones_and_repeatable():
    truths = np.tile(np.array([[100, 50, 160, 90]], np.float32), (4000, 1))
    assert loosened(truths, 0.0, np.random.default_rng(0)) is truths
    loose = loosened(truths, 0.035, np.random.default_rng([3, 4]))
    assert 0.86 < paired_iou(loose, truths).mean() < 0.91
    assert np.array_equal(loose, loosened(truths, 0.035, np.random.default_rng([3, 4])))
    looser = loosened(truths, 0.07, np.random.default_rng([3, 4]))
    assert paired_iou(looser, truths).mean() < paired_iou(loose, truths).mean()
