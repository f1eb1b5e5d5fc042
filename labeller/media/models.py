from django.conf import settings
from django.db import models

from labeller.core.models import TimestampedModel, VersionedModel
from labeller.projects.models import Project


class IngestStage(models.TextChoices):
    UPLOADED = "uploaded", "Uploaded"
    PROBING = "probing", "Probing"
    SCANNING = "scanning", "Finding shots"
    KEYFRAMES = "keyframes", "Choosing keyframes"
    FRAMES = "frames", "Writing frames"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


def video_upload_path(instance: "Video", filename: str) -> str:
    return f"orgs/{instance.project.organization_id}/projects/{instance.project_id}/videos/{filename}"


def frame_upload_path(instance: "Frame", filename: str) -> str:
    return f"orgs/{instance.project.organization_id}/projects/{instance.project_id}/frames/{filename}"


class Video(VersionedModel):
    ORGANIZATION_PATH = "project__organization"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="videos")
    file = models.FileField(upload_to=video_upload_path, max_length=500)
    original_name = models.CharField(max_length=255)
    size_bytes = models.BigIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    # Ingest progress: the stage, its percent, and a readable error when it failed.
    stage = models.CharField(max_length=16, choices=IngestStage.choices, default=IngestStage.UPLOADED)
    progress = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    # Each ingest run gets a new token; tasks of an older run see a different token and stop.
    ingest_token = models.UUIDField(null=True, blank=True)
    # Set while a stage runs and on its progress, cleared while the next stage waits in the
    # queue: a running stage whose heartbeat stops lost its worker (see ingest_runs_recover_stalled).
    ingest_heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When the stage now waiting in the queue was sent (cleared of meaning once it beats): beat
    # sends a stage again that no worker started for minutes (see ingest_stages_resend_waiting).
    ingest_enqueued_at = models.DateTimeField(null=True, blank=True)
    # Runs beat restarted after a silent worker, since the last upload or reingest.
    ingest_recoveries = models.PositiveSmallIntegerField(default=0)
    # Probe results.
    duration_s = models.FloatField(null=True, blank=True)
    fps = models.FloatField(null=True, blank=True)
    frame_count = models.PositiveIntegerField(null=True, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    rotation = models.SmallIntegerField(default=0)
    codec = models.CharField(max_length=32, blank=True, default="")
    # Derived from the probed container (labeller.media.video.stored_format), never from the
    # uploader's file name; the stored file's suffix matches it. Sent with every download.
    content_type = models.CharField(max_length=64, default="application/octet-stream")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.original_name


class Shot(TimestampedModel):
    ORGANIZATION_PATH = "video__project__organization"

    video = models.ForeignKey(Video, on_delete=models.CASCADE, related_name="shots")
    index = models.PositiveIntegerField()
    start_frame = models.PositiveIntegerField()
    end_frame = models.PositiveIntegerField(help_text="Exclusive.")

    class Meta:
        ordering = ["video_id", "index"]
        constraints = [models.UniqueConstraint(fields=["video", "index"], name="unique_shot_index")]


class FrameStatus(models.TextChoices):
    NEW = "new", "New"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETE = "complete", "Complete"


class Frame(VersionedModel):
    """An image to label: a frame of a video, or a still image (no video)."""

    ORGANIZATION_PATH = "project__organization"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="frames")
    video = models.ForeignKey(Video, null=True, blank=True, on_delete=models.CASCADE, related_name="frames")
    shot = models.ForeignKey(Shot, null=True, blank=True, on_delete=models.CASCADE, related_name="frames")
    index = models.PositiveIntegerField(default=0, help_text="Frame number in the video; 0 for a still image.")
    timestamp_s = models.FloatField(default=0.0)
    original_name = models.CharField(max_length=255, blank=True, default="")
    image = models.FileField(upload_to=frame_upload_path, max_length=500)
    thumbnail = models.FileField(upload_to=frame_upload_path, max_length=500, blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    is_keyframe = models.BooleanField(default=True)
    status = models.CharField(max_length=16, choices=FrameStatus.choices, default=FrameStatus.NEW)
    # Higher first in the queue (after keyframes, see media.selectors.QUEUE_ORDER): the learning
    # loop adds how unsure its models are about the frame, a skip takes some off.
    priority = models.FloatField(default=0.0)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    assigned_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    # SHA-256 of a still image's file as it was uploaded (blank for video frames and older
    # stills): with ``original_name`` it keys imports, so importing the same files twice adds nothing.
    content_sha256 = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["project", "status", "is_keyframe", "priority"], name="frame_queue_idx"),
            models.Index(fields=["project", "content_sha256"], name="frame_content_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["video", "index"], condition=models.Q(video__isnull=False), name="unique_video_frame"
            )
        ]


class UploadStatus(models.TextChoices):
    OPEN = "open", "Receiving"
    COMPLETE = "complete", "Complete"


class Upload(TimestampedModel):
    """A resumable upload: chunks are appended in order (Content-Range) until the file is whole.

    The bytes live in a local folder shared by the web servers (LABELLER_UPLOAD_DIR),
    since object storage cannot append; ``finish`` hands the whole file to ingestion.
    """

    ORGANIZATION_PATH = "project__organization"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="uploads")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    filename = models.CharField(max_length=255)
    total_bytes = models.BigIntegerField()
    received_bytes = models.BigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=UploadStatus.choices, default=UploadStatus.OPEN)
    video = models.ForeignKey(Video, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["id"]
