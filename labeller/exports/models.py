from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from labeller.core.models import BulkJob, JobState
from labeller.projects.models import Project


class ExportFormat(models.TextChoices):
    COCO = "coco", "COCO JSON"
    YOLO = "yolo", "YOLO txt"
    VOC = "voc", "Pascal VOC XML"


ExportState = JobState


class DatasetExport(BulkJob):
    """One export of a project's boxes, what it selected, and how far it got.

    The row is also the job's record: a worker claims it (``queued`` -> ``running``), moves
    ``heartbeat_at`` while it writes, and stores the finished file under ``file``. Beat
    re-sends a queued export whose message was lost and fails a running one whose worker
    went silent (see ``labeller.exports.services``).
    """

    ORGANIZATION_PATH = "project__organization"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="exports")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    format = models.CharField(max_length=8, choices=ExportFormat.choices, default=ExportFormat.COCO)
    # The selection: empty lists mean everything. A frame is in when it belongs to one of the
    # videos or one of the shots; a label brings its whole subtree (``food`` brings ``food.dish``).
    video_ids = models.JSONField(default=list, blank=True)
    shot_ids = models.JSONField(default=list, blank=True)
    label_ids = models.JSONField(default=list, blank=True)
    complete_frames_only = models.BooleanField(default=False)
    confirmed_only = models.BooleanField(default=True)
    include_images = models.BooleanField(default=False)
    # Share of frames in the validation split (the learning loop's split); null: no split.
    val_share = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    split_salt = models.CharField(max_length=64, blank=True, default="")

    file = models.CharField(max_length=500, blank=True, default="")  # storage name once done
    content_type = models.CharField(max_length=64, blank=True, default="")
    size_bytes = models.BigIntegerField(default=0)
    image_count = models.PositiveIntegerField(default=0)
    annotation_count = models.PositiveIntegerField(default=0)
    class Meta(BulkJob.Meta):
        indexes = [models.Index(fields=["state", "heartbeat_at"], name="export_state_heartbeat_idx")]
