"""Keyframe choice: k-center greedy (farthest-point) sampling over embeddings,
with a per-shot count that adapts to how much the shot's appearance varies.

Embeddings are L2-normalised, so Euclidean distance is sqrt(2 - 2 cos): 0 for
identical frames, sqrt(2) ~ 1.41 for orthogonal ones. How far apart frames
are depends on the embedder (a random-init AlexNet trunk puts frames of one
shot ~0.2 apart and frames of different shots ~0.3-0.4), so by default the
covering radius is relative: a fraction of the median distance between the
video's candidates. A shot much calmer than the video as a whole then gets
``min_per_shot`` keyframes, a shot as varied as the video gets more.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_RELATIVE_RADIUS = 0.5
# Rows used to estimate the median distance: enough for a stable median,
# few enough that the pairwise matrix stays small for hour-long videos.
_MEDIAN_SAMPLE_ROWS = 1000


def select_keyframes(
    embeddings: np.ndarray,
    *,
    coverage_radius: float,
    min_count: int = 1,
    max_count: int = 8,
) -> list[int]:
    """Pick representative rows of one shot by k-center greedy sampling.

    ``embeddings``: float32 [N, D], rows L2-normalised. The first pick is the
    medoid-like row closest to the mean (the shot's most typical frame); each
    next pick is the row farthest from every pick so far. Picking stops once
    every row lies within ``coverage_radius`` of a pick, bounded by
    ``min_count`` and ``max_count``, so a static shot yields ``min_count``
    keyframes and a busy one more. Returns sorted row indices (at most N).
    """
    if min_count < 1 or max_count < min_count:
        raise ValueError("need 1 <= min_count <= max_count")
    count = embeddings.shape[0]
    if count == 0:
        return []
    vectors = np.asarray(embeddings, dtype=np.float32)
    mean = vectors.mean(axis=0)
    first = int(np.argmin(np.linalg.norm(vectors - mean, axis=1)))
    chosen = [first]
    # Distance from every row to its nearest pick, updated after each pick.
    nearest = np.linalg.norm(vectors - vectors[first], axis=1)
    while len(chosen) < min(max_count, count):
        farthest = int(np.argmax(nearest))
        if nearest[farthest] <= coverage_radius and len(chosen) >= min_count:
            break
        chosen.append(farthest)
        nearest = np.minimum(nearest, np.linalg.norm(vectors - vectors[farthest], axis=1))
    return sorted(chosen)


def median_distance(embeddings: np.ndarray) -> float:
    """Median Euclidean distance between distinct rows of float32 [N, D]
    (on an evenly spaced sample of at most 1000 rows); 0.0 if N < 2."""
    step = max(1, -(-embeddings.shape[0] // _MEDIAN_SAMPLE_ROWS))
    sample = np.asarray(embeddings[::step], dtype=np.float32)
    if sample.shape[0] < 2:
        return 0.0
    squared_norms = (sample * sample).sum(axis=1)
    squared = squared_norms[:, None] + squared_norms[None, :] - 2 * sample @ sample.T
    upper = np.triu_indices(sample.shape[0], k=1)
    return float(np.median(np.sqrt(np.maximum(squared[upper], 0.0))))


def select_keyframes_per_shot(
    shot_indices: Sequence[int] | np.ndarray,
    embeddings: np.ndarray,
    *,
    min_per_shot: int = 1,
    max_per_shot: int = 8,
    coverage_radius: float | None = None,
    relative_radius: float = DEFAULT_RELATIVE_RADIUS,
) -> list[int]:
    """Run :func:`select_keyframes` separately within each shot.

    ``shot_indices``: int [N], the shot of each candidate row;
    ``embeddings``: float32 [N, D] L2-normalised. ``coverage_radius``:
    absolute covering radius; when None, ``relative_radius`` times the
    median distance between all candidates (see the module docstring).
    Returns sorted row indices into ``embeddings``.
    """
    shots = np.asarray(shot_indices)
    if shots.shape[0] != embeddings.shape[0]:
        raise ValueError("one shot index per embedding row is required")
    if coverage_radius is None:
        coverage_radius = relative_radius * median_distance(embeddings)
    selected: list[int] = []
    for shot in np.unique(shots):
        rows = np.flatnonzero(shots == shot)
        picks = select_keyframes(
            embeddings[rows], min_count=min_per_shot, max_count=max_per_shot, coverage_radius=coverage_radius
        )
        selected.extend(int(rows[pick]) for pick in picks)
    return sorted(selected)


def every_nth_frames(frame_count: int, every_nth: int) -> list[int]:
    """Dense-labelling mode: frames 0, n, 2n, ... below ``frame_count``.
    :func:`labeller.media.scan.scan_video` with ``every_nth`` extracts exactly these."""
    if every_nth < 1:
        raise ValueError("every_nth must be >= 1")
    return list(range(0, frame_count, every_nth))
