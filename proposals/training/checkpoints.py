"""Checkpoints as plain dicts, written to a temporary file and renamed into place.

A reader never sees a half-written file: :func:`save_checkpoint` writes next to the target
(same file system) and ``os.replace`` swaps it in atomically, so a crash mid-write leaves the
previous checkpoint intact. Checkpoints hold only tensors, numbers, strings, lists and dicts,
so they load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_FORMAT_VERSION = 1


def save_checkpoint(checkpoint: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``checkpoint`` to ``path`` atomically; returns the path. The folder must exist."""
    path = Path(path)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as temp_file:
            torch.save(dict(checkpoint), temp_file)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, *, kind: str | None = None) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` on the CPU.

    With ``kind``, refuse a checkpoint of another kind (e.g. an embedding where a detector
    is expected) with a ``ValueError`` naming both.
    """
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} is not a checkpoint dict")
    if kind is not None and checkpoint.get("kind") != kind:
        raise ValueError(f"{path} holds a {checkpoint.get('kind')!r} checkpoint, expected {kind!r}")
    return checkpoint
