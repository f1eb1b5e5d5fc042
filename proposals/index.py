"""Nearest-neighbour index over L2-normalised embeddings, keyed by int64 ids.

The index picks its faiss structure from its size:

* ``flat``  (n < exact_threshold): ``IndexIDMap2(IndexFlatIP)``, exact.
* ``ivf``   (n < ivfpq_threshold): ``PCA256,IVF{2 sqrt(n)},Flat`` (PCA only when
  dim > 256) with L2 distance, which on unit vectors ranks like cosine.
* ``ivfpq`` (larger): the same with 32-byte PQ codes instead of floats.

Both IVF kinds return ``refine_factor * k`` candidates that are re-ranked by
exact cosine with the stored copies below, so returned scores are exact. Why
PCA: a single query scans ``nprobe`` lists, and at 1024 float32 dims that scan
is memory-bandwidth bound (20k vectors = 80 MB, ~10 ms); 256 dims cut it 4x
while the re-ranking restores the accuracy PCA gives away. ``nprobe`` (and,
when more lists stop helping, ``refine_factor``) is the smallest setting whose
recall@10 against exact search, measured on a sample of stored vectors (each
excluding itself), reaches ``target_recall`` plus a margin.

Memory trade-off: every vector is also kept as a float16 copy (2 bytes per
dimension: 2 KiB per 1024-d vector, ~2 GB per million). The copy is what lets
the index change structure (retrain, switch kind) without the caller
re-sending vectors, and what makes re-ranking exact. Per 1024-d vector: flat
holds 4 KiB in faiss + 2 KiB copy; ivf 1 KiB (PCA-256 floats) + 2 KiB; ivfpq
32 B + 2 KiB, so at that scale the copy is most of the footprint. float16 keeps cosine similarities to ~1e-3, far
below the gaps between neighbours that matter here.

Mutation (``add``/``remove``/``rebuild``) is not thread-safe; concurrent
``search`` calls are.
"""

from __future__ import annotations

import io
import math
from enum import StrEnum

import faiss
import numpy as np

FORMAT_VERSION = 1
DEFAULT_EXACT_THRESHOLD = 20_000  # a flat scan reads 4 KiB per 1024-d vector: 20k is ~80 MB, a few ms
DEFAULT_IVFPQ_THRESHOLD = 5_000_000  # beyond this the 1 KiB/vector of PCA floats adds up
RETRAIN_GROWTH_FACTOR = 4  # retrain IVF lists once the index has grown this much since training
CALIBRATION_QUERIES = 256
CALIBRATION_K = 10
CALIBRATION_MARGIN = 0.02  # headroom so held-out queries still clear target_recall
TRAINING_POINTS_PER_LIST = 40  # faiss warns under 39
PQ_TRAINING_POINTS = 10_000  # 256 centroids per sub-quantizer x 39
KMEANS_ITERATIONS = 10
REDUCED_DIM = 256
PQ_SUBVECTOR_DIMS = 8
REFINE_FACTORS = (10, 20, 40, 80)  # candidates re-ranked exactly, as multiples of k
PLATEAU_GAIN = 0.003
ADD_CHUNK = 65_536
MISSING_SCORE = np.float32(-np.inf)


