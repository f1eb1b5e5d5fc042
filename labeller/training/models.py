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
    # How unsure the models were about the frame when they built its proposals, in [0, 1):
    # the share it adds to Frame.priority, so the queue offers uncertain frames first.
    uncertainty = models.FloatField(default=0.0)


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
    # Whether the frame's shot already had confirmed boxes when the proposal was made. The
    # same source is far more often right on the first frame of a shot (nothing is followed
    # there, so its boxes are the only ones) than beside followed boxes (where what is left is
    # mostly background), so each context is calibrated on its own.
    shot_labelled = models.BooleanField(default=False)
    score = models.FloatField()
    label_id = models.BigIntegerField(null=True, blank=True)
    box = models.JSONField()
    # A followed box's box before its label's edge bias moved it (proposals.edge_bias): the
    # bias is learned against what the tracker gave, not against what earlier biases made of
    # it. Null where nothing moved it.
    box_as_followed = models.JSONField(null=True, blank=True)
    # Whether it is a pixels' box that may be an object the tracker lost, as the labelled frames
    # it was followed from said when it was made (proposing.lost_object_flags): such boxes are
    # calibrated on their own history.
    lost_object = models.BooleanField(default=False)
    # Whether, where nothing was followed, another source found a box in the same place too
    # (proposals.regions.backing): such boxes are calibrated on their own history.
    backed = models.BooleanField(default=False)
    shown = models.BooleanField()
    # The show policy's P(useful) when the proposal was made (null for outcomes recorded
    # before it was kept): set against ``useful``, it says whether the chances are honest.
    chance = models.FloatField(null=True, blank=True)
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


class RunState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_RUN_STATES = (RunState.QUEUED, RunState.RUNNING)


class RunTrigger(models.TextChoices):
    MANUAL = "manual"  # an admin pressed Retrain
    PERIODIC = "periodic"  # beat: enough new confirmed boxes since the last run


class RunKind(models.TextChoices):
    DETECTOR = "detector"  # finds the objects: a source of region proposals
    EMBEDDING = "embedding"  # the feature model: the index's kNN labels and objectness


class TrainingRun(TimestampedModel):
    """One retraining of the project's detector or embedding; when it succeeds, a model version.

    The run records what it learned from (``train_frame_ids``, ``val_frame_ids``: the stable
    split of complete frames), how (``hyperparameters``, ``parent``: the version it was
    fine-tuned from), how it went (``loss_curve``, one entry per epoch) and how good it is
    (``metrics``: a detector's mAP@0.5 and per-label AP, an embedding's nearest-neighbour
    recall@1, on its validation frames, beside the then current model's on the same frames).
    ``artifact`` is the checkpoint in storage. ``epochs_*`` count steps for an embedding.
    A detector run also trains a box refiner for the boxes followed from confirmed ones
    (proposals.training.refiner); ``refiner_artifact`` is its checkpoint, kept only when it
    mended the validation frames' boxes moved at random and cost no more on the boxes followed
    into them (``metrics["refiner"]``), and it is in use while the run's detector is (it is
    part of that version).
    ``heartbeat_at`` moves while a worker trains it: a run whose worker died is failed by beat,
    never left running. At most one queued-or-running run per project (a database constraint,
    so concurrent Retrain clicks start one).
    """

    ORGANIZATION_PATH = "project__organization"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="training_runs")
    number = models.PositiveIntegerField()  # the project's version number, 1, 2, ...
    kind = models.CharField(max_length=16, choices=RunKind.choices, default=RunKind.DETECTOR)
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.QUEUED)
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices, default=RunTrigger.MANUAL)
    requested_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    confirmed_boxes = models.PositiveIntegerField(default=0)  # the project's confirmed boxes when the run started
    train_frame_ids = models.JSONField(default=list, blank=True)
    val_frame_ids = models.JSONField(default=list, blank=True)
    label_ids = models.JSONField(default=list, blank=True)
    hyperparameters = models.JSONField(default=dict, blank=True)
    loss_curve = models.JSONField(default=list, blank=True)
    epochs_done = models.PositiveIntegerField(default=0)
    epochs_total = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)
    decision = models.CharField(max_length=255, blank=True, default="")
    artifact = models.CharField(max_length=500, blank=True, default="")
    refiner_artifact = models.CharField(max_length=500, blank=True, default="")
    error = models.TextField(blank=True, default="")
    cancel_requested = models.BooleanField(default=False)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    promoted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project"], condition=models.Q(state__in=ACTIVE_RUN_STATES), name="one_active_run_per_project"
            ),
            models.UniqueConstraint(fields=["project", "number"], name="unique_run_number"),
        ]


class ProjectLearning(models.Model):
    """The project's learning-loop settings and its models in use.

    ``current_run`` is the promoted detector version; proposals use it from the next frame on,
    in every worker, without a restart (they load checkpoints by run id). Changing it is one
    row update: promotion and rollback are atomic. ``retrain_every_boxes``: beat starts a run
    when this many boxes were confirmed since the last one (0: only by hand).
    ``queue_order``: which frames the queue offers after keyframes.
    """

    class QueueOrder(models.TextChoices):
        UNCERTAIN_FIRST = "uncertain_first"  # where the models are least sure
        SEQUENTIAL = "sequential"  # in video order

    project = models.OneToOneField(Project, on_delete=models.CASCADE, primary_key=True, related_name="learning")
    current_run = models.ForeignKey(TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The embedding in use (None: the configured feature model), and one promoted whose index
    # the bulk worker is still building: the switch happens when it is complete.
    current_embedding_run = models.ForeignKey(
        TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    pending_embedding_run = models.ForeignKey(
        TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Off for a new project: measured by bench/assist.py on the generated videos, retraining as
    # people label does not yet save them time (see the README); admins turn it on here.
    retrain_every_boxes = models.PositiveIntegerField(default=0)
    queue_order = models.CharField(max_length=20, choices=QueueOrder.choices, default=QueueOrder.UNCERTAIN_FIRST)
    # The latest promotion, as annotators are told it ("the model learned ...").
    notice = models.CharField(max_length=500, blank=True, default="")
    notice_at = models.DateTimeField(null=True, blank=True)
