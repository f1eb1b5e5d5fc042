"""Writes to media rows: the annotator's queue and frame storage."""

from __future__ import annotations

from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.utils import timezone

from labeller.core.errors import DomainError
from labeller.media.models import Frame, FrameStatus, Video
from labeller.media.selectors import ASSIGNMENT_LEASE, SKIP_PENALTY, frame_queue
from labeller.media.storage import project_storage_prefix, storage_delete_files, video_work_prefix
from labeller.projects.models import Project
from labeller.tenants.models import Membership, Organization
from labeller.training.proposing import frame_proposals_prepare_open


@transaction.atomic
def frame_assign_next(*, organization: Organization, project: Project, user) -> Frame | None:
    """Hand the best next frame to ``user`` and hold it for them (a lease, see ASSIGNMENT_LEASE).

    A user holds at most one frame of a project: their claims run one at a time, so a second
    call made in parallel (a double key press, two tabs) finds the first one's frame and
    resumes it instead of taking another.
    """
    # The skip_locked below keeps different people apart, but would hand two parallel calls of
    # the same person two different frames: lock their membership row first (one per user and
    # organisation) so their claims queue up behind each other, and the next one sees the frame
    # the previous one took (first in frame_queue).
    Membership.objects.select_for_update().filter(user=user, organization=organization).values_list("pk").first()
    queryset = frame_queue(organization=organization, project=project, user=user)
    if connection.features.has_select_for_update_skip_locked:
        # Two annotators asking at once get different frames instead of waiting on each other.
        queryset = queryset.select_for_update(skip_locked=True, of=("self",))
    frame = queryset.first()
    if frame is None:
        return None
    Frame.objects.filter(pk=frame.pk).update(
        assigned_to=user,
        assigned_at=timezone.now(),
        status=FrameStatus.IN_PROGRESS if frame.status == FrameStatus.NEW else frame.status,
    )
    frame.refresh_from_db()
    # Proposals built before the loop last learned are dropped before the person sees them,
    # and rebuilt at once on the interactive queue (the workspace waits for them).
    frame_proposals_prepare_open(frame=frame)
    return frame


def frame_store_images(*, frame: Frame, image: bytes, thumbnail_jpeg: bytes, name: str, suffix: str = ".jpg") -> None:
    """Write the frame's image (a JPEG, or a PNG kept as uploaded: ``suffix`` says which, from
    the probe) and its JPEG thumbnail to storage (the caller saves the row)."""
    frame.image.save(f"{name}{suffix}", ContentFile(image), save=False)
    frame.thumbnail.save(f"{name}.thumb.jpg", ContentFile(thumbnail_jpeg), save=False)


@transaction.atomic
def video_delete(*, video: Video) -> None:
    """Delete the video, its shots, frames and their boxes; files go once the rows are gone.

    The files: the video, its frames and thumbnails, its ingest work folder (every run's
    candidate frames, manifest and embeddings) and the candidates cached for its frames.
    """
    frames = list(Frame.objects.filter(video=video).values_list("pk", "image", "thumbnail"))
    names = [video.file.name] + [name for _, image, thumbnail in frames for name in (image, thumbnail) if name]
    where = {"organization_id": video.project.organization_id, "project_id": video.project_id}
    work_folder = video_work_prefix(**where, video_id=video.pk)
    candidates_folder = project_storage_prefix(**where) + "candidates/"  # as training.proposing names them
    storage = video.file.storage
    video.delete()
    transaction.on_commit(
        lambda: storage_delete_files(
            storage,
            names=names,
            trees=[work_folder],
            name_prefixes={candidates_folder: {f"{pk}-" for pk, _, _ in frames}},
        )
    )


def frame_release_expired_assignments() -> int:
    lease_start = timezone.now() - ASSIGNMENT_LEASE
    return Frame.objects.filter(assigned_at__lt=lease_start).exclude(status=FrameStatus.COMPLETE).update(
        assigned_to=None, assigned_at=None, status=FrameStatus.NEW
    )


@transaction.atomic
def frame_release(*, frame: Frame, user, skip: bool) -> Frame:
    """Give back a frame the user holds; with ``skip`` it also sinks below its peers in the
    queue, so the next frame asked for is another one."""
    frame = Frame.objects.select_for_update().get(pk=frame.pk)
    if frame.assigned_to_id != user.pk:
        raise DomainError("This frame is not assigned to you.", code="not_assigned", http_status=409)
    frame.assigned_to, frame.assigned_at = None, None
    if frame.status == FrameStatus.IN_PROGRESS:
        frame.status = FrameStatus.NEW
    if skip:
        frame.priority -= SKIP_PENALTY
    frame.save(update_fields=["assigned_to", "assigned_at", "status", "priority", "updated_at"])
    return frame
