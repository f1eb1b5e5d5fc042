"""Offline quality measures: embedding retrieval quality and detection mAP@0.5."""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from proposals.features import DEFAULT_LAYER, Backbone, FeatureConfig, LayerTooSmallError, get_extractor
from proposals.index import normalise_rows
from proposals.types import DetectedBox, GroundTruthBox

QUERY_CHUNK = 1024


@dataclass(frozen=True)
class EmbeddingComparison:
    """One row of :func:`compare_embeddings`; ``is_random`` flags untrained weights."""

    backbone: str
    layer: str
    pool_kernel: int
    weights_description: str
    is_random: bool
    dim: int
    recall_at_1: float
    recall_at_5: float
    mean_average_precision: float
    seconds_per_crop: float


@dataclass(frozen=True)
class ConfusingPair:
    """Two crops of different labels that embed close together (indices into the crop list)."""

    first: int
    second: int
    first_label: int
    second_label: int
    similarity: float


def _similarity_chunks(embeddings: np.ndarray) -> Iterable[tuple[int, np.ndarray]]:
    """Yield (start, cosine block float32 [chunk, N]) with each query's self-similarity at -inf."""
    for start in range(0, len(embeddings), QUERY_CHUNK):
        block = embeddings[start:start + QUERY_CHUNK] @ embeddings.T
        block[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf
        yield start, block


def ranking_metrics(embeddings: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Leave-one-out retrieval quality of ``embeddings`` float32 [N, D] under ``labels`` int [N].

    Every item queries all the others by cosine similarity. ``recall_at_k`` is
    the share of queries with a same-label item among the k nearest;
    ``mean_average_precision`` averages each query's AP over its full ranking.
    Items whose label occurs once have no correct answer and are skipped.
    """
    embeddings = normalise_rows(embeddings)
    labels = np.asarray(labels)
    label_sizes = dict(zip(*np.unique(labels, return_counts=True)))
    hits_at_1, hits_at_5, average_precisions = [], [], []
    for start, block in _similarity_chunks(embeddings):
        order = np.argsort(-block, axis=1, kind="stable")[:, :-1]  # last = the query itself
        for row, ranking in enumerate(order):
            query_label = labels[start + row]
            if label_sizes[query_label] < 2:
                continue
            relevant = labels[ranking] == query_label
            hits_at_1.append(relevant[0])
            hits_at_5.append(relevant[:5].any())
            ranks_of_relevant = np.flatnonzero(relevant) + 1
            average_precisions.append(np.mean(np.arange(1, len(ranks_of_relevant) + 1) / ranks_of_relevant))
    if not average_precisions:
        raise ValueError("no label occurs at least twice; ranking metrics are undefined")
    return {"recall_at_1": float(np.mean(hits_at_1)), "recall_at_5": float(np.mean(hits_at_5)),
            "mean_average_precision": float(np.mean(average_precisions))}


def config_grid(backbone_layers: Mapping[str, Sequence[str]] | None = None,
                pool_kernels: Sequence[int] = (3, 4, 5), weights: str = "imagenet",
                input_size: int = 224) -> list[FeatureConfig]:
    """Backbones x layers x pooling kernels; the default covers every backbone at its
    default layer plus ``layer3`` for the resnets. Combinations whose layer output
    is smaller than the kernel are dropped when the extractor is built."""
    if backbone_layers is None:
        backbone_layers = {backbone: (DEFAULT_LAYER[backbone],) for backbone in Backbone}
        backbone_layers |= {Backbone.RESNET18: ("layer3", "layer4"), Backbone.RESNET34: ("layer3", "layer4")}
    return [FeatureConfig(backbone=backbone, layer=layer, pool_kernel=kernel, weights=weights, input_size=input_size)
            for backbone, layers in backbone_layers.items()
            for layer, kernel in itertools.product(layers, pool_kernels)]


def compare_embeddings(crops: Sequence[np.ndarray], labels: Sequence[int], configs: Sequence[FeatureConfig],
                       fallback_to_random: bool = False) -> list[EmbeddingComparison]:
    """Embed ``crops`` (uint8 [H, W, 3] RGB each) with every config and rank them by
    :func:`ranking_metrics`. Rows keep ``is_random`` so untrained baselines are never
    mistaken for real results. Configs too deep for their input size are skipped."""
    rows = []
    for config in configs:
        try:
            extractor = get_extractor(config, fallback_to_random=fallback_to_random)
        except LayerTooSmallError:
            continue
        started = time.perf_counter()
        embeddings = extractor.embed_images(crops)
        elapsed = time.perf_counter() - started
        metrics = ranking_metrics(embeddings, np.asarray(labels))
        rows.append(EmbeddingComparison(
            backbone=str(config.backbone), layer=config.layer, pool_kernel=config.pool_kernel,
            weights_description=extractor.weights_description, is_random=extractor.is_random,
            dim=extractor.dim, seconds_per_crop=elapsed / max(len(crops), 1), **metrics))
    return sorted(rows, key=lambda row: -row.mean_average_precision)


def plausible_false_positives(embeddings: np.ndarray, labels: np.ndarray, top: int = 20) -> list[ConfusingPair]:
    """The ``top`` most similar pairs of items with different labels, most similar first.

    ``embeddings`` float32 [N, D]; ``labels`` int [N]. These are the crops a
    nearest-neighbour suggestion would most plausibly get wrong.
    """
    embeddings = normalise_rows(embeddings)
    labels = np.asarray(labels)
    candidates: list[tuple[float, int, int]] = []
    for start, block in _similarity_chunks(embeddings):
        query_index = np.arange(start, start + len(block))[:, None]
        # Keep each unordered pair once (i < j) and only pairs across labels.
        block[(np.arange(len(embeddings))[None, :] <= query_index)
              | (labels[None, :] == labels[start:start + len(block), None])] = -np.inf
        flat = block.ravel()
        keep = min(top, int(np.isfinite(flat).sum()))
        if keep == 0:
            continue
        best = np.argpartition(-flat, keep - 1)[:keep]
        rows, columns = np.unravel_index(best, block.shape)
        candidates += [(float(block[r, c]), start + int(r), int(c)) for r, c in zip(rows, columns)]
    candidates.sort(key=lambda item: -item[0])
    return [ConfusingPair(first=i, second=j, first_label=int(labels[i]), second_label=int(labels[j]),
                          similarity=similarity) for similarity, i, j in candidates[:top]]


def save_false_positive_grid(pairs: Sequence[ConfusingPair], crops: Sequence[np.ndarray],
                             path: str | os.PathLike, thumbnail_size: int = 96) -> None:
    """Write a PNG with one row per pair: both crops (uint8 [H, W, 3] RGB) side by side,
    captioned with their labels and similarity. Written atomically."""
    caption_height = 14
    row_height = thumbnail_size + caption_height
    grid = Image.new("RGB", (2 * thumbnail_size + 8, max(1, len(pairs)) * row_height), "white")
    draw = ImageDraw.Draw(grid)
    for row, pair in enumerate(pairs):
        top = row * row_height
        for column, index in enumerate((pair.first, pair.second)):
            thumbnail = Image.fromarray(crops[index]).resize((thumbnail_size, thumbnail_size))
            grid.paste(thumbnail, (column * (thumbnail_size + 8), top))
        draw.text((2, top + thumbnail_size),
                  f"{pair.first_label} vs {pair.second_label}  cos {pair.similarity:.3f}", fill="black")
    path = Path(path)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(handle)
    try:
        grid.save(temp_name, format="PNG")
        os.replace(temp_name, path)
    except BaseException:
        os.unlink(temp_name)
        raise


def _coco_box(box: Sequence[float]) -> list[float]:
    x0, y0, x1, y1 = (float(value) for value in box)
    return [x0, y0, x1 - x0, y1 - y0]


def mean_average_precision_at_50(ground_truth: Sequence[GroundTruthBox], predictions: Sequence[DetectedBox],
                                 category_ids: Sequence[int], max_detections: int = 100) -> dict:
    """COCO-style AP at IoU 0.5 (101-point interpolation, all areas) with pycocotools.

    Returns ``{"per_category_ap": {category_id: float | None}, "map": float}``;
    a category with no ground truth gets None and is left out of the mean
    (``map`` is NaN when no category has ground truth).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    image_ids = sorted({box.image_id for box in ground_truth} | {box.image_id for box in predictions})
    dataset = {
        "info": {},
        "images": [{"id": image_id} for image_id in image_ids],
        "categories": [{"id": category_id} for category_id in category_ids],
        "annotations": [
            {"id": number, "image_id": box.image_id, "category_id": box.category_id, "bbox": bbox,
             "area": bbox[2] * bbox[3], "iscrowd": 0}
            for number, (box, bbox) in enumerate(((box, _coco_box(box.box)) for box in ground_truth), start=1)],
    }
    per_category: dict[int, float | None] = {
        category_id: (0.0 if any(box.category_id == category_id for box in ground_truth) else None)
        for category_id in category_ids}
    if predictions and ground_truth:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco_truth = COCO()
            coco_truth.dataset = dataset
            coco_truth.createIndex()
            coco_predictions = coco_truth.loadRes([
                {"image_id": box.image_id, "category_id": box.category_id, "bbox": _coco_box(box.box),
                 "score": float(box.score)} for box in predictions])
            evaluator = COCOeval(coco_truth, coco_predictions, iouType="bbox")
            evaluator.params.iouThrs = np.array([0.5])
            evaluator.params.catIds = list(category_ids)
            evaluator.params.maxDets = [max_detections]
            evaluator.evaluate()
            evaluator.accumulate()
        # precision: [iou thresholds, recall points, categories, area ranges, max dets]; area 0 = all.
        precision = evaluator.eval["precision"][0, :, :, 0, -1]
        for column, category_id in enumerate(category_ids):
            if per_category[category_id] is not None:
                valid = precision[:, column][precision[:, column] > -1]
                per_category[category_id] = float(valid.mean()) if len(valid) else 0.0
    scored = [ap for ap in per_category.values() if ap is not None]
    return {"per_category_ap": per_category, "map": float(np.mean(scored)) if scored else math.nan}
