from django.db import models

from labeller.core.models import TimestampedModel
from labeller.projects.models import Project


class ProjectIndex(TimestampedModel):
    """The project's embedding index of confirmed crops and hard negatives, for one feature model.

    The bytes live in Django storage (``file``) so every worker and web process can load
    them; ``version`` rises with every saved change and lets processes keep a cached copy
    until it moves. A new feature model (``feature_key``) starts a new index: a rebuild.
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
