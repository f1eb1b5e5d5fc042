"""Zip image uploads and dataset imports as bulk-worker jobs, with a status row and progress.

The request only checks the archive's central directory (cheap: an unsafe or unreadable zip
is a 400 at once), stores the upload under the project's storage prefix, writes the
``ImportJob`` row and enqueues ``workers.imports.run_import`` after commit; it answers 202
with the row. The row is the job's record: a broker that is down at commit leaves it queued
and beat sends it again (``imports_overdue``), as for exports.

``import_run`` claims a queued row under a row lock with a new token (a message delivered
twice runs once), reads the archive, and writes the frames, boxes and ``done`` in one
transaction that commits only while the token is still the row's: a job taken from its
worker (beat requeued or failed it) rolls back whatever it wrote. Files already in the
project (same name and content) are skipped, so a retried job, or the same dataset
imported twice, creates nothing twice. Bad data (a damaged zip, a malformed dataset, a
bad image in an image zip) fails the row with the reason and writes nothing. The row beats
about once a second all along, unpacking, decoding and hashing included. Any other error is
handled by the run with its own token, never the row's current one (which may be a newer
run's, after beat requeued the row): queued again for the task to retry, or failed on the
last try.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from labeller.annotations.imports import DatasetFormat, ImportReport, dataset_archive_check, dataset_import_archive
from labeller.annotations.models import ImportJob, ImportKind, ImportState
from labeller.core.errors import DomainError
from labeller.core.tasks import enqueue
from labeller.media.images import StillsResult, frames_create_from_zip, zip_images_check
from labeller.media.storage import project_storage_prefix, storage_delete_files
from labeller.media.video import MediaError
from labeller.projects.models import Project

logger = logging.getLogger(__name__)

RUN_IMPORT_TASK = "workers.imports.run_import"
# A running import beats at most this often (a row update per image would cost more than it tells).
HEARTBEAT_EVERY_S = 1.0
# Share of the progress bar for reading and storing the images; the write takes the rest.
STORING_SHARE = 95
# What an admin reads when an import failed on an unexpected error (the error itself, which
# may name paths, hosts or SQL, goes to the log).
UNEXPECTED_FAILURE = "The import failed on an unexpected error. Try again; if it fails again, tell your administrator."


class ImportAbandoned(Exception):
    """The row is no longer this run's: beat requeued or failed it, or it was deleted."""


class ImportRetry(Exception):
    """An unexpected error stopped the run and the row is queued again: the task retries.
    The error is the ``__cause__``."""


def import_start(
    *,
    project: Project,
    actor,
    kind: ImportKind,
    upload: File,
    archive_name: str,
    dataset_format: DatasetFormat | None = None,
) -> ImportJob:
    """Check the zip cheaply, store it, record the job and send it to a bulk worker once committed.

    ``upload`` is the uploaded file (Django streamed a large one to a temporary file, which
    disk storage moves into place rather than copying). Raises DomainError (400) for an
    unsafe or unreadable zip, or one holding no images.
    """
    upload.seek(0)
    if kind == ImportKind.IMAGES:
        zip_images_check(archive=upload, archive_name=archive_name)
    else:
        dataset_archive_check(archive=upload, archive_name=archive_name)
    prefix = project_storage_prefix(organization_id=project.organization_id, project_id=project.pk)
    stored = default_storage.save(f"{prefix}imports/{uuid.uuid4().hex}.zip", upload)
    try:
        with transaction.atomic():
            job = ImportJob.objects.create(
                project=project,
                created_by=actor,
                kind=kind,
                format=dataset_format or "",
                archive_name=archive_name[:255],
                archive=stored,
                archive_bytes=default_storage.size(stored),
                enqueued_at=timezone.now(),
            )
            enqueue(RUN_IMPORT_TASK, job.pk)
    except BaseException:
        default_storage.delete(stored)  # no row, so no file either
        raise
    return job


