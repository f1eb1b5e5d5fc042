"""Housekeeping that Celery beat runs on a schedule."""

import logging
import time

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
