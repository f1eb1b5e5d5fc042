import numpy as np
import pytest

from proposals.labels import BACKGROUND, LabelIndex, neighbour_label_probabilities
from proposals.types import LabelSuggestion

DIM = 32
CENTRES = np.random.default_rng(99).normal(size=(4, DIM)) * 3


def cluster_samples(labels, seed):
    rng = np.random.default_rng(seed)
    return CENTRES[labels] + rng.normal(size=(len(labels), DIM))


@pytest.fixture
def clusters():
    labels = np.repeat(np.arange(4), 60)
    index = LabelIndex(DIM)
    index.add(np.arange(len(labels)), cluster_samples(labels, seed=1), labels + 10)
    return index


def test_vote_probabilities_hand_computed():
    scores = np.array([[0.9, 0.8, 0.7, -np.inf]], dtype=np.float32)
    labels = np.array([[1, 2, 1, 5]])
    classes, probabilities = neighbour_label_probabilities(scores, labels, temperature=0.1)
    weights = np.exp(np.array([0.9, 0.8, 0.7]) / 0.1)
    assert classes.tolist() == [1, 2]  # the padded neighbour does not vote
    np.testing.assert_allclose(probabilities[0], [(weights[0] + weights[2]) / weights.sum(),
                                                  weights[1] / weights.sum()], rtol=1e-5)


def test_suggest_picks_the_cluster_label(clusters):
    query_labels = np.array([0, 1, 2, 3] * 5)
    suggestions = clusters.suggest(cluster_samples(query_labels, seed=2), k=10, top=3)
    assert [s[0].label_id for s in suggestions] == (query_labels + 10).tolist()
    assert all(isinstance(s, LabelSuggestion) for row in suggestions for s in row)
    assert all(len(row) <= 3 and [x.score for x in row] == sorted((x.score for x in row), reverse=True)
               for row in suggestions)


def test_calibrated_confidence_high_on_clusters_low_on_noise(clusters):
    clusters.calibrate()
    query_labels = np.array([0, 1, 2, 3] * 10)
    confident = clusters.suggest(cluster_samples(query_labels, seed=3))
    assert np.mean([row[0].score for row in confident]) > 0.9

    rng = np.random.default_rng(4)
    noise = LabelIndex(DIM)
    noise.add(np.arange(400), rng.normal(size=(400, DIM)), rng.integers(0, 4, 400))
    noise.calibrate()
    unsure = noise.suggest(rng.normal(size=(100, DIM)))
    assert np.mean([row[0].score for row in unsure]) < 0.5
    assert noise.temperature > clusters.temperature


def test_background_neighbours_lower_confidence_and_are_never_suggested(clusters):
    query = cluster_samples(np.array([0]), seed=5)
    before = clusters.suggest(query)[0][0]
    clusters.add(np.arange(1000, 1060), cluster_samples(np.zeros(60, dtype=int), seed=6), np.full(60, BACKGROUND))
    after = clusters.suggest(query)[0]
    assert all(s.label_id != BACKGROUND for s in after)
    assert after and after[0].label_id == before.label_id and after[0].score < before.score


def test_objectness_without_background_is_similarity_to_nearest_object():
    index = LabelIndex(3)
    index.add(np.array([1]), np.array([[1.0, 0, 0]]), np.array([7]))
    objectness = index.objectness(np.array([[1.0, 0, 0], [1.0, 1.0, 0], [-1.0, 0, 0]]))
    np.testing.assert_allclose(objectness, [1.0, np.sqrt(0.5), 0.0], atol=1e-3)
    assert objectness.dtype == np.float32


def test_objectness_drops_near_background(clusters):
    clusters.add(np.arange(1000, 1060), cluster_samples(np.full(60, 3), seed=7), np.full(60, BACKGROUND))
    objectness = clusters.objectness(cluster_samples(np.array([0, 3]), seed=8))
    assert ((0 <= objectness) & (objectness <= 1)).all()
    assert objectness[0] > 0.7 and objectness[1] < objectness[0] - 0.2


def test_remove_counts_and_persistence(clusters):
    clusters.add(np.array([5000]), cluster_samples(np.array([1]), seed=9), np.array([BACKGROUND]))
    assert clusters.remove(np.array([0, 1, 424242])) == 2
    assert clusters.label_counts() == {10: 58, 11: 60, 12: 60, 13: 60, BACKGROUND: 1}
    clusters.calibrate()
    restored = LabelIndex.from_bytes(clusters.to_bytes())
    queries = cluster_samples(np.array([0, 1, 2]), seed=10)
    assert restored.suggest(queries) == clusters.suggest(queries)
    assert restored.label_counts() == clusters.label_counts() and len(restored) == len(clusters)
    assert restored.temperature == clusters.temperature


def test_empty_index_suggests_nothing():
    index = LabelIndex(DIM)
    assert index.suggest(np.ones((2, DIM))) == [(), ()]
    np.testing.assert_array_equal(index.objectness(np.ones((2, DIM))), [0.0, 0.0])
