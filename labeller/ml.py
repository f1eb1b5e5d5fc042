"""The one bridge between the Django app and the ``proposals`` library.

It turns settings into library configs, keeps per-process model caches, and converts
between rows and the library's arrays; every other module of the app calls the ML
through here.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings

# torch and faiss are imported on first use, not with the URLconf: web processes and
# management commands that never embed anything start in a second instead of ten.
if TYPE_CHECKING:
    from proposals.features import FeatureConfig, FeatureExtractor
    from proposals.labels import LabelIndex
    from proposals.regions import FrameCandidates
    from proposals.types import LabelSuggestion, RegionProposal

BACKGROUND = -1  # proposals.labels.BACKGROUND: the label of hard negatives
logger = logging.getLogger(__name__)


# Every feature function takes ``weights``: None for the configured feature model, or the
# local path of a project's retrained embedding checkpoint (see training.feature_models).


def feature_config(weights: str | None = None) -> FeatureConfig:
    from proposals.features import FeatureConfig

    return FeatureConfig(
        backbone=settings.LABELLER["FEATURE_BACKBONE"],
        pooling=settings.LABELLER["FEATURE_POOLING"],
        weights=weights or settings.LABELLER["FEATURE_WEIGHTS"],
    )


def feature_extractor(weights: str | None = None) -> FeatureExtractor:
    """The extractor, loaded once per process.

    Where ImageNet weights cannot be loaded (no network), it falls back to a seeded
    random initialisation and says so in ``weights_description``, which the UI shows.
    """
    return _extractor_for(feature_config(weights))


@functools.lru_cache(maxsize=4)
def _extractor_for(config: FeatureConfig) -> FeatureExtractor:
    from proposals.features import get_extractor

    extractor = get_extractor(config, fallback_to_random=True)
    if extractor.is_random:
        logger.warning("feature extractor: %s", extractor.weights_description)
    return extractor


def feature_key(weights: str | None = None) -> str:
    """Identifies the feature model: an index built with another key must be rebuilt. A
    checkpoint counts by its file name (stored checkpoints have unique names), so every
    machine agrees on the key wherever its local copy lies."""
    config = feature_config(weights)
    source = Path(config.weights).name if weights else config.weights
    return f"{config.backbone}/{config.layer}/{config.pooling}{config.pool_kernel}/{config.input_size}/{source}"


def embed_images(images: Sequence[np.ndarray], weights: str | None = None) -> np.ndarray:
    """uint8 [H, W, 3] RGB images -> float32 [N, D] L2-normalised embeddings."""
    return feature_extractor(weights).embed_images(images)


def embed_crops(rgb: np.ndarray, boxes: np.ndarray, weights: str | None = None) -> np.ndarray:
    """Crops of one frame: boxes float32 [N, 4] xyxy pixels -> float32 [N, D]."""
    return feature_extractor(weights).embed_crops(rgb, np.asarray(boxes, dtype=np.float32).reshape(-1, 4))


# --- the project's label index, with the annotation versions it was built from ---------


@dataclass
class StoredIndex:
    """A project's label index as cached in a process. Mutation (applying a delta) and use
    (``suggest_labels``, ``propose``) hold ``lock``: threads of a web process share it."""

    labels: LabelIndex
    member_versions: dict[int, int]  # annotation id -> annotation version embedded
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)


def stored_index_new() -> StoredIndex:
    from proposals.labels import LabelIndex

    return StoredIndex(labels=LabelIndex(feature_extractor().dim), member_versions={})


@dataclass(frozen=True)
class IndexDelta:
    """One step of a stored index: forget ``removed``, then add (or replace) ``ids``.

    A delta states the end result for every annotation it touches, so applying it to the
    index at any version within the range it covers gives the index at its end, which is
    what lets deltas be merged and a process catch up from any version in between.

    removed: int64 [R]; ids: int64 [A]; vectors: float32 [A, D]; labels: int64 [A]
    (``BACKGROUND`` for hard negatives); versions: int64 [A], the annotation versions
    embedded; temperature: the label index's temperature at the end.
    """

    removed: np.ndarray
    ids: np.ndarray
    vectors: np.ndarray
    labels: np.ndarray
    versions: np.ndarray
    temperature: float

    @property
    def rows(self) -> int:
        return len(self.removed) + len(self.ids)


def index_delta_to_bytes(delta: IndexDelta) -> bytes:
    buffer = io.BytesIO()
    np.savez(
        buffer, removed=delta.removed, ids=delta.ids, vectors=delta.vectors, labels=delta.labels,
        versions=delta.versions, temperature=np.float64(delta.temperature),
    )
    return buffer.getvalue()


def index_delta_from_bytes(data: bytes) -> IndexDelta:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return IndexDelta(
            removed=archive["removed"], ids=archive["ids"], vectors=archive["vectors"], labels=archive["labels"],
            versions=archive["versions"], temperature=float(archive["temperature"]),
        )


def index_delta_apply(stored: StoredIndex, delta: IndexDelta) -> None:
    """Apply ``delta`` in place. O(size of the delta). The caller holds ``stored.lock``."""
    if len(delta.removed):
        stored.labels.remove(delta.removed)
        for pk in delta.removed.tolist():
            stored.member_versions.pop(pk, None)
    if len(delta.ids):
        stored.labels.add(delta.ids, delta.vectors, delta.labels)
        stored.member_versions.update(zip(delta.ids.tolist(), delta.versions.tolist()))
    stored.labels.temperature = delta.temperature


def index_delta_merge(older: IndexDelta, newer: IndexDelta) -> IndexDelta:
    """One delta equal to applying ``older`` then ``newer``."""
    superseded = np.isin(older.ids, np.concatenate([newer.removed, newer.ids]))
    keep = ~superseded
    return IndexDelta(
        removed=np.union1d(older.removed, newer.removed).astype(np.int64),
        ids=np.concatenate([older.ids[keep], newer.ids]),
        vectors=np.concatenate([older.vectors[keep], newer.vectors]),
        labels=np.concatenate([older.labels[keep], newer.labels]),
        versions=np.concatenate([older.versions[keep], newer.versions]),
        temperature=newer.temperature,
    )


def stored_index_bytes_in_memory(stored: StoredIndex) -> int:
    """Approximate resident bytes of a cached index, for bounding the cache."""
    return stored.labels.index.memory_bytes() + 150 * len(stored.member_versions)


def stored_index_to_bytes(stored: StoredIndex) -> bytes:
    ids = np.fromiter(stored.member_versions.keys(), dtype=np.int64, count=len(stored.member_versions))
    versions = np.fromiter(stored.member_versions.values(), dtype=np.int64, count=len(stored.member_versions))
    buffer = io.BytesIO()
    np.savez(buffer, label_index=np.frombuffer(stored.labels.to_bytes(), dtype=np.uint8), ids=ids, versions=versions)
    return buffer.getvalue()


def stored_index_from_bytes(data: bytes) -> StoredIndex:
    from proposals.labels import LabelIndex

    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        labels = LabelIndex.from_bytes(archive["label_index"].tobytes())
        members = dict(zip(archive["ids"].tolist(), archive["versions"].tolist()))
    return StoredIndex(labels=labels, member_versions=members)


def suggest_labels(stored: StoredIndex, vectors: np.ndarray, top: int = 3) -> list[tuple[LabelSuggestion, ...]]:
    with stored.lock:
        if len(stored.labels) == 0:
            return [() for _ in range(len(vectors))]
        return stored.labels.suggest(vectors, top=top)


# --- region proposals -------------------------------------------------------------------


@dataclass(frozen=True)
class Neighbour:
    """A frame of the same shot with confirmed boxes, to propagate from."""

    rgb: np.ndarray
    boxes: np.ndarray  # float32 [N, 4]
    label_ids: np.ndarray  # int64 [N]
    seconds_apart: float = 1.0  # from the frame proposed for
    between: Sequence[np.ndarray] = ()  # the video's frames between, in order from this one
    after: bool | None = None  # later in the video than the frame proposed for (None: not known)


def _as_tuples(neighbours: Sequence[Neighbour]) -> list[tuple]:
    """``neighbours`` as proposals.regions takes them (see ``propose_regions``)."""
    return [(n.rgb, n.boxes, n.label_ids, n.seconds_apart, n.between, n.after) for n in neighbours]


def frame_candidates(
    rgb: np.ndarray, weights: str | None = None, others: Sequence[np.ndarray] = ()
) -> FrameCandidates:
    """The frame's class-agnostic candidates, and the objects moving against the scene in
    ``others`` (frames of its shot around it), embedded with the feature model."""
    from proposals.regions import frame_candidates as compute

    return compute(rgb, extractor=feature_extractor(weights), others=others)


def class_agnostic_boxes(rgb: np.ndarray) -> np.ndarray:
    """float32 [N, 4]: the frame's class-agnostic candidates alone (no embedding), best first."""
    from proposals.regions import scored_candidate_boxes

    return scored_candidate_boxes(rgb)[0]


