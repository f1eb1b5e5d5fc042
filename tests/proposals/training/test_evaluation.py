import math

import numpy as np
import pytest

from proposals.training.data import TrainingFrame
from proposals.training.evaluation import (ModelScore, cross_recall_at_1, detection_scores,
                                           nearest_neighbour_recall_at_1, promotion_decision, validation_key)


def frame(frame_id, boxes, labels):
    return TrainingFrame(frame_id, np.zeros((64, 64, 3), np.uint8), np.array(boxes, np.float32),
                         np.array(labels, np.int64), True)


def test_detection_scores_per_label():
    frames = [frame(1, [[0, 0, 10, 10], [20, 20, 40, 40]], [7, 9]), frame(2, [[5, 5, 15, 15]], [7])]
    predictions = [
        (np.array([[0, 0, 10, 10], [20, 20, 40, 40]], np.float32), np.array([0.9, 0.6], np.float32),
         np.array([7, 7])),  # the second box has the wrong label, and the lowest score
        (np.array([[5, 5, 15, 15]], np.float32), np.array([0.7], np.float32), np.array([7])),
    ]
    scores = detection_scores(frames, predictions, [7, 9, 11])
    assert scores.per_label[7] == pytest.approx(1.0, abs=0.02)
    assert scores.per_label[9] == 0.0
    assert scores.per_label[11] is None  # no ground truth: left out of the mean
    assert scores.map50 == pytest.approx(0.5, abs=0.01)
    assert scores.ground_truth_boxes == 3


def test_recall_at_1():
    embeddings = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
    assert nearest_neighbour_recall_at_1(embeddings, np.array([0, 0, 1, 1])) == 1.0
    assert nearest_neighbour_recall_at_1(embeddings, np.array([0, 1, 0, 1])) == 0.0
    queries = np.array([[1, 0], [0, 1]], np.float32)
    assert cross_recall_at_1(queries, np.array([5, 6]), embeddings[[0, 2]], np.array([5, 6])) == 1.0


def test_validation_key_ignores_order_and_duplicates():
    assert validation_key([3, 1, 2]) == validation_key([1, 2, 3, 3])
    assert validation_key([1, 2]) != validation_key([1, 2, 4])


@pytest.mark.parametrize(
    ("candidate", "current", "promote"),
    [
        pytest.param(0.60, 0.55, True, id="better"),
        pytest.param(0.55, 0.55, True, id="equal"),
        pytest.param(0.50, 0.55, False, id="worse"),
        pytest.param(math.nan, 0.55, False, id="candidate-without-score"),
        pytest.param(0.10, math.nan, True, id="current-without-score"),
    ],
)
def test_promotion_only_when_not_worse(candidate, current, promote):
    decision = promotion_decision(ModelScore(candidate, "val"), ModelScore(current, "val"))
    assert decision.promote is promote
    assert decision.reason


def test_promotion_without_current_model():
    assert promotion_decision(ModelScore(0.1, "val"), None).promote


def test_promotion_refused_across_validation_sets():
    decision = promotion_decision(ModelScore(0.9, "new-val"), ModelScore(0.1, "old-val"))
    assert not decision.promote
    assert "validation" in decision.reason


def test_tolerance_allows_noise():
    assert promotion_decision(ModelScore(0.54, "v"), ModelScore(0.55, "v"), tolerance=0.02).promote