def import_run(*, import_id: int, retry_on_error: bool = False) -> None:
    """Run a queued import to its end; anything not queued is left alone (idempotent).

    Bad data ends the row as failed with its reason. Any other error is handled with this
    run's token, so a run whose row was given to another is never the one to change it: with
    ``retry_on_error`` the row goes back to the queue and ImportRetry is raised for the task
    to retry; without (the last try) the row fails with a plain message, and the error is
    logged and raised again.
    """
    claimed = _claim(import_id)
    if claimed is None:
        return
    job, token = claimed
    started = time.monotonic()
    beat = _Heartbeat(job.pk, token)
    try:
        with _local_archive(job.archive, beat.alive) as path:
            if job.kind == ImportKind.IMAGES:
                result = frames_create_from_zip(
                    project=job.project,
                    actor=job.created_by,
                    archive=path,
                    archive_name=job.archive_name,
                    progress=beat,
                    beat=beat.alive,
                    before_commit=lambda stills: _finish_done(job.pk, token, _images_counts(stills)),
                )
                summary = f"{len(result.created)} images, {result.skipped} already there"
            else:
                report = dataset_import_archive(
                    project=job.project,
                    actor=job.created_by,
                    archive=path,
                    archive_name=job.archive_name,
                    dataset_format=DatasetFormat(job.format),
                    progress=beat,
                    beat=beat.alive,
                    before_commit=lambda report: _finish_done(job.pk, token, _dataset_counts(report)),
                )
                summary = f"{report.images} images, {report.boxes} boxes, {report.skipped} images already there"
    except ImportAbandoned:
        logger.warning("import %s was taken from this run (requeued, failed or deleted); stopped", job.pk)
        return
    except (DomainError, MediaError) as error:
        import_fail(import_id=job.pk, token=token, message=str(error), code=str(getattr(error, "code", "")))
        logger.warning("import %s failed: %s", job.pk, error)
        return
    except Exception as error:
        if not retry_on_error:
            logger.exception("import %s failed on its last try", job.pk)
            import_fail(import_id=job.pk, token=token, message=UNEXPECTED_FAILURE, code="unexpected_error")
            raise
        if import_requeue(import_id=job.pk, token=token):
            logger.warning("import %s stopped on %r; queued again to retry", job.pk, error)
            raise ImportRetry(job.pk) from error
        logger.warning("import %s stopped on %r after it was taken from this run; left alone", job.pk, error)
        return
    _archive_delete_after_commit(job.archive)
    logger.info("import %s (%s): %s in %.1fs", job.pk, job.kind, summary, time.monotonic() - started)


def _claim(import_id: int) -> tuple[ImportJob, str] | None:
    with transaction.atomic():
        job = (
            ImportJob.objects.select_for_update(of=("self",))
            .select_related("project", "created_by")
            .filter(pk=import_id)
            .first()
        )
        if job is None or job.state != ImportState.QUEUED:
            return None  # gone, finished, or another worker's
        now = timezone.now()
        job.state, job.token, job.started_at, job.heartbeat_at = ImportState.RUNNING, uuid.uuid4(), now, now
        job.progress, job.images_done = 0, 0
        job.save(update_fields=["state", "token", "started_at", "heartbeat_at", "progress", "images_done", "updated_at"])
    return job, str(job.token)


class _Heartbeat:
    """``progress(done, total)`` for the import: moves the row's progress and heartbeat, at
    most once a second; raises ImportAbandoned when the row is no longer this run's.
    ``alive()`` moves the heartbeat alone, for steps with nothing to count."""

    def __init__(self, import_id: int, token: str):
        self.import_id, self.token, self.last = import_id, token, 0.0

    def alive(self) -> None:
        now = time.monotonic()
        if now - self.last < HEARTBEAT_EVERY_S:
            return
        self.last = now
        if not _running(self.import_id, self.token).update(heartbeat_at=timezone.now()):
            raise ImportAbandoned(self.import_id)

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < HEARTBEAT_EVERY_S and done < total:
            return
        self.last = now
        alive = _running(self.import_id, self.token).update(
            images_total=total,
            images_done=done,
            progress=STORING_SHARE * done // max(total, 1),
            heartbeat_at=timezone.now(),
        )
        if not alive:
            raise ImportAbandoned(self.import_id)


def _running(import_id: int, token: str):
    return ImportJob.objects.filter(pk=import_id, state=ImportState.RUNNING, token=token)


def _images_counts(result: StillsResult) -> dict:
    return {"frames_created": len(result.created), "frames_skipped": result.skipped}


def _dataset_counts(report: ImportReport) -> dict:
    return {
        "frames_created": report.images,
        "frames_skipped": report.skipped,
        "boxes_created": report.boxes,
        "labels_created": report.labels_created,
        "errors": [asdict(error) for error in report.errors],
        "warnings": [asdict(warning) for warning in report.warnings],
    }


