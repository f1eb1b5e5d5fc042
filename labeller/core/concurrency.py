"""Optimistic concurrency for rows people edit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import models


@dataclass
class StaleVersionError(Exception):
    """The caller edited an old version; ``current`` is the row as it is now."""

    current: models.Model
    expected_version: int

    def __str__(self) -> str:
        return (
            f"{type(self.current).__name__} {self.current.pk} is at version "
            f"{self.current.version}, not {self.expected_version}: reload and retry."
        )


def save_if_version(instance: models.Model, *, expected_version: int, fields: dict[str, Any]) -> models.Model:
    """Apply ``fields`` and bump the version, only if the row is still at ``expected_version``.

    The check and the write are one UPDATE ... WHERE version = expected, so two editors
    racing on the same row cannot both win: the loser gets StaleVersionError.
    """
    model = type(instance)
    updated = model.objects.filter(pk=instance.pk, version=expected_version).update(
        version=models.F("version") + 1, **fields
    )
    if updated == 0:
        raise StaleVersionError(current=model.objects.get(pk=instance.pk), expected_version=expected_version)
    instance.refresh_from_db()
    return instance
