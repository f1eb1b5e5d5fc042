from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from labeller.core.models import BulkJob, JobState, TimestampedModel, VersionedModel
from labeller.media.models import Frame
from labeller.projects.models import Project

DOTTED_NAME = RegexValidator(
    r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$",
    "Use lowercase dotted names such as food.dish.dessert (letters, digits, _ and -).",
)
HEX_COLOUR = RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a colour like #ff8800.")


class Label(VersionedModel):
    """A node of the project's taxonomy; the hierarchy is the dotted name."""

    ORGANIZATION_PATH = "project__organization"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=200, validators=[DOTTED_NAME])
    color = models.CharField(max_length=7, default="#3b82f6", validators=[HEX_COLOUR])
    hotkey = models.CharField(max_length=1, blank=True, default="")
    deprecated = models.BooleanField(default=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="unique_label_name"),
            # One label per key in a project; many labels may have none.
            models.UniqueConstraint(
                fields=["project", "hotkey"], condition=~models.Q(hotkey=""), name="unique_label_hotkey"
            ),
        ]

    @property
    def parent_name(self) -> str | None:
        return self.name.rsplit(".", 1)[0] if "." in self.name else None

    @property
    def depth(self) -> int:
        return self.name.count(".")

    def __str__(self) -> str:
        return self.name


class AnnotationStatus(models.TextChoices):
    PROPOSED = "proposed", "Proposed"
    CONFIRMED = "confirmed", "Confirmed"
    REJECTED = "rejected", "Rejected"


class AnnotationSource(models.TextChoices):
    HUMAN = "human", "Human"
    MODEL = "model", "Model"
    PROPAGATION = "propagation", "Propagation"
    IMPORT = "import", "Import"


class Annotation(VersionedModel):
    """A box on a frame, in pixel coordinates (x1, y1) top-left to (x2, y2) bottom-right."""

    ORGANIZATION_PATH = "project__organization"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="annotations")
    frame = models.ForeignKey(Frame, on_delete=models.CASCADE, related_name="annotations")
    label = models.ForeignKey(Label, null=True, blank=True, on_delete=models.PROTECT, related_name="annotations")
    x1 = models.FloatField()
    y1 = models.FloatField()
    x2 = models.FloatField()
    y2 = models.FloatField()
    status = models.CharField(max_length=16, choices=AnnotationStatus.choices, default=AnnotationStatus.CONFIRMED)
    source = models.CharField(max_length=16, choices=AnnotationSource.choices, default=AnnotationSource.HUMAN)
    score = models.FloatField(null=True, blank=True)
    # The model's top label suggestions: [{"label_id": int, "score": float}, ...].
    suggestions = models.JSONField(default=list, blank=True)
    model_version = models.CharField(max_length=64, blank=True, default="")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["project", "status"], name="annotation_status_idx")]
        constraints = [
            models.CheckConstraint(condition=models.Q(x2__gt=models.F("x1")), name="annotation_positive_width"),
            models.CheckConstraint(condition=models.Q(y2__gt=models.F("y1")), name="annotation_positive_height"),
        ]


class AnnotationAction(models.TextChoices):
    CREATED = "created", "Created"
    UPDATED = "updated", "Updated"
    CONFIRMED = "confirmed", "Confirmed"
    REJECTED = "rejected", "Rejected"
    DELETED = "deleted", "Deleted"


class AnnotationEvent(TimestampedModel):
    """Append-only history of every annotation change: who, when, before, after.

    It keeps plain ids rather than foreign keys to the annotation so the history of a
    deleted box survives the box.
    """

    ORGANIZATION_PATH = "project__organization"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    annotation_id = models.BigIntegerField(db_index=True)
    frame_id = models.BigIntegerField(db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=16, choices=AnnotationAction.choices)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["id"]


class LabelAction(models.TextChoices):
    RENAMED = "renamed", "Renamed"  # a move under another parent is a rename of the dotted name
    MERGED = "merged", "Merged"
    IMPORTED = "imported", "Imported"


class LabelEvent(TimestampedModel):
    """Append-only history of taxonomy changes: who renamed, moved or merged which label.

    Plain ids, like AnnotationEvent, so the history of a label merged away survives it.
    The boxes a merge moved have their own AnnotationEvent rows.
    """

    ORGANIZATION_PATH = "project__organization"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    label_id = models.BigIntegerField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=16, choices=LabelAction.choices)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["id"]


class IdempotencyKey(TimestampedModel):
    """A write's ``Idempotency-Key`` and its first answer, which a retry gets again.

    Created in the transaction of the write it guards, so a key exists exactly when that
    write committed; the unique constraint makes a concurrent retry wait for the first and
    then find its answer instead of writing twice.
    """

    ORGANIZATION_PATH = "project__organization"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    frame = models.ForeignKey(Frame, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # sha256 of the method, path and body: the same key with another request is refused.
    fingerprint = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="unique_idempotency_key_per_user")]


class ImportKind(models.TextChoices):
    IMAGES = "images", "Images from a zip"
    DATASET = "dataset", "Labelled dataset"


ImportState = JobState


class ImportJob(BulkJob):
    """One zip of images or labelled dataset being imported by a bulk worker, and how far it got.

    The row is the job's record (an outbox): the request stores the archive and writes the row,
    a worker claims it (``queued`` -> ``running``, a new ``token``), beats ``heartbeat_at`` while it
    works and writes the frames, boxes and ``done`` in one transaction that only the token's
    holder can commit. Beat re-sends a queued job whose message was lost and requeues (once),
    then fails, a running one whose worker went silent (see ``labeller.annotations.import_jobs``).
    """

    ORGANIZATION_PATH = "project__organization"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_jobs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=16, choices=ImportKind.choices)
    format = models.CharField(max_length=8, blank=True, default="")  # a DatasetFormat for datasets
    archive_name = models.CharField(max_length=255)  # as the uploader named it; shown, never used as a path
    archive = models.CharField(max_length=500, blank=True, default="")  # storage name until finished
    archive_bytes = models.BigIntegerField(default=0)

    error_code = models.CharField(max_length=32, blank=True, default="")
    images_total = models.PositiveIntegerField(default=0)
    images_done = models.PositiveIntegerField(default=0)
    frames_created = models.PositiveIntegerField(default=0)
    frames_skipped = models.PositiveIntegerField(default=0)  # already in the project (same name and content)
    boxes_created = models.PositiveIntegerField(default=0)
    labels_created = models.PositiveIntegerField(default=0)
    # Records not imported and things adjusted on purpose: [{"record", "message"}, ...].
    errors = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True)

    token = models.UUIDField(null=True, blank=True)
    recoveries = models.PositiveSmallIntegerField(default=0)
    class Meta(BulkJob.Meta):
        indexes = [models.Index(fields=["state", "heartbeat_at"], name="import_state_heartbeat_idx")]