def frame_candidates_to_bytes(candidates: FrameCandidates) -> bytes:
    buffer = io.BytesIO()
    vectors = candidates.vectors if candidates.vectors is not None else np.zeros((0, 0), np.float32)
    # float16 halves the cache; cosine scores move by ~1e-3, far below any decision here.
    np.savez(
        buffer, boxes=candidates.boxes, prior=candidates.prior, vectors=vectors.astype(np.float16),
        sources=candidates.source_of_each().astype(str),
    )
    return buffer.getvalue()


def frame_candidates_from_bytes(data: bytes) -> FrameCandidates:
    from proposals.regions import FrameCandidates

    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        vectors = archive["vectors"].astype(np.float32)
        return FrameCandidates(
            boxes=archive["boxes"], prior=archive["prior"], vectors=vectors if vectors.size else None,
            sources=archive["sources"],
        )


def propose(
    rgb: np.ndarray,
    *,
    neighbours: Sequence[Neighbour],
    stored: StoredIndex | None,
    avoid_boxes: np.ndarray,
    candidates: FrameCandidates | None = None,
    exemplars: Sequence[tuple[np.ndarray, int]] = (),
    detector=None,
    refiner=None,
    weights: str | None = None,
    top_k: int = 20,
    chance=None,
) -> list[RegionProposal]:
    """Region proposals for a frame, minus those overlapping ``avoid_boxes`` (float32 [M, 4]):
    boxes people already drew and proposals they rejected here, so human work is never
    duplicated and a rejected false positive is not proposed again. ``chance``: see
    ``proposals.regions.propose_regions``."""
    from proposals.boxes import iou_matrix
    from proposals.regions import propose_regions

    with stored.lock if stored is not None else contextlib.nullcontext():
        proposals = propose_regions(
            rgb,
            neighbours=_as_tuples(neighbours),
            label_index=stored.labels if stored is not None and len(stored.labels) else None,
            extractor=feature_extractor(weights),
            candidates=candidates,
            exemplars=exemplars,
            detector=detector,
            refiner=refiner,
            top_k=top_k,
            chance=chance,
        )
    if not proposals or not len(avoid_boxes):
        return proposals
    overlaps = iou_matrix(np.array([p.box for p in proposals], dtype=np.float32), avoid_boxes)
    return [p for p, row in zip(proposals, overlaps) if row.max() < 0.5]