def _finish_done(import_id: int, token: str, counts: dict) -> None:
    """Mark the row done inside the transaction that writes the import; contract: the caller
    is in that transaction. Raises ImportAbandoned (rolling it all back) when the row is not
    this run's any more, so a run beat gave to another worker never commits twice."""
    if _running(import_id, token).select_for_update().first() is None:
        raise ImportAbandoned(import_id)
    now = timezone.now()
    _running(import_id, token).update(
        state=ImportState.DONE, progress=100, heartbeat_at=now, finished_at=now, **counts
    )


def import_fail(*, import_id: int, token: str, message: str, code: str = "") -> bool:
    """Fail this run's row with a readable reason and delete its stored archive; False when
    the row is not this run's any more."""
    archive = ImportJob.objects.filter(pk=import_id).values_list("archive", flat=True).first()
    failed = _running(import_id, token).update(
        state=ImportState.FAILED, error=message[:2000], error_code=code[:32], finished_at=timezone.now()
    )
    if failed and archive:
        _archive_delete_after_commit(archive)
    return bool(failed)


def import_requeue(*, import_id: int, token: str) -> bool:
    """Give this run's row back to the queue (a transient error; the task retries)."""
    return bool(
        _running(import_id, token).update(state=ImportState.QUEUED, token=None, enqueued_at=timezone.now())
    )


@contextmanager
def _local_archive(name: str, beat: Callable[[], None]) -> Iterator[Path]:
    """A local path to the stored archive: the file itself on disk storage, a temporary copy
    from object storage (``beat()`` after each MiB copied)."""
    try:
        local = Path(default_storage.path(name))
    except NotImplementedError:
        local = None  # object storage
    if local is not None:
        yield local
        return
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".zip") as copy, default_storage.open(name, "rb") as source:
        for chunk in iter(lambda: source.read(1024 * 1024), b""):
            copy.write(chunk)
            beat()
        copy.flush()
        yield Path(copy.name)


def _archive_delete_after_commit(name: str) -> None:
    # Quietly: a leftover archive is logged, never turned into a failed import.
    transaction.on_commit(lambda: storage_delete_files(default_storage, names=[name]))


def imports_recover_stalled(*, silent_for: timedelta) -> tuple[list[int], list[int]]:
    """Running imports whose heartbeat stopped ``silent_for`` ago: ``(requeued, failed)`` ids.

    The first time, the row goes back to the queue (its worker was killed; a run is safe to
    repeat); the caller sends it again. The second time it fails with a reason, so a file that
    kills its worker cannot loop for ever, and its stored archive is deleted (after the
    commit, as ``import_fail`` does).
    """
    cutoff = timezone.now() - silent_for
    stalled = ImportJob.objects.filter(state=ImportState.RUNNING, heartbeat_at__lt=cutoff)
    requeued, failed = [], []
    minutes = max(1, round(silent_for.total_seconds() / 60))
    for job_id, recoveries, archive in stalled.values_list("pk", "recoveries", "archive"):
        still_stalled = ImportJob.objects.filter(pk=job_id, state=ImportState.RUNNING, heartbeat_at__lt=cutoff)
        if recoveries < 1:
            if still_stalled.update(
                state=ImportState.QUEUED, token=None, recoveries=recoveries + 1, enqueued_at=timezone.now()
            ):
                requeued.append(job_id)
        elif still_stalled.update(
            state=ImportState.FAILED,
            error=f"The import stopped twice: its worker went silent for over {minutes} minute"
            f"{'s' if minutes > 1 else ''} (stopped, restarted or out of memory). Try again, or split the zip.",
            error_code="worker_lost",
            finished_at=timezone.now(),
        ):
            failed.append(job_id)
            if archive:
                _archive_delete_after_commit(archive)
    return requeued, failed


def imports_overdue(*, waited: timedelta) -> list[int]:
    """Queued imports sent ``waited`` ago and not started; marked as sent now, for beat to
    send again (a duplicate finds the row claimed and does nothing)."""
    cutoff = timezone.now() - waited
    ids = list(ImportJob.objects.filter(state=ImportState.QUEUED, enqueued_at__lt=cutoff).values_list("pk", flat=True))
    ImportJob.objects.filter(pk__in=ids, state=ImportState.QUEUED).update(enqueued_at=timezone.now())
    return ids
