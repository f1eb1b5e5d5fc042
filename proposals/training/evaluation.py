"""How good a trained model is, and whether it may replace the current one.

Detection: mAP@0.5, overall and per label, computed by pycocotools through
:func:`proposals.evaluation.mean_average_precision_at_50`. Embeddings: leave-one-out
nearest-neighbour recall@1 (:func:`proposals.evaluation.ranking_metrics`). Both are measured
on the validation frames of :func:`proposals.training.data.split_of`, and a new model is
promoted only if it is not worse than the current one on the same validation set
(:func:`promotion_decision`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from proposals.evaluation import mean_average_precision_at_50, ranking_metrics
from proposals.training.data import TrainingFrame
from proposals.types import DetectedBox, GroundTruthBox


@dataclass(frozen=True)
class DetectionScores:
    """``map50``: mean over the labels with ground truth (NaN when none has);
    ``per_label``: label id -> AP@0.5, None for a label absent from the ground truth."""

    map50: float
    per_label: dict[int, float | None]
    frames: int
    ground_truth_boxes: int


def detection_scores(frames: Sequence[TrainingFrame],
                     predictions: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                     label_ids: Iterable[int]) -> DetectionScores:
    """Score ``predictions`` (per frame: float32 [N, 4] xyxy, float32 [N] scores, int64 [N]
    label ids) against the frames' boxes. ``label_ids``: the categories evaluated."""
    if len(frames) != len(predictions):
        raise ValueError(f"{len(frames)} frames but {len(predictions)} predictions")
    ground_truth = [GroundTruthBox(image_id=number, category_id=int(label), box=tuple(map(float, box)))
                    for number, frame in enumerate(frames) for box, label in zip(frame.boxes, frame.label_ids)]
    detected = [DetectedBox(image_id=number, category_id=int(label), box=tuple(map(float, box)), score=float(score))
                for number, (boxes, scores, labels) in enumerate(predictions)
                for box, score, label in zip(boxes, scores, labels)]
    categories = sorted({int(label) for label in label_ids} | {box.category_id for box in ground_truth})
    result = mean_average_precision_at_50(ground_truth, detected, categories)
    return DetectionScores(map50=result["map"], per_label=dict(result["per_category_ap"]), frames=len(frames),
                           ground_truth_boxes=len(ground_truth))


def nearest_neighbour_recall_at_1(embeddings: np.ndarray, labels: np.ndarray) -> float:
    """Share of items (float32 [N, D], labels int [N]) whose nearest other item shares their
    label (cosine); items whose label occurs once are skipped."""
    return ranking_metrics(embeddings, labels)["recall_at_1"]


def cross_recall_at_1(queries: np.ndarray, query_labels: np.ndarray, references: np.ndarray,
                      reference_labels: np.ndarray) -> float:
    """Share of ``queries`` (float32 [M, D], unit rows) whose nearest ``reference`` (float32
    [N, D], unit rows) has the query's label: held-out crops against the training crops."""
    if len(queries) == 0 or len(references) == 0:
        return math.nan
    nearest = np.argmax(queries @ references.T, axis=1)
    return float(np.mean(np.asarray(reference_labels)[nearest] == np.asarray(query_labels)))


def validation_key(frame_ids: Iterable[int]) -> str:
    """Names a validation set by its frames: SHA-256 of the sorted ids. Two scores are
    comparable only if their keys are equal."""
    ids = sorted({int(frame_id) for frame_id in frame_ids})
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()


@dataclass(frozen=True)
class ModelScore:
    """One model's figure (higher is better, e.g. mAP@0.5 or recall@1) on one validation set."""

    value: float
    validation_key: str


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str


def promotion_decision(candidate: ModelScore, current: ModelScore | None, *, tolerance: float = 0.0
                       ) -> PromotionDecision:
    """Promote ``candidate`` only if it is not worse than ``current`` (by more than
    ``tolerance``) on the same validation set.

    Without a current model any candidate with a finite score is promoted. A score computed on
    another validation set is refused (re-evaluate the current model first); so is a
    candidate without a finite score (nothing to judge it by). A current model whose score is
    not finite is replaced by any finite candidate.
    """
    if not math.isfinite(candidate.value):
        return PromotionDecision(False, "the candidate has no finite validation score")
    if current is None:
        return PromotionDecision(True, "no current model")
    if candidate.validation_key != current.validation_key:
        return PromotionDecision(False, "scores come from different validation sets; re-evaluate the current model")
    if not math.isfinite(current.value):
        return PromotionDecision(True, "the current model has no finite validation score")
    if candidate.value + tolerance >= current.value:
        return PromotionDecision(True, f"{candidate.value:.4f} is not worse than {current.value:.4f}")
    return PromotionDecision(False, f"{candidate.value:.4f} is worse than the current {current.value:.4f}")
