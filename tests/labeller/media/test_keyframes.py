import numpy as np
import pytest

from labeller.media.keyframes import every_nth_frames, median_distance, select_keyframes, select_keyframes_per_shot

RADIUS = 0.4  # between the noise within a look (~0.03) and distinct looks (~1.4)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def _static_shot(rng: np.random.Generator, count: int = 20, dim: int = 64) -> np.ndarray:
    """Candidates that barely change: one direction plus tiny noise."""
    return _unit(rng.normal(size=dim) + 0.01 * rng.normal(size=(count, dim)))


def _busy_shot(rng: np.random.Generator, looks: int, per_look: int = 5, dim: int = 64) -> np.ndarray:
    """``looks`` clearly different appearances (random directions are ~orthogonal in 64-D)."""
    centres = rng.normal(size=(looks, dim))
    return _unit(np.repeat(centres, per_look, axis=0) + 0.02 * rng.normal(size=(looks * per_look, dim)))


def test_static_shot_gets_the_minimum():
    embeddings = _static_shot(np.random.default_rng(0))

    assert len(select_keyframes(embeddings, coverage_radius=RADIUS, min_count=1, max_count=8)) == 1
    assert len(select_keyframes(embeddings, coverage_radius=RADIUS, min_count=2, max_count=8)) == 2


def test_busy_shot_gets_one_keyframe_per_appearance():
    embeddings = _busy_shot(np.random.default_rng(1), looks=5)

    chosen = select_keyframes(embeddings, coverage_radius=RADIUS, min_count=1, max_count=8)

    assert sorted({index // 5 for index in chosen}) == [0, 1, 2, 3, 4]
    assert len(chosen) == 5


def test_busy_shot_is_capped_at_max_count_with_distinct_picks():
    embeddings = _busy_shot(np.random.default_rng(2), looks=6)

    chosen = select_keyframes(embeddings, coverage_radius=RADIUS, min_count=1, max_count=3)

    assert len(chosen) == 3
    assert len({index // 5 for index in chosen}) == 3  # farthest-point: never two of one look


def test_first_pick_is_the_typical_frame_not_an_outlier():
    rng = np.random.default_rng(3)
    embeddings = np.concatenate([_static_shot(rng, count=10), _unit(rng.normal(size=(1, 64)))])

    typical = select_keyframes(embeddings, coverage_radius=RADIUS, max_count=1)
    assert typical != [10]
    assert select_keyframes(embeddings, coverage_radius=RADIUS, max_count=4) == [typical[0], 10]


def test_count_never_exceeds_candidates_and_empty_is_empty():
    two_candidates = _busy_shot(np.random.default_rng(4), looks=2, per_look=1)
    assert select_keyframes(two_candidates, coverage_radius=RADIUS, min_count=3, max_count=5) == [0, 1]
    assert select_keyframes(np.zeros((0, 8), np.float32), coverage_radius=RADIUS) == []


def test_invalid_bounds_are_rejected():
    with pytest.raises(ValueError):
        select_keyframes(np.ones((2, 2), np.float32), coverage_radius=RADIUS, min_count=3, max_count=2)


def test_per_shot_selection_adapts_to_each_shot():
    rng = np.random.default_rng(5)
    static, busy = _static_shot(rng, count=12), _busy_shot(rng, looks=4)
    embeddings = np.concatenate([static, busy])
    shots = [0] * len(static) + [1] * len(busy)

    chosen = select_keyframes_per_shot(shots, embeddings, min_per_shot=1, max_per_shot=6)

    in_static = [row for row in chosen if row < 12]
    in_busy = [row for row in chosen if row >= 12]
    assert len(in_static) == 1
    assert len(in_busy) == 4
    assert chosen == sorted(chosen)


def test_default_radius_is_relative_to_the_video_so_embedding_scale_does_not_matter():
    rng = np.random.default_rng(6)
    static, busy = _static_shot(rng, count=12), _busy_shot(rng, looks=4)
    # Squeeze every distance ~10x, as an embedder whose frames all look alike would.
    common = _unit(rng.normal(size=(1, 64)))
    squeezed = _unit(np.concatenate([static, busy]) * 0.1 + common * 0.995)
    shots = [0] * 12 + [1] * 20

    absolute = select_keyframes_per_shot(shots, squeezed, max_per_shot=6, coverage_radius=RADIUS)
    relative = select_keyframes_per_shot(shots, squeezed, max_per_shot=6)

    assert len(absolute) == 2  # the fixed radius now covers everything: one per shot
    assert len([row for row in relative if row < 12]) == 1
    assert len([row for row in relative if row >= 12]) == 4


def test_median_distance():
    square = _unit(np.eye(4, dtype=np.float32))
    assert median_distance(square) == pytest.approx(np.sqrt(2))
    assert median_distance(square[:1]) == 0.0


def test_per_shot_selection_needs_one_shot_per_row():
    with pytest.raises(ValueError):
        select_keyframes_per_shot([0, 1], np.ones((3, 2), np.float32))


def test_every_nth_frames():
    assert every_nth_frames(10, 3) == [0, 3, 6, 9]
    assert every_nth_frames(3, 1) == [0, 1, 2]
    with pytest.raises(ValueError):
        every_nth_frames(10, 0)
