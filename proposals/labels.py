"""Label suggestions and objectness from confirmed crops (soft k-nearest neighbours).

Calibration. For a query q with neighbours i (cosine s_i, label y_i) among its
k nearest confirmed crops, the probability of label c is the kernel vote

    p(c | q) = sum_{i: y_i = c} exp(s_i / T) / sum_i exp(s_i / T)

(a softmax over the neighbours' similarities, summed per label). Background
neighbours (rejected proposals, label ``BACKGROUND``) take their share of the
mass, so they lower every label's probability without ever being suggested.
The temperature T is the only free parameter: :meth:`LabelIndex.calibrate`
fits it by minimising the leave-one-out negative log-likelihood of the stored
labels (each stored crop is classified by its neighbours, itself excluded), the
standard temperature-scaling recipe. Where neighbours agree the fitted T is
small and scores approach 1; where labels look random the NLL pushes T up and
scores flatten towards the label frequencies.

Objectness = (cosine to the nearest confirmed object, clipped to [0, 1]) x
(p(not background) from the vote above). Without background examples the
second factor is 1 and objectness is just the similarity to the nearest object.
"""

from __future__ import annotations

import io
from collections import Counter

import numpy as np

from proposals.index import EmbeddingIndex
from proposals.types import LabelSuggestion

BACKGROUND = -1
DEFAULT_TEMPERATURE = 0.1
TEMPERATURE_GRID = np.geomspace(0.005, 5.0, 31)
PROBABILITY_FLOOR = 1e-6  # keeps the NLL finite when the true label is absent from the neighbours
FORMAT_VERSION = 1


def neighbour_label_probabilities(scores: np.ndarray, labels: np.ndarray, temperature: float
                                  ) -> tuple[np.ndarray, np.ndarray]:
    """Soft-kNN vote.

    ``scores`` float32 [M, k] cosine (-inf where there is no neighbour);
    ``labels`` int64 [M, k] neighbour labels. Returns (classes int64 [C] sorted,
    probabilities float64 [M, C]); rows without neighbours are all zero.
    """
    finite = np.isfinite(scores)
    classes = np.unique(labels[finite])
    # Shift by the row maximum before exp for numerical stability; ratios are unchanged.
    row_max = np.where(finite, scores, -np.inf).max(axis=1, keepdims=True, initial=-np.inf)
    shifted = np.where(finite, scores - np.where(np.isfinite(row_max), row_max, 0.0), 0.0)
    weights = np.where(finite, np.exp(shifted / temperature), 0.0)
    per_class = np.zeros((len(scores), len(classes)))
    for column, label in enumerate(classes):
        per_class[:, column] = (weights * (labels == label)).sum(axis=1)
    totals = weights.sum(axis=1, keepdims=True)
    return classes, np.divide(per_class, totals, out=np.zeros_like(per_class), where=totals > 0)


