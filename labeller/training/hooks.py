"""What the learning loop does after people change things: ask for its tasks, after commit.

Kept apart from the services so the annotation and media services can call it without
importing the ML side. Tasks are named, never imported (``labeller.core.tasks``), and
repeated work is coalesced: however fast boxes arrive, a project has at most one index
sync waiting (see ``services.index_sync_request``).
"""

from labeller.core.tasks import enqueue
from labeller.training.clock import learning_clock_tick
from labeller.training.services import index_sync_request

SYNC_INDEX = "workers.proposals.sync_index"
SYNC_INDEX_THEN_REFRESH_NEXT = "workers.proposals.sync_index_then_refresh_next"
REFRESH_FRAME_PROPOSALS = "workers.proposals.refresh_frame_proposals"
PROPOSE_VIDEO = "workers.proposals.propose_video"
PROPOSE_STILLS = "workers.proposals.propose_stills"
REPROPOSE_STALE = "workers.proposals.repropose_stale"


def learning_after_annotation_change(*, project_id: int) -> None:
    """Call inside the transaction that changed the project's annotations."""
    learning_clock_tick(project_id=project_id)
    index_sync_soon(project_id=project_id)


def index_sync_soon(*, project_id: int) -> None:
    """Ask for a sync of the project's index: enqueues one only when none is pending."""
    if index_sync_request(project_id=project_id):
        enqueue(SYNC_INDEX, project_id)


def learning_after_frame_complete(*, project_id: int, frame_id: int) -> None:
    """Call inside the transaction that completed the frame.

    One message per completed frame (people complete frames at a human pace): it runs the
    pending sync unless another task took it first, then re-proposes the frame the queue
    hands out next, so the person usually finds it fresh.
    """
    learning_clock_tick(project_id=project_id)
    index_sync_request(project_id=project_id)
    enqueue(SYNC_INDEX_THEN_REFRESH_NEXT, project_id)


def learning_after_ingest(*, video_id: int) -> None:
    """Proposals for the whole video, on the bulk queue: nobody is waiting on one frame."""
    enqueue(PROPOSE_VIDEO, video_id)


def learning_after_stills(*, project_id: int) -> None:
    """Proposals (and their cached candidates) for newly added still images, on the bulk queue."""
    enqueue(PROPOSE_STILLS, project_id)


def refresh_frame_soon(*, frame_id: int) -> None:
    """Rebuild one frame's proposals on the interactive queue: a person is waiting for them."""
    enqueue(REFRESH_FRAME_PROPOSALS, frame_id)


def repropose_soon(*, project_id: int, built_before: int) -> None:
    """After a new model is promoted: rebuild, on the bulk queue, the proposals (and the
    queue's uncertainties) of the frames nobody holds that were built before the learning
    clock read ``built_before``, so people open frames the new model already proposed on.
    Bounded: each frame is rebuilt once, however much people change meanwhile."""
    enqueue(REPROPOSE_STALE, project_id, built_before)
