from django.db import models

from labeller.core.models import TimestampedModel
from labeller.projects.models import Project


class ProjectIndex(TimestampedModel):
    """The project's embedding index of confirmed crops and hard negatives, for one feature model.

    The bytes live in Django storage so every worker and web process can load them: a base
    snapshot (``file``, the index at ``base_version``) and small delta segments after it
    (``segments``: ``{"from", "to", "file", "rows"}`` in order, the last one ending at
    ``version``), so a sync writes what changed, not the whole index, and a process with a
    cached copy applies only the segments after its version. ``version`` rises with every
    saved change (optimistic check). A new feature model (``feature_key``) starts a new
    index: a rebuild.

    ``sync_requested_at`` is set when annotations changed and no sync has taken the change
    yet: at most one sync is queued per project, and beat re-sends it when it waits too long.
    ``event_watermark`` is the last annotation event the index has surely seen, so a sync
    reads only newer events; ``reconciled_at`` is when it last compared every annotation.
    """

    ORGANIZATION_PATH = "project__organization"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="indexes")
    feature_key = models.CharField(max_length=255)
    weights_description = models.CharField(max_length=255, blank=True, default="")
    is_random = models.BooleanField(default=False)
    file = models.CharField(max_length=500, blank=True, default="")
    version = models.PositiveIntegerField(default=0)
    size = models.PositiveIntegerField(default=0)
    label_counts = models.JSONField(default=dict, blank=True)
    base_version = models.PositiveIntegerField(default=0)
    segments = models.JSONField(default=list, blank=True)
    sync_requested_at = models.DateTimeField(null=True, blank=True, db_index=True)
    event_watermark = models.BigIntegerField(default=0)
    reconciled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "feature_key"], name="unique_project_index")]


class EmbeddingReport(TimestampedModel):
    """Which backbone x layer x pooling kernel ranks the project's confirmed crops best.

    ``rows`` holds one entry per configuration (recall@1, recall@5, mAP, whether the
    weights were random); ``grid`` is a PNG of the most plausible false positives.
    """

    ORGANIZATION_PATH = "project__organization"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="embedding_reports")
    crop_count = models.PositiveIntegerField()
    label_count = models.PositiveIntegerField()
    rows = models.JSONField(default=list)
    grid = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["-id"]


class LearningClock(models.Model):
    """Counts the project's changes that the learning loop learns from (confirms, rejects,
    edits, completed frames). Proposals built after the clock read ``n`` are fresh until it
    moves past ``n``."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="learning_clock")
    changes = models.BigIntegerField(default=0)


class FrameProposals(models.Model):
    """When the frame's proposals were built, and from which state of the learning loop."""

    frame = models.OneToOneField("media.Frame", on_delete=models.CASCADE, primary_key=True, related_name="proposal_state")
    # LearningClock.changes when the proposals were built; -1 before the first build.
    built_at_change = models.BigIntegerField(default=-1)
    built_at = models.DateTimeField(null=True, blank=True)
    # A refresh asked for and not yet done: the frame's holder waits for it.
    refresh_requested_at = models.DateTimeField(null=True, blank=True)


class ProposalOutcome(models.Model):
    """Every proposal the loop made for a frame, shown or not, and what became of it.

    Resolved when the frame is completed: a shown proposal was useful if the person kept it
    (maybe after fixing its label or box); a hidden one would have been useful if it matches
    a box the person confirmed. These decisions calibrate which proposals are worth showing.
    """

    ORGANIZATION_PATH = "project__organization"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    frame = models.ForeignKey("media.Frame", on_delete=models.CASCADE, related_name="+")
    # The proposal's annotation while it is shown (no foreign key: people delete proposals).
    annotation_id = models.BigIntegerField(null=True, blank=True)
    source = models.CharField(max_length=16)
    score = models.FloatField()
    label_id = models.BigIntegerField(null=True, blank=True)
    box = models.JSONField()
    shown = models.BooleanField()
    # Set when the frame is completed; null while undecided.
    useful = models.BooleanField(null=True)
    label_right = models.BooleanField(null=True)
    box_right = models.BooleanField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["project", "source", "decided_at"], name="outcome_calibration_idx"),
            models.Index(fields=["frame"], name="outcome_frame_idx"),
        ]
