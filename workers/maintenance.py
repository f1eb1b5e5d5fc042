"""Housekeeping that Celery beat runs on a schedule."""

import logging
import time
from datetime import timedelta

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="workers.maintenance.release_expired_assignments", acks_late=True)
def release_expired_assignments() -> int:
    """Free frames whose annotator lease ran out, so the queue hands them to someone else."""
    from labeller.media.services import frame_release_expired_assignments

    started = time.monotonic()
    released = frame_release_expired_assignments()
    logger.info("released %d expired frame assignments in %.2fs", released, time.monotonic() - started)
    return released


@shared_task(name="workers.maintenance.delete_abandoned_uploads", acks_late=True)
def delete_abandoned_uploads() -> int:
    """Resumable uploads nobody finished: free their disk space."""
    from labeller.media.uploads import uploads_delete_abandoned

    deleted = uploads_delete_abandoned()
    logger.info("deleted %d abandoned uploads", deleted)
    return deleted


# A pending index sync older than this lost its message (broker down at commit, a worker
# killed before acking on a broker that forgets) or failed: send it again.
INDEX_SYNC_OVERDUE_S = 60


def _resend(task_name: str, ids: list[int], what: str) -> int:
    """Publish ``task_name(id)`` for each id whose record says the work is still wanted."""
    from labeller.core.tasks import publish

    sent = sum(publish(task_name, record_id) for record_id in ids)
    if ids:
        logger.warning("re-sent %d of %d overdue %s: %s", sent, len(ids), what, ids)
    return sent


@shared_task(name="workers.maintenance.enqueue_overdue_index_syncs", acks_late=True)
def enqueue_overdue_index_syncs() -> int:
    """Re-send the syncs whose pending mark has waited too long; the mark is the record."""
    from labeller.training.services import index_syncs_overdue

    project_ids = index_syncs_overdue(waited=timedelta(seconds=INDEX_SYNC_OVERDUE_S))
    return _resend("workers.proposals.sync_index", project_ids, "index syncs (projects)")


# A frame whose holder waits for fresh proposals longer than this lost its refresh message.
FRAME_REFRESH_OVERDUE_S = 20


@shared_task(name="workers.maintenance.enqueue_overdue_frame_refreshes", acks_late=True)
def enqueue_overdue_frame_refreshes() -> int:
    """Re-send the refreshes people are still waiting for; the frame's request mark is the record."""
    from labeller.training.proposing import frame_refreshes_overdue

    frame_ids = frame_refreshes_overdue(waited=timedelta(seconds=FRAME_REFRESH_OVERDUE_S))
    return _resend("workers.proposals.refresh_frame_proposals", frame_ids, "frame refreshes (frames)")


# A running export beats about once a second; this long without one means its worker died.
EXPORT_SILENT_S = 300
# A queued export not started after this may have lost its message: send it again (a
# duplicate finds it claimed and does nothing). The bulk queue can be busy for a while.
EXPORT_QUEUED_OVERDUE_S = 600


@shared_task(name="workers.maintenance.check_exports", acks_late=True)
def check_exports() -> int:
    """Fail exports whose worker went silent, with a reason the admin reads; re-send lost ones."""
    from labeller.exports.services import exports_fail_stalled, exports_overdue

    failed = exports_fail_stalled(silent_for=timedelta(seconds=EXPORT_SILENT_S))
    if failed:
        logger.warning("failed %d exports whose worker went silent: %s", len(failed), failed)
    overdue = exports_overdue(waited=timedelta(seconds=EXPORT_QUEUED_OVERDUE_S))
    return _resend("workers.exports.run_export", overdue, "exports")


# A running ingest stage beats at least every few seconds (see labeller.media.ingest); this
# long without one means its worker died. Well above the slowest step between beats (embedding
# a long video's candidates on a CPU: about 100 s), well below Redis's hour of visibility.
INGEST_SILENT_S = 300
# A stage waiting this long in the queue with no worker starting it may have lost its message
# (the broker was down, or a worker was killed as it took it): it is sent again. A copy of a
# message that was only slow does nothing, so this may be short of the longest queue's wait.
INGEST_QUEUED_OVERDUE_S = 600


@shared_task(name="workers.maintenance.check_ingest_runs", acks_late=True)
def check_ingest_runs(now: str | None = None) -> dict:
    """Restart ingest runs whose worker went silent, once; then fail them with a reason. Send
    again the stages no worker started.

    ``now`` (ISO 8601) is for tests and replays; beat leaves it out.
    """
    from django.utils.dateparse import parse_datetime

    from labeller.media.ingest import ingest_runs_recover_stalled, ingest_stages_resend_waiting

    when = parse_datetime(now) if now else None
    recovered = ingest_runs_recover_stalled(silent_for=timedelta(seconds=INGEST_SILENT_S), now=when)
    if recovered.restarted or recovered.failed:
        logger.warning("ingest runs with a silent worker: restarted %s, failed %s", recovered.restarted, recovered.failed)
    resent = ingest_stages_resend_waiting(waiting_for=timedelta(seconds=INGEST_QUEUED_OVERDUE_S), now=when)
    if resent:
        logger.warning("ingest stages that no worker started: sent again for videos %s", resent)
    return {"restarted": recovered.restarted, "failed": recovered.failed, "resent": resent}


# A running import beats about once a second while it unpacks, decodes, hashes and stores
# images; the final write of a large dataset (thousands of boxes) is one transaction with no
# beat, so leave it minutes.
IMPORT_SILENT_S = 300
# A queued import not started after this may have lost its message (broker down at commit).
IMPORT_QUEUED_OVERDUE_S = 600


@shared_task(name="workers.maintenance.check_imports", acks_late=True)
def check_imports() -> dict:
    """Requeue (once) or fail imports whose worker went silent; re-send lost ones."""
    from labeller.annotations.import_jobs import imports_overdue, imports_recover_stalled

    requeued, failed = imports_recover_stalled(silent_for=timedelta(seconds=IMPORT_SILENT_S))
    if requeued or failed:
        logger.warning("imports with a silent worker: requeued %s, failed %s", requeued, failed)
    overdue = imports_overdue(waited=timedelta(seconds=IMPORT_QUEUED_OVERDUE_S))
    sent = _resend("workers.imports.run_import", requeued + overdue, "imports")
    return {"requeued": requeued, "failed": failed, "sent": sent}
