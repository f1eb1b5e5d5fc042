"""Exports: start one, run it in a worker, and keep none stuck.

The export row is the job's record. ``export_start`` writes it and enqueues the task after
commit; ``export_run`` claims a queued row under a row lock (so a message delivered twice
runs once), writes the file with a heartbeat, stores it and marks the row done. Beat calls
``exports_fail_stalled`` (a worker killed mid-export leaves a row whose heartbeat stops) and
``exports_overdue`` (a message lost because the broker was down at commit).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from labeller.annotations.models import Label
from labeller.core.errors import field_error
from labeller.core.tasks import enqueue
from labeller.exports.models import DatasetExport, ExportFormat, ExportState
from labeller.exports.writing import WrittenExport, export_file_write, export_split_salt
from labeller.media.files import safe_download_name
from labeller.media.models import Shot, Video
from labeller.media.storage import project_storage_prefix, storage_delete_files
from labeller.projects.models import Project

logger = logging.getLogger(__name__)

RUN_EXPORT_TASK = "workers.exports.run_export"


class ExportAbandoned(Exception):
    """The row is no longer this worker's to finish: beat failed it, or it was deleted."""


@dataclass(frozen=True)
class ExportRequest:
    """What an admin asks for. Empty id lists mean everything; ``val_share`` None: no split."""

    format: ExportFormat = ExportFormat.COCO
    video_ids: Sequence[int] = field(default_factory=tuple)
    shot_ids: Sequence[int] = field(default_factory=tuple)
    label_ids: Sequence[int] = field(default_factory=tuple)
    complete_frames_only: bool = False
    confirmed_only: bool = True
    include_images: bool = False
    val_share: float | None = None


def export_start(*, project: Project, actor, request: ExportRequest) -> DatasetExport:
    """Record an export of ``project`` and send it to a bulk worker once committed.

    Raises DomainError (400, naming the field) for ids that are not the project's.
    """
    _require_project_ids(Video.objects.filter(project=project), request.video_ids, "video_ids", "videos")
    _require_project_ids(Shot.objects.filter(video__project=project), request.shot_ids, "shot_ids", "shots")
    _require_project_ids(Label.objects.filter(project=project), request.label_ids, "label_ids", "labels")
    with transaction.atomic():
        export = DatasetExport.objects.create(
            project=project,
            created_by=actor,
            format=request.format,
            video_ids=sorted(set(request.video_ids)),
            shot_ids=sorted(set(request.shot_ids)),
            label_ids=sorted(set(request.label_ids)),
            complete_frames_only=request.complete_frames_only,
            confirmed_only=request.confirmed_only,
            include_images=request.include_images,
            val_share=request.val_share,
            split_salt=export_split_salt(project.pk) if request.val_share is not None else "",
            enqueued_at=timezone.now(),
        )
        enqueue(RUN_EXPORT_TASK, export.pk)
    return export


def _require_project_ids(queryset, ids: Sequence[int], field_name: str, what: str) -> None:
    wanted = set(ids)
    if not wanted:
        return
    missing = wanted - set(queryset.filter(pk__in=wanted).values_list("pk", flat=True))
    if missing:
        raise field_error(field_name, f"not {what} of this project: {sorted(missing)}")


def export_run(*, export_id: int) -> None:
    """Write, store and finish a queued export; anything else is left alone (idempotent).

    Every error ends the export as failed with its message: the admin sees why and starts
    another with one click, where retrying a long export on the same fault would only keep
    the page waiting.
    """
    export = _claim(export_id)
    if export is None:
        return
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="labeller-export-") as workdir:
            written = export_file_write(
                export=export, workdir=Path(workdir), report_progress=lambda percent: _heartbeat(export.pk, percent)
            )
            name = _store(export, written)
    except ExportAbandoned:
        logger.warning("export %s was taken from this worker (failed by beat or deleted); stopped", export.pk)
        return
    except Exception as error:  # noqa: BLE001 - whatever broke, the row must say so, not stay running
        logger.exception("export %s failed", export.pk)
        _finish_failed(export.pk, f"The export failed: {error}")
        return
    done = DatasetExport.objects.filter(pk=export.pk, state=ExportState.RUNNING).update(
        state=ExportState.DONE,
        progress=100,
        file=name,
        content_type=written.content_type,
        size_bytes=default_storage.size(name),
        image_count=written.image_count,
        annotation_count=written.annotation_count,
        heartbeat_at=timezone.now(),
        finished_at=timezone.now(),
    )
    if not done:
        default_storage.delete(name)  # beat failed it meanwhile, or it was deleted: keep no orphan
        return
    logger.info(
        "export %s (%s): %d images, %d boxes in %.1fs",
        export.pk, export.format, written.image_count, written.annotation_count, time.monotonic() - started,
    )


