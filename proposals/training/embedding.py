"""Retrain the crop embedding (``proposals.features``) on confirmed crops.

Metric learning with the batch-hard triplet loss (Hermans, Beyer & Leibe 2017, "In Defense
of the Triplet Loss for Person Re-Identification"): a batch holds P labels x K crops of each;
every crop is an anchor, its farthest same-label crop the positive and its nearest
other-label crop the negative; the soft margin softplus(d(a, p) - d(a, n)) replaces a fixed
margin, with plain (not squared) Euclidean distances between L2-normalised embeddings, which
is what the index's cosine search ranks by. All layers of the truncated backbone train.

Collapse. A model that maps everything to one point gives d(a, p) = d(a, n) = 0 and a loss
of exactly log 2; a dead network (all activations zero) gives the same. Every step watches
the loss against log 2 and the spread of the batch's embeddings (mean distance to their
centroid); when both say "collapsed" for ``collapse_patience`` steps in a row, or the loss
stops being finite, training stops and the result says so, with no extractor: the caller
keeps the model it has. A healthy run keeps its loss well below log 2.

Crops come from any frame, complete or not: a confirmed box's label does not depend on the
rest of the frame being labelled.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from proposals.features import FeatureConfig, FeatureExtractor, load_extractor, resample_boxes
from proposals.training.data import TrainingFrame
from proposals.training.evaluation import cross_recall_at_1, nearest_neighbour_recall_at_1

LOG_2 = math.log(2.0)


@dataclass(frozen=True, eq=False)
class LabelledCrop:
    """A confirmed object with some context around it.

    ``image``: uint8 [h, w, 3] RGB patch; ``box``: float32 [4] xyxy in the patch's pixels.
    """

    image: np.ndarray
    box: np.ndarray
    label_id: int


def crops_from_frames(frames: Sequence[TrainingFrame], *, context: float = 0.25) -> list[LabelledCrop]:
    """Every box of ``frames`` as a :class:`LabelledCrop`, its patch the box grown by
    ``context`` of its size on each side (clipped to the frame), so that box jitter has pixels
    to move into while the full frames need not stay in memory."""
    crops = []
    for frame in frames:
        height, width = frame.image.shape[:2]
        for box, label in zip(frame.boxes, frame.label_ids):
            size = box[2:] - box[:2]
            if size.min() < 1:
                continue
            x0, y0 = np.floor(np.maximum(box[:2] - context * size, 0)).astype(int)
            x1, y1 = np.ceil(np.minimum(box[2:] + context * size, [width, height])).astype(int)
            patch = np.ascontiguousarray(frame.image[y0:y1, x0:x1])
            crops.append(LabelledCrop(patch, (box - np.array([x0, y0, x0, y0], np.float32)).astype(np.float32),
                                      int(label)))
    return crops


def batch_hard_triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Soft-margin batch-hard triplet loss, a scalar tensor.

    ``embeddings``: float32 [B, D]; ``labels``: int64 [B]. Distances are Euclidean (not
    squared). Anchors without a positive in the batch are left out; a batch with no valid
    anchor (or no negative) raises ``ValueError``.
    """
    squared = embeddings.pow(2).sum(1)
    gram = embeddings @ embeddings.T
    # The epsilon keeps sqrt's gradient finite where two embeddings coincide.
    distances = (squared[:, None] + squared[None, :] - 2 * gram).clamp_min(0).add(1e-12).sqrt()
    same = labels[:, None] == labels[None, :]
    itself = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive_mask, negative_mask = same & ~itself, ~same
    valid = positive_mask.any(1) & negative_mask.any(1)
    if not valid.any():
        raise ValueError("no anchor has both a positive and a negative in this batch")
    hardest_positive = distances.masked_fill(~positive_mask, float("-inf")).amax(1)
    hardest_negative = distances.masked_fill(~negative_mask, float("inf")).amin(1)
    return F.softplus(hardest_positive[valid] - hardest_negative[valid]).mean()