class LabelIndex:
    """Confirmed crops (and rejected ones as ``BACKGROUND``) keyed by annotation id."""

    def __init__(self, dim: int, temperature: float = DEFAULT_TEMPERATURE, **index_options) -> None:
        self.index = EmbeddingIndex(dim, **index_options)
        self.temperature = temperature
        self._label_of: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.index)

    def label_counts(self) -> dict[int, int]:
        """Number of stored crops per label id, ``BACKGROUND`` included."""
        return dict(Counter(self._label_of.values()))

    def labels_for(self, annotation_ids: np.ndarray) -> np.ndarray:
        """int64 [N]: the stored label of each of ``annotation_ids`` (int64 [N]); KeyError if
        one is absent. Lets a caller keep label counts in step with a delta in O(delta)."""
        return np.array([self._label_of[i] for i in np.asarray(annotation_ids, dtype=np.int64).ravel().tolist()],
                        dtype=np.int64)

    def add(self, annotation_ids: np.ndarray, vectors: np.ndarray, label_ids: np.ndarray) -> None:
        """``annotation_ids`` int64 [N]; ``vectors`` float32 [N, D]; ``label_ids`` int64 [N]
        (``BACKGROUND`` for rejected proposals). Re-adding an id replaces vector and label."""
        annotation_ids = np.asarray(annotation_ids, dtype=np.int64).ravel()
        label_ids = np.asarray(label_ids, dtype=np.int64).ravel()
        if len(label_ids) != len(annotation_ids):
            raise ValueError("annotation_ids and label_ids differ in length")
        self.index.add(annotation_ids, vectors)
        self._label_of.update(zip(annotation_ids.tolist(), label_ids.tolist()))

    def remove(self, annotation_ids: np.ndarray) -> int:
        """Forget ``annotation_ids`` int64 [N]; unknown ids are ignored. Returns how many were removed."""
        annotation_ids = np.asarray(annotation_ids, dtype=np.int64).ravel()
        for annotation_id in annotation_ids.tolist():
            self._label_of.pop(annotation_id, None)
        return self.index.remove(annotation_ids)

    def _labels_of(self, ids: np.ndarray) -> np.ndarray:
        """int64 labels shaped like ``ids``; padding ids (-1) get BACKGROUND, and callers
        ignore them anyway because their scores are -inf."""
        return np.array([[self._label_of.get(i, BACKGROUND) for i in row] for row in ids.tolist()],
                        dtype=np.int64).reshape(ids.shape)

    def _neighbours(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, ids = self.index.search(vectors, k)
        return scores, self._labels_of(ids)

    def suggest(self, vectors: np.ndarray, k: int = 10, top: int = 3) -> list[tuple[LabelSuggestion, ...]]:
        """Up to ``top`` labels per query, best first, ``BACKGROUND`` excluded.

        ``vectors`` float32 [M, D]. Scores are calibrated probabilities (see module doc).
        """
        scores, labels = self._neighbours(vectors, k)
        classes, probabilities = neighbour_label_probabilities(scores, labels, self.temperature)
        results = []
        for row in probabilities:
            order = np.argsort(-row, kind="stable")
            results.append(tuple(
                LabelSuggestion(label_id=int(classes[j]), score=float(row[j]))
                for j in order if classes[j] != BACKGROUND and row[j] > 0)[:top])
        return results

    def objectness(self, vectors: np.ndarray, k: int = 10) -> np.ndarray:
        """float32 [M] in [0, 1]: how much each query looks like a confirmed object
        rather than background (see module doc). 0 when no object is within k."""
        scores, labels = self._neighbours(vectors, k)
        is_object = (labels != BACKGROUND) & np.isfinite(scores)
        nearest_object = np.where(is_object, scores, -np.inf).max(axis=1, initial=-np.inf)
        classes, probabilities = neighbour_label_probabilities(scores, labels, self.temperature)
        background_share = probabilities[:, classes == BACKGROUND].sum(axis=1)
        similarity = np.clip(np.where(np.isfinite(nearest_object), nearest_object, 0.0), 0.0, 1.0)
        return (similarity * (1.0 - background_share)).astype(np.float32)

    def calibrate(self, k: int = 10, sample_size: int = 2000, seed: int = 0) -> float:
        """Fit and set ``temperature`` by leave-one-out NLL on up to ``sample_size``
        stored crops. Returns the temperature. Needs at least two stored crops."""
        ids = self.index.ids
        if len(ids) < 2:
            return self.temperature
        rng = np.random.default_rng(seed)
        sample = rng.choice(ids, size=min(sample_size, len(ids)), replace=False)
        scores, neighbour_ids = self.index.search(self.index.vectors_for(sample), k + 1)
        # Drop each query itself from its neighbour list (it is its own best match).
        not_self = neighbour_ids != sample[:, None]
        scores = np.where(not_self, scores, -np.inf)
        labels = self._labels_of(neighbour_ids)
        truth = np.array([self._label_of[i] for i in sample.tolist()])

        def negative_log_likelihood(temperature: float) -> float:
            classes, probabilities = neighbour_label_probabilities(scores, labels, temperature)
            true_column = np.searchsorted(classes, truth).clip(0, max(len(classes) - 1, 0))
            p_true = np.where(classes[true_column] == truth,
                              probabilities[np.arange(len(truth)), true_column], 0.0)
            return float(-np.log(np.maximum(p_true, PROBABILITY_FLOOR)).mean())

        self.temperature = float(min(TEMPERATURE_GRID, key=negative_log_likelihood))
        return self.temperature

    def to_bytes(self) -> bytes:
        ids = self.index.ids
        buffer = io.BytesIO()
        np.savez(buffer, format_version=np.int64(FORMAT_VERSION), temperature=np.float64(self.temperature),
                 label_ids=np.array([self._label_of[i] for i in ids.tolist()], dtype=np.int64),
                 annotation_ids=ids, index=np.frombuffer(self.index.to_bytes(), dtype=np.uint8))
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LabelIndex:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            if int(archive["format_version"]) != FORMAT_VERSION:
                raise ValueError(f"unsupported label index format {int(archive['format_version'])}")
            index = EmbeddingIndex.from_bytes(archive["index"].tobytes())
            label_index = cls(index.dim, temperature=float(archive["temperature"]))
            label_index.index = index
            label_index._label_of = dict(zip(archive["annotation_ids"].tolist(), archive["label_ids"].tolist()))
        return label_index
