import numpy as np
import pytest

from proposals.index import EmbeddingIndex, IndexKind, exact_search, normalise_rows

DIM = 32


def clustered(count, seed, centres=40, dim=DIM):
    """Unit vectors around fixed cluster centres (the same centres for every seed)."""
    centre_vectors = np.random.default_rng(1234).normal(size=(centres, dim))
    rng = np.random.default_rng(seed)
    return normalise_rows(centre_vectors[rng.integers(0, centres, count)] + 0.6 * rng.normal(size=(count, dim)))


def recall_at_10(index, database, database_ids, queries):
    _, found = index.search(queries, 10)
    _, exact_rows = exact_search(database, queries, 10)
    return np.mean([len(set(f.tolist()) & set(database_ids[r].tolist())) / 10 for f, r in zip(found, exact_rows)])


def test_flat_search_is_exact_and_sorted():
    vectors = clustered(500, seed=0)
    index = EmbeddingIndex(DIM)
    index.add(np.arange(100, 600), vectors)
    scores, ids = index.search(vectors[:5], 3)
    assert index.kind == IndexKind.FLAT and len(index) == 500
    assert ids.dtype == np.int64 and scores.dtype == np.float32 and scores.shape == (5, 3)
    np.testing.assert_array_equal(ids[:, 0], np.arange(100, 105))  # each vector finds itself first
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-3)
    assert (np.diff(scores, axis=1) <= 0).all()


def test_inputs_are_normalised_so_scores_are_cosines():
    index = EmbeddingIndex(4)
    index.add(np.array([1, 2]), np.array([[3.0, 0, 0, 0], [0, 0.5, 0, 0]]))
    scores, ids = index.search(np.array([[10.0, 10.0, 0, 0]]), 2)
    np.testing.assert_allclose(scores[0], [np.sqrt(0.5), np.sqrt(0.5)], atol=1e-3)


def test_missing_results_are_padded():
    index = EmbeddingIndex(DIM)
    empty_scores, empty_ids = index.search(clustered(2, seed=1), 4)
    assert (empty_ids == -1).all() and np.isneginf(empty_scores).all()
    index.add(np.array([7, 8]), clustered(2, seed=2))
    scores, ids = index.search(clustered(1, seed=3), 4)
    assert sorted(ids[0, :2].tolist()) == [7, 8] and (ids[0, 2:] == -1).all() and np.isneginf(scores[0, 2:]).all()


def test_remove_and_re_add_replaces():
    vectors = clustered(300, seed=4)
    index = EmbeddingIndex(DIM)
    index.add(np.arange(300), vectors)
    assert index.remove(np.array([0, 1, 999])) == 2
    assert len(index) == 298
    _, ids = index.search(vectors[:2], 5)
    assert not np.isin(ids, [0, 1]).any()
    index.add(np.array([5]), vectors[0:1])  # id 5 now holds vector 0
    _, ids = index.search(vectors[0:1], 1)
    assert ids[0, 0] == 5 and len(index) == 298
    np.testing.assert_allclose(index.vectors_for(np.array([5])), vectors[0:1], atol=2e-3)


def test_duplicate_ids_in_one_call_are_rejected():
    with pytest.raises(ValueError):
        EmbeddingIndex(DIM).add(np.array([1, 1]), clustered(2, seed=5))


def test_switches_to_ivf_past_threshold_and_keeps_recall():
    database = clustered(6000, seed=6)
    ids = np.arange(6000) * 3
    index = EmbeddingIndex(DIM, exact_threshold=2000)
    index.add(ids[:1500], database[:1500])
    assert index.kind == IndexKind.FLAT
    index.add(ids[1500:], database[1500:])
    assert index.kind == IndexKind.IVF and index.nprobe >= 1
    assert index.calibrated_recall >= 0.95
    assert recall_at_10(index, database, ids, clustered(200, seed=7)) >= 0.95


def test_ivfpq_with_rerank_keeps_recall():
    database = clustered(12000, seed=8)
    ids = np.arange(12000)
    index = EmbeddingIndex(DIM, exact_threshold=2000, ivfpq_threshold=10000)
    index.add(ids, database)
    assert index.kind == IndexKind.IVFPQ
    assert recall_at_10(index, database, ids, clustered(200, seed=9)) >= 0.95


def test_shrinking_switches_back_to_flat_with_hysteresis():
    database = clustered(3000, seed=10)
    index = EmbeddingIndex(DIM, exact_threshold=2000)
    index.add(np.arange(3000), database)
    index.remove(np.arange(1500))  # 1500 >= threshold / 2: stays IVF
    assert index.kind == IndexKind.IVF
    index.remove(np.arange(1500, 2100))
    assert index.kind == IndexKind.FLAT and len(index) == 900
    _, found = index.search(database[2100:2105], 1)
    np.testing.assert_array_equal(found[:, 0], np.arange(2100, 2105))


@pytest.mark.parametrize("count", [300, 3000], ids=["flat", "ivf"])
def test_persistence_round_trip(count):
    database = clustered(count, seed=11)
    index = EmbeddingIndex(DIM, exact_threshold=2000)
    index.add(np.arange(count) + 10, database)
    restored = EmbeddingIndex.from_bytes(index.to_bytes())
    queries = clustered(20, seed=12)
    assert restored.kind == index.kind and restored.nprobe == index.nprobe and len(restored) == count
    for expected, actual in zip(index.search(queries, 5), restored.search(queries, 5)):
        np.testing.assert_array_equal(expected, actual)
    restored.add(np.array([1]), queries[:1])
    restored.remove(np.array([10]))
    _, found = restored.search(queries[:1], 1)
    assert found[0, 0] == 1 and len(restored) == count


def test_exact_search_matches_numpy_sort():
    database, queries = clustered(100, seed=13), clustered(3, seed=14)
    scores, rows = exact_search(database, queries, 4, chunk=7)
    expected_rows = np.argsort(-(queries @ database.T), axis=1)[:, :4]
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ database.T, expected_rows, axis=1), rtol=1e-5)


def test_pca_reduced_ivf_keeps_recall_and_round_trips(monkeypatch):
    monkeypatch.setattr("proposals.index.REDUCED_DIM", 16)  # as 1024 -> 256 does for real embeddings
    database = clustered(5000, seed=15)
    index = EmbeddingIndex(DIM, exact_threshold=2000)
    index.add(np.arange(5000), database)
    queries = clustered(200, seed=16)
    assert index.kind == IndexKind.IVF
    assert recall_at_10(index, database, np.arange(5000), queries) >= 0.95
    scores, ids = index.search(queries[:3], 5)
    np.testing.assert_allclose(scores, np.einsum("md,mkd->mk", queries[:3], database[ids]), atol=2e-3)  # exact
    restored = EmbeddingIndex.from_bytes(index.to_bytes())
    np.testing.assert_array_equal(restored.search(queries, 10)[1], index.search(queries, 10)[1])