def embedding_spread(embeddings: torch.Tensor) -> float:
    """Mean Euclidean distance of the rows (float32 [B, D]) to their centroid; 0 when collapsed."""
    embeddings = embeddings.detach()
    return float((embeddings - embeddings.mean(0, keepdim=True)).norm(dim=1).mean())


@dataclass(frozen=True)
class EmbeddingTrainingOptions:
    """``labels_per_batch`` (P) x ``crops_per_label`` (K) crops per step. A step "looks
    collapsed" when ``|loss - log 2| < collapse_tolerance`` and the spread is below
    ``collapse_spread`` (absolute, on the unit sphere), or the spread is below
    ``collapse_spread / 10`` whatever the loss."""

    steps: int = 120
    labels_per_batch: int = 8
    crops_per_label: int = 4
    learning_rate: float = 1e-4
    weight_decay: float = 1e-4
    box_jitter: float = 0.1
    horizontal_flip: bool = True
    colour_jitter: float = 0.15
    seed: int = 0
    collapse_tolerance: float = 0.02
    collapse_spread: float = 0.02
    collapse_patience: int = 8


@dataclass
class EmbeddingTrainingResult:
    """``extractor`` is the retrained model, or None when training collapsed or diverged
    (``collapsed`` is then True and ``reason`` says why)."""

    extractor: FeatureExtractor | None
    collapsed: bool
    reason: str
    losses: list[float] = field(default_factory=list)
    spreads: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def steps(self) -> int:
        return len(self.losses)


def _pk_batch(by_label: dict[int, list[int]], options: EmbeddingTrainingOptions,
              rng: np.random.Generator) -> np.ndarray:
    """Indices of P labels x K crops; a label with fewer than K crops repeats some (the
    augmentation makes repeats differ)."""
    eligible = sorted(label for label, members in by_label.items() if len(members) >= 2)
    labels = rng.choice(eligible, size=min(options.labels_per_batch, len(eligible)), replace=False)
    chosen = []
    for label in labels:
        members = by_label[int(label)]
        chosen.extend(rng.choice(members, size=options.crops_per_label,
                                 replace=len(members) < options.crops_per_label))
    return np.asarray(chosen)


def _augmented_batch(crops: Sequence[LabelledCrop], indices: np.ndarray, size: int,
                     options: EmbeddingTrainingOptions, rng: np.random.Generator,
                     device: torch.device) -> torch.Tensor:
    """float32 [B, 3, size, size] in 0..255: each crop resampled from a jittered box,
    maybe flipped, with a random brightness and contrast."""
    resized = []
    for index in indices:
        crop = crops[int(index)]
        box = crop.box.astype(np.float64)
        extent = box[2:] - box[:2]
        box = box + rng.uniform(-options.box_jitter, options.box_jitter, 4) * np.concatenate([extent, extent])
        height, width = crop.image.shape[:2]
        box = np.clip(box, 0, [width, height, width, height])
        box[2:] = np.maximum(box[2:], box[:2] + 1)
        image = torch.from_numpy(crop.image).to(device).permute(2, 0, 1).unsqueeze(0).float()
        resized.append(resample_boxes(image, torch.tensor(box[None], dtype=torch.float32, device=device), size))
    batch = torch.cat(resized)
    if options.horizontal_flip:
        flip = torch.from_numpy(rng.random(len(batch)) < 0.5).to(device)
        batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
    if options.colour_jitter:
        jitter = options.colour_jitter
        contrast = torch.from_numpy(rng.uniform(1 - jitter, 1 + jitter, (len(batch), 1, 1, 1))).float().to(device)
        brightness = torch.from_numpy(rng.uniform(-jitter, jitter, (len(batch), 1, 1, 1)) * 255).float().to(device)
        mean = batch.mean(dim=(1, 2, 3), keepdim=True)
        batch = ((batch - mean) * contrast + mean + brightness).clamp(0, 255)
    return batch


def _looks_collapsed(loss: float, spread: float, options: EmbeddingTrainingOptions) -> bool:
    near_log_2 = abs(loss - LOG_2) < options.collapse_tolerance
    return (near_log_2 and spread < options.collapse_spread) or spread < options.collapse_spread / 10


