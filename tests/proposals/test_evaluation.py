import math

import numpy as np
import pytest
from PIL import Image

from proposals.evaluation import (ConfusingPair, compare_embeddings, config_grid, mean_average_precision_at_50,
                                  plausible_false_positives, ranking_metrics, save_false_positive_grid)
from proposals.features import FeatureConfig
from proposals.types import DetectedBox, GroundTruthBox


def unit_vectors_at(degrees):
    radians = np.deg2rad(degrees)
    return np.stack([np.cos(radians), np.sin(radians)], axis=1).astype(np.float32)


def test_ranking_metrics_hand_computed():
    # Rankings (self excluded): 0deg -> 10,25,90,200; 10 -> 0,25,90,200; 25 -> 10,0,90,200; 90 -> 25,10,0,200.
    # Relevant ranks: 2, 3, 2, 2 -> AP 1/2, 1/3, 1/2, 1/2; the singleton label 2 is not a query.
    embeddings = unit_vectors_at([0, 10, 25, 90, 200])
    metrics = ranking_metrics(embeddings, np.array([0, 1, 0, 1, 2]))
    assert metrics["recall_at_1"] == 0.0
    assert metrics["recall_at_5"] == 1.0
    assert metrics["mean_average_precision"] == pytest.approx((0.5 + 1 / 3 + 0.5 + 0.5) / 4)


def test_ranking_metrics_perfect_on_separated_labels():
    embeddings = unit_vectors_at([0, 1, 2, 90, 91, 92])
    assert ranking_metrics(embeddings, np.array([0, 0, 0, 1, 1, 1])) == {
        "recall_at_1": 1.0, "recall_at_5": 1.0, "mean_average_precision": 1.0}


def test_ranking_metrics_needs_a_repeated_label():
    with pytest.raises(ValueError):
        ranking_metrics(unit_vectors_at([0, 90]), np.array([0, 1]))


def test_plausible_false_positives_are_closest_cross_label_pairs():
    embeddings = unit_vectors_at([0, 5, 40, 43, 120])
    pairs = plausible_false_positives(embeddings, np.array([0, 0, 1, 0, 1]), top=3)
    # Cross-label pairs by angle gap: (2,3)=3, (1,2)=35, (0,2)=40, (3,4)=77 ...
    assert [(p.first, p.second) for p in pairs] == [(2, 3), (1, 2), (0, 2)]
    assert all(p.first_label != p.second_label for p in pairs)
    assert pairs[0].similarity == pytest.approx(np.cos(np.deg2rad(3)), abs=1e-5)


def test_false_positive_grid_is_written(tmp_path):
    crops = [np.full((20 + 5 * i, 30, 3), 40 * i, np.uint8) for i in range(4)]
    pairs = [ConfusingPair(0, 1, 3, 4, 0.9), ConfusingPair(2, 3, 5, 6, 0.8)]
    path = tmp_path / "confusions.png"
    save_false_positive_grid(pairs, crops, path, thumbnail_size=32)
    with Image.open(path) as grid:
        assert grid.format == "PNG" and grid.size == (2 * 32 + 8, 2 * (32 + 14))
        assert grid.getpixel((40 + 5, 32 + 14 + 5)) == (120, 120, 120)  # second row, right crop
    assert [p.name for p in tmp_path.iterdir()] == ["confusions.png"]


def test_config_grid_covers_backbones_layers_and_kernels():
    configs = config_grid(weights="none")
    assert len(configs) == 18
    assert {c.pool_kernel for c in configs} == {3, 4, 5}
    assert {(c.backbone, c.layer) for c in configs if c.backbone == "resnet34"} == {
        ("resnet34", "layer3"), ("resnet34", "layer4")}


def test_compare_embeddings_reports_random_baselines_and_skips_impossible_configs():
    rng = np.random.default_rng(0)
    bright, dark = (rng.integers(180, 255, (3, 40, 40, 3), dtype=np.uint8),
                    rng.integers(0, 60, (3, 40, 40, 3), dtype=np.uint8))
    crops = list(bright) + list(dark)
    configs = [FeatureConfig(weights="none", input_size=128, pool_kernel=kernel) for kernel in (2, 3, 5)]
    rows = compare_embeddings(crops, [0, 0, 0, 1, 1, 1], configs)
    assert sorted(row.pool_kernel for row in rows) == [2, 3]  # 3x3 output cannot take a 5x5 pool
    assert all(row.is_random and "random" in row.weights_description for row in rows)
    assert all(0 <= row.recall_at_1 <= 1 and 0 < row.mean_average_precision <= 1 for row in rows)
    assert rows[0].mean_average_precision >= rows[-1].mean_average_precision


def test_detection_map_hand_computed():
    ground_truth = [GroundTruthBox(1, 1, (0, 0, 10, 10)), GroundTruthBox(1, 2, (20, 20, 40, 40)),
                    GroundTruthBox(2, 1, (5, 5, 25, 25))]
    predictions = [
        DetectedBox(1, 1, (50, 50, 60, 60), 0.9),   # false positive ranked first
        DetectedBox(1, 1, (0, 0, 10, 10), 0.8),     # true positive
        DetectedBox(2, 1, (5, 5, 25, 24), 0.7),     # true positive (IoU 0.95)
        DetectedBox(1, 2, (20, 20, 30, 30), 0.9),   # IoU 0.25 < 0.5: a miss
    ]
    result = mean_average_precision_at_50(ground_truth, predictions, category_ids=[1, 2, 3])
    # Category 1: precision 0.5 then 2/3 at recall 1/2 and 1; interpolated precision is 2/3 everywhere.
    assert result["per_category_ap"][1] == pytest.approx(2 / 3, abs=1e-6)
    assert result["per_category_ap"][2] == 0.0
    assert result["per_category_ap"][3] is None  # no ground truth: not part of the mean
    assert result["map"] == pytest.approx(1 / 3, abs=1e-6)


def test_detection_map_without_predictions_is_zero_and_without_truth_is_nan():
    truth = [GroundTruthBox(1, 1, (0, 0, 10, 10))]
    assert mean_average_precision_at_50(truth, [], [1]) == {"per_category_ap": {1: 0.0}, "map": 0.0}
    empty = mean_average_precision_at_50([], [DetectedBox(1, 1, (0, 0, 5, 5), 0.5)], [1])
    assert empty["per_category_ap"] == {1: None} and math.isnan(empty["map"])
