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


@shared_task(name="workers.maintenance.enqueue_overdue_index_syncs", acks_late=True)
def enqueue_overdue_index_syncs() -> int:
    """Re-send the syncs whose pending mark has waited too long; the mark is the record."""
    from labeller.core.tasks import publish
    from labeller.training.services import index_syncs_overdue

    project_ids = index_syncs_overdue(waited=timedelta(seconds=INDEX_SYNC_OVERDUE_S))
    sent = sum(publish("workers.proposals.sync_index", project_id) for project_id in project_ids)
    if project_ids:
        logger.warning("re-sent %d of %d overdue index syncs: projects %s", sent, len(project_ids), project_ids)
    return sent


# A frame whose holder waits for fresh proposals longer than this lost its refresh message.
FRAME_REFRESH_OVERDUE_S = 20


@shared_task(name="workers.maintenance.enqueue_overdue_frame_refreshes", acks_late=True)
def enqueue_overdue_frame_refreshes() -> int:
    """Re-send the refreshes people are still waiting for; the frame's request mark is the record."""
    from labeller.core.tasks import publish
    from labeller.training.proposing import frame_refreshes_overdue

    frame_ids = frame_refreshes_overdue(waited=timedelta(seconds=FRAME_REFRESH_OVERDUE_S))
    sent = sum(publish("workers.proposals.refresh_frame_proposals", frame_id) for frame_id in frame_ids)
    if frame_ids:
        logger.warning("re-sent %d of %d overdue frame refreshes: frames %s", sent, len(frame_ids), frame_ids)
    return sent