# --- the project's detector -------------------------------------------------------------

# Detections a proposal refresh takes from the detector: the calibration (source "detector")
# decides which are worth showing, so keep enough weak ones for it to learn from.
DETECTOR_PROPOSALS = 20
DETECTOR_MIN_SCORE = 0.05
_detector_cache: OrderedDict[str, object] = OrderedDict()
_model_cache_lock = threading.Lock()
DETECTOR_CACHE_ENTRIES = 4


def detector_config(weights: str | None = None):
    """The configured detector (``LABELLER["DETECTOR_BACKBONE"]``, ``["DETECTOR_WEIGHTS"]``);
    ``weights`` (a checkpoint path) overrides the initial weights: fine-tuning."""
    from proposals.training.detector_models import DetectorConfig

    return DetectorConfig(
        backbone=settings.LABELLER["DETECTOR_BACKBONE"],
        weights=weights or settings.LABELLER["DETECTOR_WEIGHTS"],
        max_side=settings.LABELLER["DETECTOR_MAX_SIDE"],
    )


def train_detector(frames, *, label_ids: Sequence[int], parent_path: str | None, epochs: int, seed: int, log):
    """Train on ``frames`` (``proposals.training.data.TrainingFrame``), fine-tuning from the
    checkpoint at ``parent_path`` when given; ``log(EpochStats)`` after each epoch may raise to stop."""
    from proposals.training.detector import DetectorTrainingOptions
    from proposals.training.detector import train_detector as train

    options = DetectorTrainingOptions(epochs=epochs, seed=seed, learning_rate=settings.LABELLER["DETECTOR_LEARNING_RATE"])
    return train(frames, detector_config(parent_path), options, label_ids=label_ids, fallback_to_random=True, log=log), options


