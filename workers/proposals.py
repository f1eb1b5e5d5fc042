"""The learning loop's tasks: keep the index in step and refresh proposals.

Thin wrappers over labeller.training.services (the index) and .proposing (proposals);
each takes ids and is idempotent. A project has at most one index sync pending: the
task claims the pending mark before it reads, so changes that arrive during a sync ask
for exactly one more (see ``services.index_sync_request``).
"""

import logging
import time

from celery import shared_task

from labeller.training import hooks, proposing, services
from labeller.training.models import FrameProposals

logger = logging.getLogger(__name__)

# A whole-video (or image batch) run hands the bulk worker back this often (and resumes in a new task), so
# other bulk work interleaves and no single task outlives the broker's visibility timeout.
PROPOSE_SLICE_S = 300


def _run_pending_sync(project_id: int) -> services.SyncResult | None:
    """Claim the project's pending sync and run it. None: nothing was pending (a sync that
    ran meanwhile took it), the project is gone, or another process saved first."""
    if not services.index_sync_claim(project_id=project_id):
        return None
    started = time.monotonic()
    try:
        result = services.index_sync(project_id=project_id)
    except services.Project.DoesNotExist:
        return None
    except services.IndexConflict as conflict:
        # Our read may predate what the other process saved: ask again; the next run
        # starts from its version and embeds only what is still missing.
        logger.info("index sync (project=%s) lost a race (%s); another is queued", project_id, conflict)
        hooks.index_sync_soon(project_id=project_id)
        return None
    except Exception:
        # Keep the record: beat re-sends the sync after a pause rather than in a tight loop.
        services.index_sync_mark_pending(project_id=project_id)
        raise
    if result.remaining:
        # More to embed than one sync takes: continue in a new task, so the refreshes people
        # wait for run in between.
        hooks.index_sync_soon(project_id=project_id)
    logger.info("index sync (project=%s): %s in %.2fs", project_id, result, time.monotonic() - started)
    return result


@shared_task(name="workers.proposals.sync_index", acks_late=True)
def sync_index(project_id: int) -> None:
    """Bring the index up to date. Frames are re-proposed when they are opened (and the next
    one when a frame is completed), not here: a sync per few clicks would flood the queue."""
    _run_pending_sync(project_id)


@shared_task(name="workers.proposals.sync_index_then_refresh_next", acks_late=True)
def sync_index_then_refresh_next(project_id: int) -> None:
    """After a frame is completed: learn from it (unless a sync already did), then re-propose
    the frame the queue hands out next, which the person opens within seconds."""
    _run_pending_sync(project_id)
    for next_id in proposing.frames_to_refresh_after_completion(project_id=project_id):
        hooks.refresh_frame_soon(frame_id=next_id)


@shared_task(name="workers.proposals.refresh_frame_proposals", acks_late=True)
def refresh_frame_proposals(frame_id: int) -> None:
    started = time.monotonic()
    count = proposing.proposals_refresh(frame_id=frame_id)
    logger.info("refresh_frame_proposals(frame=%s): %d proposals in %.2fs", frame_id, count, time.monotonic() - started)


def _not_built(frames):
    return frames.exclude(pk__in=FrameProposals.objects.filter(built_at__isnull=False).values("frame_id"))


def _propose_unbuilt(frames, *, resume) -> int:
    """Build the proposals of ``frames`` not yet built, keyframes first, handing the bulk
    worker back after PROPOSE_SLICE_S (``resume()`` sends the rest as a new task)."""
    started = time.monotonic()
    built = 0
    for frame_id in _not_built(frames).order_by("-is_keyframe", "index", "id").values_list("pk", flat=True):
        if time.monotonic() - started > PROPOSE_SLICE_S:
            resume()
            break
        if not _not_built(frames.filter(pk=frame_id)).exists():
            continue  # someone opened it meanwhile and an interactive refresh built it
        proposing.proposals_refresh(frame_id=frame_id)
        built += 1
    return built


@shared_task(name="workers.proposals.propose_video", acks_late=True)
def propose_video(video_id: int) -> None:
    """After ingest, on the bulk queue: proposals for every frame of the video not yet
    proposed, computed here rather than one interactive task per frame."""
    from labeller.media.models import Frame

    started = time.monotonic()
    built = _propose_unbuilt(Frame.objects.filter(video_id=video_id), resume=lambda: hooks.learning_after_ingest(video_id=video_id))
    logger.info("propose_video(video=%s): %d frames in %.1fs", video_id, built, time.monotonic() - started)


@shared_task(name="workers.proposals.propose_stills", acks_late=True)
def propose_stills(project_id: int) -> None:
    """After still images are added, on the bulk queue: their proposals and cached candidates."""
    from labeller.media.models import Frame

    started = time.monotonic()
    stills = Frame.objects.filter(project_id=project_id, video__isnull=True)
    built = _propose_unbuilt(stills, resume=lambda: hooks.learning_after_stills(project_id=project_id))
    logger.info("propose_stills(project=%s): %d frames in %.1fs", project_id, built, time.monotonic() - started)


# Frames re-proposed per task after a promotion; the rest go to the next task, so one slice
# never holds the bulk worker for long.
REPROPOSE_BATCH = 50


@shared_task(name="workers.proposals.repropose_stale", acks_late=True)
def repropose_stale(project_id: int, built_before: int) -> None:
    """After a new model is promoted, on the bulk queue: rebuild the proposals of the frames
    nobody holds that were built before the promotion, in queue order, a slice at a time.
    Idempotent: a frame rebuilt since is skipped, so each is rebuilt once."""
    started = time.monotonic()
    built = 0
    frame_ids = proposing.frames_to_repropose(project_id=project_id, built_before=built_before, limit=REPROPOSE_BATCH)
    for frame_id in frame_ids:
        if time.monotonic() - started > PROPOSE_SLICE_S:
            break
        proposing.proposals_refresh(frame_id=frame_id)
        built += 1
    if len(frame_ids) == REPROPOSE_BATCH or built < len(frame_ids):
        hooks.repropose_soon(project_id=project_id, built_before=built_before)
    logger.info("repropose_stale(project=%s): %d frames in %.1fs", project_id, built, time.monotonic() - started)
