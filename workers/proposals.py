"""The learning loop's tasks: keep the index in step and refresh proposals.

Thin wrappers over labeller.training.services; each takes ids, is idempotent, and
retries only transient conflicts.
"""

import logging
import time

from celery import shared_task

from labeller.training import proposing, services

logger = logging.getLogger(__name__)


def _sync_or_retry(task, project_id: int) -> services.SyncResult | None:
    """Sync the project's index; a concurrent sync retries the task, a gone project ends it (None)."""
    started = time.monotonic()
    try:
        result = services.index_sync(project_id=project_id)
    except services.IndexConflict as conflict:
        raise task.retry(exc=conflict, countdown=1)
    except services.Project.DoesNotExist:
        return None
    logger.info("index sync (project=%s): %s in %.2fs", project_id, result, time.monotonic() - started)
    return result


@shared_task(name="workers.proposals.sync_index", bind=True, acks_late=True, max_retries=5)
def sync_index(self, project_id: int) -> None:
    result = _sync_or_retry(self, project_id)
    if result is not None and (result.added or result.removed):
        for frame_id in proposing.frames_to_refresh_after_sync(project_id=project_id):
            refresh_frame_proposals.delay(frame_id)


@shared_task(name="workers.proposals.sync_index_then_refresh_shot", bind=True, acks_late=True, max_retries=5)
def sync_index_then_refresh_shot(self, project_id: int, frame_id: int) -> None:
    """After a frame is completed: learn from it, then re-propose the frames around it in its shot."""
    if _sync_or_retry(self, project_id) is None:
        return
    for neighbour_id in proposing.frames_after_in_shot(frame_id=frame_id):
        refresh_frame_proposals.delay(neighbour_id)


@shared_task(name="workers.proposals.refresh_frame_proposals", acks_late=True)
def refresh_frame_proposals(frame_id: int) -> None:
    started = time.monotonic()
    count = proposing.proposals_refresh(frame_id=frame_id)
    logger.info("refresh_frame_proposals(frame=%s): %d proposals in %.2fs", frame_id, count, time.monotonic() - started)


@shared_task(name="workers.proposals.propose_video", acks_late=True)
def propose_video(video_id: int) -> None:
    """After ingest: proposals for every frame of the video, keyframes first."""
    from labeller.media.models import Frame

    for frame_id in Frame.objects.filter(video_id=video_id).order_by("-is_keyframe", "index").values_list("pk", flat=True):
        refresh_frame_proposals.delay(frame_id)