def evaluate_detector(detector, frames):
    """mAP@0.5 overall and per label (``proposals.training.evaluation.DetectionScores``)."""
    from proposals.training.detector import evaluate

    return evaluate(detector, frames)


def evaluate_detector_file(path, frames):
    """:func:`evaluate_detector` of the checkpoint at ``path`` with the inference settings it
    was trained with (not the proposals' tighter ones), so two versions compare fairly."""
    from proposals.training.detector import load_detector as load

    return evaluate_detector(load(path), frames)


def save_detector(detector, path, **metadata) -> None:
    from proposals.training.detector import save_detector as save

    save(detector, path, **metadata)


def load_detector(path):
    """The detector saved at ``path`` (a local file), loaded once per process per path: a
    promoted version has a new path, so every worker picks it up on its next proposal."""
    from proposals.training.detector import load_detector as load

    return _loaded_once(_detector_cache, path,
                        lambda: load(path, score_threshold=DETECTOR_MIN_SCORE, max_detections=DETECTOR_PROPOSALS))


def _loaded_once(cache: OrderedDict, path, load):
    """``cache[path]``, loading it with ``load()`` the first time (a few recent paths are kept)."""
    key = str(path)
    with _model_cache_lock:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
    loaded = load()
    with _model_cache_lock:
        cache[key] = loaded
        while len(cache) > DETECTOR_CACHE_ENTRIES:
            cache.popitem(last=False)
    return loaded


# --- the box refiner of a detector version ------------------------------------------------

_refiner_cache: OrderedDict[str, object] = OrderedDict()


def train_box_refiner(frames, *, seed: int, log):
    """A box refiner trained on ``frames``' confirmed boxes (``LABELLER["REFINER_STEPS"]``
    steps); ``log(step, loss)`` may raise to stop. See proposals.training.refiner."""
    from proposals.training.refiner import train_box_refiner as train

    return train(frames, steps=settings.LABELLER["REFINER_STEPS"], seed=seed, log=log)


def evaluate_box_refiner(refiner, frames, *, seed: int):
    """``proposals.training.refiner.RefinerScore`` of ``refiner`` (None: none) on ``frames``."""
    from proposals.training.refiner import evaluate_box_refiner as evaluate

    return evaluate(refiner, frames, seed=seed)


def follow_neighbours(rgb: np.ndarray, neighbours: Sequence[Neighbour]) -> tuple[np.ndarray, np.ndarray]:
    """(float32 [N, 4] boxes, float [N] the tracker's confidence): the confirmed boxes of
    ``neighbours`` followed into ``rgb``, fused, bridged and pulled towards their objects'
    colours, as :func:`propose` follows them before anything else sees them."""
    from proposals.regions import follow_neighbours as follow

    if not neighbours:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    boxes, confidence, _, _ = follow(rgb, _as_tuples(neighbours))
    return boxes, confidence