def _claim(export_id: int) -> DatasetExport | None:
    with transaction.atomic():
        export = DatasetExport.objects.select_for_update().select_related("project").filter(pk=export_id).first()
        if export is None or export.state != ExportState.QUEUED:
            return None  # gone, done, failed, or another worker's
        now = timezone.now()
        export.state, export.started_at, export.heartbeat_at, export.progress = ExportState.RUNNING, now, now, 0
        export.save(update_fields=["state", "started_at", "heartbeat_at", "progress", "updated_at"])
    return export


def _heartbeat(export_id: int, percent: int) -> None:
    alive = DatasetExport.objects.filter(pk=export_id, state=ExportState.RUNNING).update(
        progress=percent, heartbeat_at=timezone.now()
    )
    if not alive:
        raise ExportAbandoned(export_id)


class _LocalFile(File):
    # FileSystemStorage moves a file that has a temporary path instead of copying it.
    def temporary_file_path(self) -> str:
        return self.file.name


def _export_folder(export: DatasetExport) -> str:
    """The storage folder that holds the export's file (and nothing else)."""
    prefix = project_storage_prefix(organization_id=export.project.organization_id, project_id=export.project_id)
    return f"{prefix}exports/{export.pk}/"


def _store(export: DatasetExport, written: WrittenExport) -> str:
    with written.path.open("rb") as handle:
        name = f"{_export_folder(export)}export-{export.pk}{written.suffix}"
        return default_storage.save(name, _LocalFile(handle))


def export_delete(*, export: DatasetExport) -> None:
    """Delete the export and, once the row is gone, its file. A worker still writing it
    notices at its next heartbeat (the row is gone) and stops, keeping no file."""
    folder = _export_folder(export)
    export.delete()
    transaction.on_commit(lambda: storage_delete_files(default_storage, trees=[folder]))


def _finish_failed(export_id: int, message: str) -> None:
    DatasetExport.objects.filter(pk=export_id, state=ExportState.RUNNING).update(
        state=ExportState.FAILED, error=message[:2000], finished_at=timezone.now()
    )


def exports_fail_stalled(*, silent_for: timedelta) -> list[int]:
    """Fail the running exports whose heartbeat stopped ``silent_for`` ago; their ids.

    A running export beats about once a second, so minutes of silence mean its worker was
    killed or lost: without this the row would say "running" for ever.
    """
    cutoff = timezone.now() - silent_for
    stalled = DatasetExport.objects.filter(state=ExportState.RUNNING, heartbeat_at__lt=cutoff)
    ids = list(stalled.values_list("pk", flat=True))
    minutes = max(1, round(silent_for.total_seconds() / 60))
    DatasetExport.objects.filter(pk__in=ids, state=ExportState.RUNNING, heartbeat_at__lt=cutoff).update(
        state=ExportState.FAILED,
        error=f"The export stopped: its worker went silent for over {minutes} minute{'s' if minutes > 1 else ''} "
        "(stopped or restarted). Start the export again.",
        finished_at=timezone.now(),
    )
    return ids


def exports_overdue(*, waited: timedelta) -> list[int]:
    """Queued exports sent ``waited`` ago and not started; marked as sent now, for beat to re-send.

    A re-sent message that finds its export already claimed does nothing, so sending twice
    is harmless; sending never would leave the export queued for ever.
    """
    cutoff = timezone.now() - waited
    ids = list(
        DatasetExport.objects.filter(state=ExportState.QUEUED, enqueued_at__lt=cutoff).values_list("pk", flat=True)
    )
    DatasetExport.objects.filter(pk__in=ids, state=ExportState.QUEUED).update(enqueued_at=timezone.now())
    return ids


def export_download_name(export: DatasetExport) -> str:
    """``<project>-<format>-<id>.json`` or ``.zip``, in ASCII letters, digits and ``._-``."""
    suffix = Path(export.file).suffix
    stem = f"{export.project.name}-{export.format}-{export.pk}".replace("/", "_").replace("\\", "_")
    return safe_download_name(stem + suffix, suffix=suffix)
