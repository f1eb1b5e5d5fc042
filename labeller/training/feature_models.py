"""Which feature model embeds a project's crops, and local copies of stored checkpoints.

A project embeds with the configured feature model until one of its embedding runs is in
use (``ProjectLearning.current_embedding_run``); then with that run's checkpoint. Kept apart
from the services so the index, proposing and retraining modules can all ask it without
importing each other.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage

from labeller.training.models import ProjectLearning


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