def train_embedding(crops: Sequence[LabelledCrop], config: FeatureConfig,
                    options: EmbeddingTrainingOptions = EmbeddingTrainingOptions(), *,
                    fallback_to_random: bool = False, device: str | torch.device | None = None,
                    log: Callable[[int, float, float], None] | None = None) -> EmbeddingTrainingResult:
    """Fine-tune the backbone of ``config`` (its current weights: ImageNet, random or a
    checkpoint) on ``crops``. Save the result with ``proposals.features.save_checkpoint``; it
    loads back with ``FeatureConfig(weights=path, ...)``.

    ``log(step, loss, spread)`` is called after every step. Raises ``ValueError`` unless at
    least two labels have two crops each. Deterministic given ``options.seed`` on one device.
    """
    by_label: dict[int, list[int]] = defaultdict(list)
    for index, crop in enumerate(crops):
        by_label[crop.label_id].append(index)
    if sum(len(members) >= 2 for members in by_label.values()) < 2:
        raise ValueError("triplets need at least two labels with two crops each")
    rng = np.random.default_rng(options.seed)
    started = time.perf_counter()
    extractor = load_extractor(config, fallback_to_random=fallback_to_random,
                               device=str(device) if device is not None else None)
    trunk = extractor.trunk
    optimizer = torch.optim.AdamW(trunk.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    result = EmbeddingTrainingResult(extractor=None, collapsed=False, reason="")
    suspicious = 0
    with torch.random.fork_rng(devices=[extractor.device] if extractor.device.type == "cuda" else []):
        torch.manual_seed(options.seed)
        trunk.train()
        for step in range(options.steps):
            indices = _pk_batch(by_label, options, rng)
            labels = torch.tensor([crops[int(i)].label_id for i in indices], device=extractor.device)
            batch = _augmented_batch(crops, indices, config.input_size, options, rng, extractor.device)
            embeddings = extractor.embed_tensor(batch)
            loss = batch_hard_triplet_loss(embeddings, labels)
            value, spread = float(loss.detach()), embedding_spread(embeddings)
            result.losses.append(value)
            result.spreads.append(spread)
            if log is not None:
                log(step, value, spread)
            if not math.isfinite(value):
                result.collapsed, result.reason = True, f"loss is {value} at step {step}: training diverged"
                break
            suspicious = suspicious + 1 if _looks_collapsed(value, spread, options) else 0
            if suspicious >= options.collapse_patience:
                result.collapsed = True
                result.reason = (f"collapsed at step {step}: loss {value:.4f} vs log 2 = {LOG_2:.4f}, "
                                 f"embedding spread {spread:.2e} for {suspicious} steps")
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    trunk.eval()
    result.seconds = time.perf_counter() - started
    if not result.collapsed:
        result.extractor = extractor
        result.reason = f"trained {result.steps} steps, last loss {result.losses[-1]:.4f}"
    return result


def evaluate_embedding(extractor: FeatureExtractor, queries: Sequence[LabelledCrop],
                       references: Sequence[LabelledCrop] | None = None) -> float:
    """Nearest-neighbour recall@1 under ``extractor``: the share of ``queries`` whose nearest
    ``references`` crop has their label (what a kNN suggestion sees: validation crops against
    the indexed training crops), or, without references, leave-one-out among the queries.
    Compare a retrained embedding with the current one on the same crops. Leave-one-out
    saturates when the queries hold near-duplicates (the same object in neighbouring frames)."""
    def embed(crops: Sequence[LabelledCrop]) -> np.ndarray:
        return np.concatenate([extractor.embed_crops(crop.image, crop.box[None]) for crop in crops])

    query_labels = np.array([crop.label_id for crop in queries])
    if references is None:
        return nearest_neighbour_recall_at_1(embed(queries), query_labels)
    return cross_recall_at_1(embed(queries), query_labels, embed(references),
                             np.array([crop.label_id for crop in references]))
