"""What the learning loop does after people change things: enqueue its tasks after commit.

Kept apart from the services so the annotation and media services can call it without
importing the ML side.
"""

from django.db import transaction


def learning_after_annotation_change(*, project_id: int) -> None:
    from workers import proposals as tasks

    transaction.on_commit(lambda: tasks.sync_index.delay(project_id))


def learning_after_frame_complete(*, project_id: int, frame_id: int) -> None:
    from workers import proposals as tasks

    transaction.on_commit(lambda: tasks.sync_index_then_refresh_shot.delay(project_id, frame_id))


def learning_after_ingest(*, video_id: int) -> None:
    from workers import proposals as tasks

    transaction.on_commit(lambda: tasks.propose_video.delay(video_id))
