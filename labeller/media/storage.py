"""Deleting what a project or a video stored, once its rows are gone.

Everything a project stores lives under ``project_storage_prefix``: videos and their ingest
work folders (``videos/<video id>/run-<token>/``: candidate frames, scan manifest,
embeddings), frames and thumbnails (``frames/``, or inside a video's run folder), cached
candidates (``candidates/<frame id>-<feature>.npz``), the index (``index/``) and embedding
reports (``reports/``). Only the bytes of resumable uploads live apart, in UPLOAD_DIR.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from django.core.files.storage import Storage

logger = logging.getLogger(__name__)


def project_storage_prefix(*, organization_id: int, project_id: int) -> str:
    return f"orgs/{organization_id}/projects/{project_id}/"


def video_work_prefix(*, organization_id: int, project_id: int, video_id: int) -> str:
    """Where ingest keeps a video's runs (candidate frames, manifest, embeddings)."""
    return project_storage_prefix(organization_id=organization_id, project_id=project_id) + f"videos/{video_id}/"


def storage_delete_tree(storage: Storage, prefix: str) -> int:
    """Delete every file under ``prefix`` (a folder name ending in "/"), then the folders.

    On disk storage the emptied folders are removed too; on object storage a folder is only
    a name prefix and goes with its files. A file that cannot be deleted is logged and the
    walk goes on. Returns how many files were deleted.
    """
    try:
        folders, files = storage.listdir(prefix)
    except FileNotFoundError:
        return 0
    deleted = 0
    for folder in folders:
        deleted += storage_delete_tree(storage, f"{prefix}{folder}/")
    for name in files:
        deleted += _quietly(storage.delete, prefix + name)
    try:
        storage.delete(prefix.rstrip("/"))  # FileSystemStorage removes an empty directory
    except OSError:
        pass  # not empty: something was written meanwhile; the files above are gone
    return deleted


def storage_delete_files(
    storage: Storage,
    *,
    names: Iterable[str] = (),
    trees: Iterable[str] = (),
    name_prefixes: dict[str, set[str]] | None = None,
    local_paths: Iterable[Path] = (),
) -> None:
    """Delete stored files after a commit: ``names``, every file under each of ``trees``, the
    files of folder F whose names start with one of ``name_prefixes[F]``, and ``local_paths``.

    Runs from ``transaction.on_commit``: the rows are already gone, so a storage error is
    logged and the rest still deleted, never turned into a failed request.
    """
    for name in names:
        _quietly(storage.delete, name)
    for prefix in trees:
        _quietly(storage_delete_tree, storage, prefix)
    for folder, starts in (name_prefixes or {}).items():
        if not starts:
            continue
        try:
            _, files = storage.listdir(folder)
        except FileNotFoundError:
            continue
        for name in files:
            if name.startswith(tuple(starts)):
                _quietly(storage.delete, folder + name)
    for path in local_paths:
        _quietly(Path.unlink, path, missing_ok=True)


def _quietly(function, *args, **kwargs) -> int:
    """1 if ``function`` ran, 0 (logged) if it failed."""
    try:
        function(*args, **kwargs)
    except Exception:  # noqa: BLE001 - a leftover file must not fail a delete already committed
        logger.exception("could not delete stored media (%s)", args[-1] if args else kwargs)
        return 0
    return 1
