"""The models a project uses now, and local copies of stored checkpoints.

A project embeds with the configured feature model until one of its embedding runs is in
use (``ProjectLearning.current_embedding_run``); then with that run's checkpoint. Its
detector, and the detector version's box refiner, are those of ``ProjectLearning.current_run``.
Kept apart from the services so the index, proposing and retraining modules can all ask it
without importing each other.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage

from labeller import ml
from labeller.training.models import ProjectLearning

logger = logging.getLogger(__name__)

# What loading a stored checkpoint raises when its file is gone, cut short or of another kind.
UNREADABLE_CHECKPOINT = (FileNotFoundError, OSError, ValueError, RuntimeError)


def local_checkpoint(name: str) -> Path:
    """A local file of the stored checkpoint ``name`` (torch loads from files): the file itself
    on a file-system storage, else a copy in the data folder's cache."""
    if isinstance(default_storage, FileSystemStorage):
        return Path(default_storage.path(name))
    cached = Path(settings.DATA_DIR) / "model-cache" / name
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        with default_storage.open(name, "rb") as source, tempfile.NamedTemporaryFile(dir=cached.parent, delete=False) as copy:
            copy.write(source.read())
        Path(copy.name).replace(cached)
    return cached


def project_feature_weights(project_id: int) -> str | None:
    """The local checkpoint of the project's embedding in use, or None for the configured one."""
    artifact = (
        ProjectLearning.objects.filter(project_id=project_id)
        .values_list("current_embedding_run__artifact", flat=True)
        .first()
    )
    return str(local_checkpoint(artifact)) if artifact else None


def current_refiner(*, project_id: int):
    """The box refiner of the project's detector in use, or None (none kept, or unreadable)."""
    return _in_use(project_id, "current_run__refiner_artifact", ml.load_box_refiner, "box refiner")


def current_detector(*, project_id: int):
    """The project's promoted detector, or None (no run promoted yet, or its file is gone)."""
    return _in_use(project_id, "current_run__artifact", ml.load_detector, "current detector")


def _in_use(project_id: int, artifact_field: str, load, what: str):
    """``load`` of the checkpoint the project's learning settings name in ``artifact_field``;
    None when there is none, or when it cannot be loaded (proposals go on without it)."""
    artifact = ProjectLearning.objects.filter(project_id=project_id).values_list(artifact_field, flat=True).first()
    if not artifact:
        return None
    try:
        return load(local_checkpoint(artifact))
    except UNREADABLE_CHECKPOINT:
        logger.exception("project %s: the %s %s cannot be loaded; proposing without it", project_id, what, artifact)
        return None