def evaluate_box_refiner_on_followed(refiner, cases):
    """``proposals.training.refiner.FollowedScore`` of ``refiner`` on ``(frame, followed boxes,
    their confidence, confirmed boxes)`` cases (``FollowedCase``)."""
    from proposals.training.refiner import evaluate_on_followed

    return evaluate_on_followed(refiner, cases)


def save_box_refiner(refiner, path, **metadata) -> None:
    from proposals.training.refiner import save_box_refiner as save

    save(refiner, path, **metadata)


def load_box_refiner(path):
    """``rgb, boxes, confidence -> refined boxes`` of the refiner saved at ``path`` (see
    :func:`load_box_refiner_net`)."""
    from proposals.training.refiner import refine_boxes

    return functools.partial(refine_boxes, load_box_refiner_net(path))


def load_box_refiner_net(path):
    """The refiner network saved at ``path``, loaded once per process per path (a promoted
    version has a new path, so every worker picks it up on its next proposal)."""
    from proposals.training.refiner import load_box_refiner as load

    return _loaded_once(_refiner_cache, path, lambda: load(path))


# --- retraining the embedding -----------------------------------------------------------


def embedding_crops(frames):
    """Labelled crops (``proposals.training.embedding.LabelledCrop``) of ``frames``' boxes."""
    from proposals.training.embedding import crops_from_frames

    return crops_from_frames(frames)


def train_embedding(crops, *, weights: str | None, steps: int, seed: int, log):
    """Fine-tune the feature model (``weights``: the project's current one) on ``crops`` with the
    batch-hard triplet loss; ``log(step, loss, spread)`` may raise to stop. The result says
    whether it collapsed (then it holds no extractor)."""
    from proposals.training.embedding import EmbeddingTrainingOptions
    from proposals.training.embedding import train_embedding as train

    labels = len({crop.label_id for crop in crops})
    options = EmbeddingTrainingOptions(steps=steps, seed=seed, labels_per_batch=max(2, min(8, labels)))
    return train(crops, feature_config(weights), options, fallback_to_random=True, log=log), options


def evaluate_embedding(extractor, queries, references) -> float:
    """Nearest-neighbour recall@1 of ``queries`` against ``references`` under ``extractor``."""
    from proposals.training.embedding import evaluate_embedding as evaluate

    return evaluate(extractor, queries, references)


def save_embedding(extractor, path, **metadata) -> None:
    from proposals.features import save_checkpoint

    save_checkpoint(extractor, path, metadata=metadata)


# --- embedding quality report -----------------------------------------------------------


def compare_feature_models(
    crops: Sequence[np.ndarray], labels: Sequence[int], *, backbones: Sequence[str] | None, kernels: Sequence[int]
) -> list[dict]:
    """Rank backbones x layers x pooling kernels by nearest-neighbour retrieval of ``crops``."""
    from dataclasses import asdict

    from proposals.evaluation import compare_embeddings, config_grid
    from proposals.features import DEFAULT_LAYER, Backbone

    layers = None
    if backbones:
        layers = {Backbone(b): (DEFAULT_LAYER[Backbone(b)],) for b in backbones}
    configs = config_grid(layers, pool_kernels=kernels, weights=settings.LABELLER["FEATURE_WEIGHTS"])
    return [asdict(row) for row in compare_embeddings(crops, labels, configs, fallback_to_random=True)]


def false_positive_grid_png(crops: Sequence[np.ndarray], labels: Sequence[int], path, top: int = 20) -> int:
    """Write the most plausible confusions under the configured features to ``path``; returns how many."""
    from proposals.evaluation import plausible_false_positives, save_false_positive_grid

    embeddings = embed_images(crops)
    pairs = plausible_false_positives(embeddings, np.asarray(labels), top=top)
    if pairs:
        save_false_positive_grid(pairs, crops, path)
    return len(pairs)


# --- the learning loop's train/validation split -------------------------------------------


def frame_split(frame_id: int, *, salt: str, val_share: float) -> str:
    """``"train"`` or ``"validation"``: the split the learning loop puts this frame in
    (``proposals.training.data.split_of``; a pure function, cheap, no torch)."""
    from proposals.training.data import split_of

    return split_of(frame_id, salt, val_share).value
