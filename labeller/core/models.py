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


class BulkJob(TimestampedModel):
    """A status row for work a bulk worker does (an outbox record): the request writes it
    ``queued``; the worker claims it (``running``), beats ``heartbeat_at`` and ends it ``done``
    or ``failed`` with an ``error`` in plain words; beat re-sends or fails the silent ones."""

    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-id"]
