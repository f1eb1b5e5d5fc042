"""Small model building blocks shared by the domain apps."""

from django.db import models


class TimestampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class VersionedModel(TimestampedModel):
    """Rows people edit carry a version for optimistic concurrency (409 on a stale edit)."""

    version = models.PositiveIntegerField(default=1)

    class Meta:
        abstract = True


class JobState(models.TextChoices):
    """Where a bulk job's status row stands (exports, imports): the worker moves it on."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
