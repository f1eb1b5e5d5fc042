"""The embedding quality report: the process that chose AlexNet, rerun on a project's own crops."""

from __future__ import annotations

import random
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from labeller import ml
from labeller.annotations.models import Annotation, AnnotationStatus
from labeller.core.errors import DomainError
from labeller.media.files import read_frame_rgb
from labeller.projects.models import Project
from labeller.training.models import EmbeddingReport

MIN_CROPS_PER_LABEL = 2  # a crop needs a same-label neighbour for recall to mean anything


def _confirmed_crops(project: Project, per_label: int, seed: int) -> tuple[list[np.ndarray], list[int]]:
    """Up to ``per_label`` confirmed crops of each label, read frame by frame."""
    by_label: dict[int, list[Annotation]] = defaultdict(list)
    for annotation in Annotation.objects.filter(
        project=project, status=AnnotationStatus.CONFIRMED, label__isnull=False
    ).select_related("frame"):
        by_label[annotation.label_id].append(annotation)
    rng = random.Random(seed)
    chosen = []
    for of_label in by_label.values():
        if len(of_label) >= MIN_CROPS_PER_LABEL:
            chosen += rng.sample(of_label, min(per_label, len(of_label)))
    chosen.sort(key=lambda a: a.frame_id)
    crops, labels, frame_id, rgb = [], [], None, None
    for annotation in chosen:
        if annotation.frame_id != frame_id:
            frame_id, rgb = annotation.frame_id, read_frame_rgb(annotation.frame)
        x1, y1, x2, y2 = (int(round(v)) for v in (annotation.x1, annotation.y1, annotation.x2, annotation.y2))
        crop = rgb[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)]
        crops.append(np.ascontiguousarray(crop))
        labels.append(annotation.label_id)
    return crops, labels


def embedding_report_create(
    *, project: Project, backbones: list[str] | None = None, kernels: tuple[int, ...] = (3, 4, 5),
    per_label: int = 50, seed: int = 0,
) -> EmbeddingReport:
    crops, labels = _confirmed_crops(project, per_label, seed)
    if len(set(labels)) < 2:
        raise DomainError(
            "The report needs confirmed boxes of at least two labels, two or more of each.", code="too_few_crops"
        )
    rows = ml.compare_feature_models(crops, labels, backbones=backbones, kernels=kernels)
    grid_name = ""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "false-positives.png"
        if ml.false_positive_grid_png(crops, labels, path):
            grid_name = default_storage.save(
                f"orgs/{project.organization_id}/projects/{project.pk}/reports/embeddings-fp.png",
                ContentFile(path.read_bytes()),
            )
    return EmbeddingReport.objects.create(
        project=project, crop_count=len(crops), label_count=len(set(labels)), rows=rows, grid=grid_name
    )