class IndexKind(StrEnum):
    FLAT = "flat"
    IVF = "ivf"
    IVFPQ = "ivfpq"


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """float32 [N, D] copy with unit-norm rows (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def exact_search(database: np.ndarray, queries: np.ndarray, k: int, chunk: int = ADD_CHUNK
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-``k`` inner product. ``database`` [N, D] (any float dtype),
    ``queries`` float32 [M, D]. Returns (scores float32 [M, k], rows int64 [M, k])."""
    best_scores = np.full((len(queries), 0), MISSING_SCORE, dtype=np.float32)
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(database), chunk):
        block = np.asarray(database[start:start + chunk], dtype=np.float32)
        scores = np.concatenate([best_scores, queries @ block.T], axis=1)
        rows = np.concatenate(
            [best_rows, np.broadcast_to(np.arange(start, start + len(block)), (len(queries), len(block)))],
            axis=1)
        keep = min(k, scores.shape[1])
        top = np.argpartition(-scores, keep - 1, axis=1)[:, :keep]
        best_scores = np.take_along_axis(scores, top, axis=1)
        best_rows = np.take_along_axis(rows, top, axis=1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    return np.take_along_axis(best_scores, order, axis=1), np.take_along_axis(best_rows, order, axis=1)


class EmbeddingIndex:
    """Cosine-similarity index of ``dim``-dimensional vectors keyed by int64 ids.

    Adding an id that is already present replaces its vector.
    """

    def __init__(self, dim: int, exact_threshold: int = DEFAULT_EXACT_THRESHOLD,
                 ivfpq_threshold: int = DEFAULT_IVFPQ_THRESHOLD, target_recall: float = 0.95,
                 auto_rebuild: bool = True, seed: int = 0) -> None:
        if exact_threshold < 1000:
            raise ValueError("exact_threshold below 1000 leaves too little data to train IVF lists")
        self.dim = dim
        self.exact_threshold = exact_threshold
        self.ivfpq_threshold = max(ivfpq_threshold, exact_threshold)
        self.target_recall = target_recall
        self.auto_rebuild = auto_rebuild
        self.seed = seed
        self._ids = np.zeros(0, dtype=np.int64)
        self._vectors = np.zeros((0, dim), dtype=np.float16)
        self._size = 0
        self._row_of_id: dict[int, int] = {}
        self.kind = IndexKind.FLAT
        self.nprobe = 0
        self.refine_factor = 1
        self.trained_size = 0
        self.calibrated_recall = 1.0
        self._faiss = self._new_flat()
        self._ivf: faiss.IndexIVF | None = None  # the IVF inside _faiss, where nprobe lives

    def __len__(self) -> int:
        return self._size

    @property
    def ids(self) -> np.ndarray:
        """int64 [N] ids in storage order (a copy)."""
        return self._ids[:self._size].copy()

    def vectors_for(self, ids: np.ndarray) -> np.ndarray:
        """float32 [len(ids), D] stored (normalised, float16-rounded) vectors; KeyError if absent."""
        rows = [self._row_of_id[int(i)] for i in np.asarray(ids).ravel()]
        return self._vectors[rows].astype(np.float32)

    # -- structure ---------------------------------------------------------------

    def _new_flat(self) -> faiss.Index:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def _kind_for(self, size: int) -> IndexKind:
        if size < self.exact_threshold:
            return IndexKind.FLAT
        return IndexKind.IVF if size < self.ivfpq_threshold else IndexKind.IVFPQ

    @property
    def needs_rebuild(self) -> bool:
        """True when the size calls for another kind, or IVF lists were trained on
        far fewer vectors than now. Shrinking switches down only below half a
        threshold, so add/remove churn near a threshold does not thrash."""
        wanted = self._kind_for(self._size)
        if wanted == self.kind:
            return self.kind != IndexKind.FLAT and self._size > RETRAIN_GROWTH_FACTOR * self.trained_size
        order = list(IndexKind)
        if order.index(wanted) > order.index(self.kind):
            return True
        return self._kind_for(2 * self._size) != self.kind

    def rebuild(self) -> None:
        """Recreate the faiss index of the kind the current size calls for, from the
        stored copies (trains IVF lists and recalibrates nprobe). O(n) and, for IVF,
        seconds per million vectors: call it from a worker, not a request."""
        self.kind = self._kind_for(self._size)
        if self.kind == IndexKind.FLAT:
            self._faiss, self._ivf, self.nprobe, self.refine_factor = self._new_flat(), None, 0, 1
            self.trained_size, self.calibrated_recall = 0, 1.0
            self._add_to_faiss(0, self._size)
            return
        nlist = max(16, round(2 * math.sqrt(self._size)))
        reduced_dim = min(self.dim, REDUCED_DIM)
        codes = "Flat" if self.kind == IndexKind.IVF else f"PQ{max(1, reduced_dim // PQ_SUBVECTOR_DIMS)}"
        pca = f"PCA{reduced_dim}," if reduced_dim < self.dim else ""
        index = faiss.index_factory(self.dim, f"{pca}IVF{nlist},{codes}", faiss.METRIC_L2)
        ivf = faiss.downcast_index(faiss.extract_index_ivf(index))
        if self.kind == IndexKind.IVFPQ:
            ivf.do_polysemous_training = False  # index_factory's default; minutes of training we never use
        ivf.cp.niter = KMEANS_ITERATIONS
        ivf.cp.seed = self.seed
        sample_size = min(self._size, max(TRAINING_POINTS_PER_LIST * nlist, PQ_TRAINING_POINTS))
        rng = np.random.default_rng(self.seed)
        sample_rows = np.sort(rng.choice(self._size, size=sample_size, replace=False))
        index.train(self._vectors[sample_rows].astype(np.float32))
        self._faiss, self._ivf = index, ivf
        self._add_to_faiss(0, self._size)
        self.trained_size = self._size
        self._calibrate_search(nlist)

    def _calibrate_search(self, nlist: int) -> None:
        rng = np.random.default_rng(self.seed + 1)
        rows = rng.choice(self._size, size=min(CALIBRATION_QUERIES, self._size), replace=False)
        queries = self._vectors[rows].astype(np.float32)
        # Each query is a stored vector: ask for one more and drop itself, so the
        # measurement behaves like a query that is not in the index.
        _, exact_rows = exact_search(self._vectors[:self._size], queries, CALIBRATION_K + 1)
        expected = [set(self._ids[r].tolist()) - {int(self._ids[q])} for r, q in zip(exact_rows, rows)]
        goal = min(1.0, self.target_recall + CALIBRATION_MARGIN)
        for refine_factor in REFINE_FACTORS:
            self.refine_factor, previous_recall = refine_factor, -1.0
            self._set_nprobe(1)
            while True:
                _, found = self.search(queries, CALIBRATION_K + 1)
                hits = [len(exp & set(got.tolist())) / max(len(exp), 1) for exp, got in zip(expected, found)]
                self.calibrated_recall = float(np.mean(hits))
                if self.calibrated_recall >= goal:
                    return
                # A plateau means the codes, not the lists, limit recall: re-rank more.
                if self.nprobe >= nlist or self.calibrated_recall - previous_recall < PLATEAU_GAIN:
                    break
                previous_recall = self.calibrated_recall
                self._set_nprobe(min(2 * self.nprobe, nlist))

    def _set_nprobe(self, nprobe: int) -> None:
        self.nprobe = nprobe
        self._ivf.nprobe = nprobe

    def _add_to_faiss(self, start: int, stop: int) -> None:
        for chunk_start in range(start, stop, ADD_CHUNK):
            chunk_stop = min(stop, chunk_start + ADD_CHUNK)
            self._faiss.add_with_ids(self._vectors[chunk_start:chunk_stop].astype(np.float32),
                                     self._ids[chunk_start:chunk_stop])

    # -- mutation ----------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or replace. ``ids`` int64 [N] unique; ``vectors`` float [N, D]
        (normalised here). May rebuild the structure when ``auto_rebuild``."""
        ids = np.asarray(ids, dtype=np.int64).ravel()
        vectors = np.asarray(vectors)
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"vectors must be [{len(ids)}, {self.dim}], got {vectors.shape}")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("ids passed to add() must be unique")
        existing = [i for i in ids.tolist() if i in self._row_of_id]
        if existing:
            self.remove(np.array(existing, dtype=np.int64))
        start = self._size
        self._reserve(start + len(ids))
        for chunk_start in range(0, len(ids), ADD_CHUNK):
            chunk = vectors[chunk_start:chunk_start + ADD_CHUNK]
            self._vectors[start + chunk_start:start + chunk_start + len(chunk)] = normalise_rows(chunk)
        self._ids[start:start + len(ids)] = ids
        self._row_of_id.update(zip(ids.tolist(), range(start, start + len(ids))))
        self._size += len(ids)
        if self.auto_rebuild and self.needs_rebuild:
            self.rebuild()
        else:
            self._add_to_faiss(start, self._size)

    def _reserve(self, capacity: int) -> None:
        if capacity <= len(self._ids):
            return
        capacity = max(capacity, 2 * len(self._ids))  # amortised O(1) appends
        ids = np.zeros(capacity, dtype=np.int64)
        vectors = np.zeros((capacity, self.dim), dtype=np.float16)
        ids[:self._size] = self._ids[:self._size]
        vectors[:self._size] = self._vectors[:self._size]
        self._ids, self._vectors = ids, vectors

    def remove(self, ids: np.ndarray) -> int:
        """Remove ``ids`` (int64 [N]); unknown ids are ignored. Returns how many were removed."""
        present = [i for i in np.asarray(ids, dtype=np.int64).ravel().tolist() if i in self._row_of_id]
        if not present:
            return 0
        self._faiss.remove_ids(faiss.IDSelectorBatch(np.array(present, dtype=np.int64)))
        for removed_id in present:
            # Move the last stored row into the hole to keep storage dense.
            row, last = self._row_of_id.pop(removed_id), self._size - 1
            if row != last:
                moved_id = int(self._ids[last])
                self._ids[row], self._vectors[row] = moved_id, self._vectors[last]
                self._row_of_id[moved_id] = row
            self._size = last
        if self.auto_rebuild and self.needs_rebuild:
            self.rebuild()
        return len(present)

    # -- queries -----------------------------------------------------------------

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by cosine similarity. ``vectors`` float [M, D] (normalised here).

        Returns (scores float32 [M, k] descending, ids int64 [M, k]); missing
        results are padded with id -1 and score -inf.
        """
        queries = normalise_rows(np.asarray(vectors).reshape(-1, self.dim))
        if self._size == 0 or k < 1:
            return (np.full((len(queries), max(k, 0)), MISSING_SCORE, dtype=np.float32),
                    np.full((len(queries), max(k, 0)), -1, dtype=np.int64))
        if self.kind == IndexKind.FLAT:
            scores, ids = self._faiss.search(queries, k)
        else:
            _, candidates = self._faiss.search(queries, k * self.refine_factor)
            scores, ids = self._rerank(queries, candidates, k)
        scores = np.where(ids < 0, MISSING_SCORE, scores).astype(np.float32)
        return scores, ids.astype(np.int64)

    def _rerank(self, queries: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact cosine re-scoring of IVF candidates (int64 [M, C]) with the float16 copies."""
        rows = np.array([[self._row_of_id.get(int(c), -1) for c in row] for row in candidates])
        exact = np.einsum("md,mcd->mc", queries, self._vectors[rows.clip(0)].astype(np.float32))
        exact[rows < 0] = -np.inf
        top = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        ids = np.take_along_axis(np.where(rows < 0, -1, candidates), top, axis=1)
        return np.take_along_axis(exact, top, axis=1), ids

    # -- persistence -------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Serialise everything (stored copies + faiss structure) for storage."""
        buffer = io.BytesIO()
        np.savez(
            buffer,
            format_version=np.int64(FORMAT_VERSION),
            settings=np.array([self.dim, self.exact_threshold, self.ivfpq_threshold, self.nprobe,
                               self.refine_factor, self.trained_size, int(self.auto_rebuild), self.seed],
                              dtype=np.int64),
            recalls=np.array([self.target_recall, self.calibrated_recall], dtype=np.float64),
            kind=np.array(str(self.kind)),
            ids=self._ids[:self._size],
            vectors=self._vectors[:self._size],
            faiss_index=faiss.serialize_index(self._faiss),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> EmbeddingIndex:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            if int(archive["format_version"]) != FORMAT_VERSION:
                raise ValueError(f"unsupported index format {int(archive['format_version'])}")
            dim, exact_threshold, ivfpq_threshold, nprobe, refine_factor, trained_size, auto_rebuild, seed = (
                int(value) for value in archive["settings"])
            target_recall, calibrated_recall = (float(value) for value in archive["recalls"])
            index = cls(dim, exact_threshold=exact_threshold, ivfpq_threshold=ivfpq_threshold,
                        target_recall=target_recall, auto_rebuild=bool(auto_rebuild), seed=seed)
            index._ids = archive["ids"].copy()
            index._vectors = archive["vectors"].copy()
            index._faiss = faiss.deserialize_index(archive["faiss_index"])
            index.kind = IndexKind(str(archive["kind"]))
            if index.kind != IndexKind.FLAT:
                index._ivf = faiss.extract_index_ivf(index._faiss)
                index._set_nprobe(nprobe)
        index._size = len(index._ids)
        index._row_of_id = dict(zip(index._ids.tolist(), range(index._size)))
        index.nprobe, index.refine_factor = nprobe, refine_factor
        index.trained_size, index.calibrated_recall = trained_size, calibrated_recall
        return index

    def memory_bytes(self) -> int:
        """Approximate resident bytes: float16 copies, ids, faiss vectors/codes and
        coarse centroids, and the id->row dict (~100 bytes per entry in CPython)."""
        reduced_dim = min(self.dim, REDUCED_DIM)
        per_vector = {IndexKind.FLAT: 4 * self.dim + 8, IndexKind.IVF: 4 * reduced_dim + 8,
                      IndexKind.IVFPQ: reduced_dim // PQ_SUBVECTOR_DIMS + 8}[self.kind]
        centroids = round(2 * math.sqrt(self.trained_size)) * reduced_dim * 4
        return int(self._vectors.nbytes + self._ids.nbytes + per_vector * self._size + centroids
                   + 100 * len(self._row_of_id))
