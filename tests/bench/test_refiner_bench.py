"""bench/refiner.py: each true box judged by its closest candidate, on real BCCD images."""

import numpy as np

from bench.refiner import best_iou_per_truth, measure


def test_each_true_box_is_judged_by_its_closest_box():
    truths = np.array([[0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    boxes = np.array([[0, 0, 10, 20], [50, 50, 60, 60], [0, 0, 10, 10.5]], np.float32)
    assert np.allclose(best_iou_per_truth(boxes, truths), [10 / 10.5, 1.0])
    assert np.array_equal(best_iou_per_truth(np.zeros((0, 4), np.float32), truths), [0.0, 0.0])
    assert len(best_iou_per_truth(boxes, np.zeros((0, 4), np.float32))) == 0


def test_a_small_run_on_bccd_reports_shares_of_its_true_boxes():
    figures = measure(train_images=2, test_images=1, steps=20, seed=0)
    assert figures["train_images"] == 2 and figures["test_images"] == 1 and figures["true_boxes"] > 0
    for moment in ("before", "after"):
        accepted, fixable = figures[f"accepted_share_{moment}"], figures[f"fixable_share_{moment}"]
        assert 0.0 <= accepted <= fixable <= 1.0
        assert 0.0 <= figures[f"mean_best_iou_{moment}"] <= 1.0
    assert figures == measure(train_images=2, test_images=1, steps=20, seed=0) | {
        "refine_ms_per_image": figures["refine_ms_per_image"]}
