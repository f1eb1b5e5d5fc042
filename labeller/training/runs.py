"""The learning loop's retraining: runs, model versions, promotion and rollback.

A run trains the project's detector on its complete frames (the stable split of
``proposals.training.data.split_of`` keeps a fifth of them for validation), evaluates it
and the current model on the same validation frames, and promotes it only if it is not
worse. The current version is one row (``ProjectLearning.current_run``): promotion and
rollback change it atomically, and every worker loads the new checkpoint on its next
proposal. Runs are started by an admin or by beat (enough new confirmed boxes); at most one
is queued or running per project, which the database enforces.

A worker that dies mid-run stops its heartbeat; beat fails such runs within minutes
(:func:`training_runs_fail_stalled`), so no run stays "running".
"""

from __future__ import annotations

import logging
import math
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from labeller import ml
from labeller.annotations.models import Annotation, AnnotationStatus, Label
from labeller.core.errors import DomainError
from labeller.core.tasks import enqueue
from labeller.media.files import read_frame_rgb
from labeller.media.models import Frame, FrameStatus
from labeller.projects.models import Project
from labeller.training.clock import learning_clock_read, learning_clock_tick
from labeller.training.feature_models import UNREADABLE_CHECKPOINT, local_checkpoint, project_feature_weights
from labeller.training.hooks import index_sync_soon, repropose_soon
from labeller.training.models import ACTIVE_RUN_STATES, ProjectLearning, RunKind, RunState, RunTrigger, TrainingRun
from labeller.training.proposing import followed_into

logger = logging.getLogger(__name__)

TRAIN_RUN = "workers.training.train_run"
BUILD_EMBEDDING_INDEX = "workers.training.build_embedding_index"
# An embedding run needs this many labels with at least two confirmed crops each (triplets).
EMBEDDING_MIN_LABELS = 2
# Frames with confirmed boxes an embedding run reads at most (newest first).
MAX_EMBEDDING_FRAMES = 1000
VALIDATION_SHARE = 0.2
# Newest complete frames a run reads (their images are held in memory while training).
MAX_TRAINING_FRAMES = 2000
# The heartbeat of a running run, and how long beat waits without one before failing it.
HEARTBEAT_EVERY = timedelta(seconds=20)
STALLED_AFTER = timedelta(minutes=3)
# A queued run whose message was lost (broker down) is sent again after this long.
QUEUED_RESEND_AFTER = timedelta(minutes=2)
SEED = 0


class RunCancelled(Exception):
    """An admin cancelled the run: training stops after the current epoch."""


def split_salt(project_id: int) -> str:
    """The salt of the project's train/validation split: fixed for its life, so a frame
    stays on its side however many frames come after it (exports use the same split)."""
    return f"project-{project_id}"


def frame_split(*, project_id: int, frame_id: int) -> str:
    """"train" or "validation", as every run (and export) of the project sees it."""
    from proposals.training.data import split_of

    return str(split_of(frame_id, split_salt(project_id), VALIDATION_SHARE))


def learning_settings(*, project: Project) -> ProjectLearning:
    learning, _ = ProjectLearning.objects.get_or_create(project=project)
    return learning


def learning_settings_update(*, project: Project, **fields) -> ProjectLearning:
    learning = learning_settings(project=project)
    for name, value in fields.items():
        setattr(learning, name, value)
    learning.save(update_fields=list(fields))
    return learning


# --- what a run learns from ---------------------------------------------------------------


def _complete_frame_ids(project_id: int) -> list[int]:
    frames = Frame.objects.filter(project_id=project_id, status=FrameStatus.COMPLETE)
    return list(frames.order_by("-id").values_list("pk", flat=True)[:MAX_TRAINING_FRAMES])


def _split(project_id: int, frame_ids) -> tuple[list[int], list[int]]:
    """``frame_ids`` as (train ids, validation ids), ascending, under the project's split."""
    train, validation = [], []
    for frame_id in sorted(frame_ids):
        (validation if frame_split(project_id=project_id, frame_id=frame_id) == "validation" else train).append(frame_id)
    return train, validation


def training_split(*, project_id: int) -> tuple[list[int], list[int]]:
    """The project's complete frames as (train ids, validation ids), ascending."""
    return _split(project_id, _complete_frame_ids(project_id))


def _confirmed(project_id: int):
    return Annotation.objects.filter(project_id=project_id, status=AnnotationStatus.CONFIRMED, label__isnull=False)


def _require_enough_frames(project_id: int) -> tuple[list[int], list[int]]:
    train, validation = training_split(project_id=project_id)
    needed = settings.LABELLER["TRAINING_MIN_FRAMES"]
    if len(train) + len(validation) < needed or not train or not validation:
        raise DomainError(
            f"Training needs at least {needed} complete frames, some of them set aside to validate the model; "
            f"this project has {len(train) + len(validation)} ({len(validation)} for validation). "
            "Complete more frames first.",
            code="too_few_frames",
        )
    return train, validation


def embedding_split(*, project_id: int) -> tuple[list[int], list[int]]:
    """Frames with confirmed boxes, complete or not (a crop's label needs no complete frame),
    as (train ids, validation ids) under the project's split."""
    frame_ids = _confirmed(project_id).order_by("-frame_id").values_list("frame_id", flat=True).distinct()
    return _split(project_id, frame_ids[:MAX_EMBEDDING_FRAMES])


def _require_enough_crops(project_id: int) -> tuple[list[int], list[int]]:
    train, validation = embedding_split(project_id=project_id)
    crops_per_label = Counter(_confirmed(project_id).filter(frame_id__in=train).values_list("label_id", flat=True))
    labels = sum(count >= 2 for count in crops_per_label.values())
    if labels < EMBEDDING_MIN_LABELS or not validation:
        raise DomainError(
            f"Retraining the embedding needs at least {EMBEDDING_MIN_LABELS} labels with two confirmed boxes each, "
            f"and boxes on frames set aside to validate it; this project has {labels} such labels and "
            f"{len(validation)} validation frames. Confirm more boxes first.",
            code="too_few_boxes",
        )
    return train, validation


def _training_frames(project_id: int, frame_ids: list[int]):
    from proposals.training.data import TrainingFrame

    boxes: dict[int, list] = {frame_id: [] for frame_id in frame_ids}
    for frame_id, x1, y1, x2, y2, label_id in _confirmed(project_id).filter(frame_id__in=frame_ids).values_list(
        "frame_id", "x1", "y1", "x2", "y2", "label_id"
    ):
        boxes[frame_id].append((x1, y1, x2, y2, label_id))
    frames = []
    for frame in Frame.objects.filter(pk__in=frame_ids).only("pk", "image").order_by("pk"):
        rows = np.array(boxes[frame.pk], dtype=np.float64).reshape(-1, 5)
        frames.append(
            TrainingFrame(frame.pk, read_frame_rgb(frame), rows[:, :4].astype(np.float32), rows[:, 4].astype(np.int64), True)
        )
    return frames


# --- starting, cancelling --------------------------------------------------------------------


def detector_epochs(train_frames: int) -> int:
    """Epochs of a detector run: enough passes that it sees TRAINING_MIN_IMAGES images (few
    complete frames need many passes; from random init a dozen epochs over twenty frames
    learn nothing), at least TRAINING_EPOCHS, at most TRAINING_MAX_EPOCHS."""
    config = settings.LABELLER
    wanted = math.ceil(config["TRAINING_MIN_IMAGES"] / max(train_frames, 1))
    return int(min(config["TRAINING_MAX_EPOCHS"], max(config["TRAINING_EPOCHS"], wanted)))


def training_run_start(
    *, project: Project, user=None, trigger: str = RunTrigger.MANUAL, kind: str = RunKind.DETECTOR
) -> tuple[TrainingRun, bool]:
    """Queue a run of the project's detector or embedding; (run, created). When a run is
    already queued or running, that one is returned instead (also under concurrent requests)."""
    active = TrainingRun.objects.filter(project=project, state__in=ACTIVE_RUN_STATES).first()
    if active is not None:
        return active, False
    learning = learning_settings(project=project)
    if kind == RunKind.EMBEDDING:
        _require_enough_crops(project.pk)
        parent, total = learning.current_embedding_run, settings.LABELLER["EMBEDDING_STEPS"]
    else:
        train, _ = _require_enough_frames(project.pk)
        parent, total = learning.current_run, detector_epochs(len(train))
    try:
        with transaction.atomic():
            number = (TrainingRun.objects.filter(project=project).aggregate(top=Max("number"))["top"] or 0) + 1
            run = TrainingRun.objects.create(
                project=project, number=number, kind=kind, trigger=trigger, requested_by=user, parent=parent,
                confirmed_boxes=_confirmed(project.pk).count(), epochs_total=total,
            )
            enqueue(TRAIN_RUN, run.pk)
    except IntegrityError:  # another request started one at the same moment
        active = TrainingRun.objects.filter(project=project, state__in=ACTIVE_RUN_STATES).first()
        if active is None:
            raise
        return active, False
    return run, True


def training_run_cancel(*, run: TrainingRun) -> TrainingRun:
    """A queued run never starts; a running one stops after its current epoch."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if run.state == RunState.QUEUED:
            run.state, run.finished_at, run.decision = RunState.CANCELLED, timezone.now(), "Cancelled before it started."
            run.save(update_fields=["state", "finished_at", "decision", "updated_at"])
        elif run.state == RunState.RUNNING:
            run.cancel_requested = True
            run.save(update_fields=["cancel_requested", "updated_at"])
        else:
            raise DomainError(f"Run {run.number} has already ended ({run.state}).", code="run_ended", http_status=409)
    return run


# --- running ---------------------------------------------------------------------------------


class _Heartbeat:
    """Moves the run's ``heartbeat_at`` from a thread while the worker trains (an epoch can
    take minutes): if the process dies, the heartbeat stops and beat fails the run."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"run-{run_id}-heartbeat", daemon=True)

    def _beat(self) -> None:
        try:
            while not self.stopped.wait(HEARTBEAT_EVERY.total_seconds()):
                try:
                    TrainingRun.objects.filter(pk=self.run_id, state=RunState.RUNNING).update(heartbeat_at=timezone.now())
                except DatabaseError:  # a locked or briefly unreachable database: beat again next time
                    logger.warning("run %s: heartbeat not written this time", self.run_id, exc_info=True)
        finally:
            connection.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()


def _claim(run_id: int) -> TrainingRun | None:
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.state != RunState.QUEUED:
            return None  # done, cancelled, or another worker has it: a redelivery is a no-op
        now = timezone.now()
        run.state, run.started_at, run.heartbeat_at = RunState.RUNNING, now, now
        run.save(update_fields=["state", "started_at", "heartbeat_at", "updated_at"])
    return run


def _record_progress(run_id: int, entry: dict) -> None:
    """Append ``entry`` (its "epoch": epochs or steps done) to the run's loss curve and beat;
    raises RunCancelled when an admin asked the run to stop."""
    current = TrainingRun.objects.get(pk=run_id)
    TrainingRun.objects.filter(pk=run_id).update(
        loss_curve=[*current.loss_curve, entry], epochs_done=entry["epoch"], heartbeat_at=timezone.now()
    )
    if current.cancel_requested:
        raise RunCancelled


def _finish(run_id: int, state: str, **fields) -> bool:
    """End a running run; False when it had already ended (beat failed it meanwhile)."""
    return bool(
        TrainingRun.objects.filter(pk=run_id, state=RunState.RUNNING).update(
            state=state, finished_at=timezone.now(), updated_at=timezone.now(), **fields
        )
    )


def _scores_as_dict(scores, names: dict[int, str]) -> dict:
    return {
        "map50": None if not np.isfinite(scores.map50) else round(float(scores.map50), 4),
        "per_label": {
            names.get(label_id, str(label_id)): (None if ap is None or not np.isfinite(ap) else round(float(ap), 4))
            for label_id, ap in sorted(scores.per_label.items())
        },
    }


def training_run_execute(*, run_id: int) -> TrainingRun | None:
    """Train, evaluate and maybe promote run ``run_id`` (the task's body). Idempotent: only a
    queued run is trained; anything else (done, cancelled, taken) is left alone."""
    run = _claim(run_id)
    if run is None:
        return None
    try:
        with _Heartbeat(run.pk):
            (_train_embedding if run.kind == RunKind.EMBEDDING else _train_detector)(run)
    except RunCancelled:
        _finish(run.pk, RunState.CANCELLED, decision="Cancelled by an admin; the current model stays.")
    except Exception as error:  # noqa: BLE001 - whatever broke, the run must end, readably
        logger.exception("training run %s failed", run.pk)
        _finish(run.pk, RunState.FAILED, error=f"{type(error).__name__}: {error}"[:2000])
    return TrainingRun.objects.get(pk=run.pk)


def _save_artifact(run: TrainingRun, save, kind: str | None = None) -> str:
    """Write the checkpoint with ``save(path)`` to a temporary file, then into storage."""
    kind = kind or ("detector" if run.kind == RunKind.DETECTOR else "embedding")
    name = f"orgs/{run.project.organization_id}/projects/{run.project_id}/models/{kind}-{run.number}-{run.pk}.pt"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.pt"
        save(path)
        with path.open("rb") as handle:
            return default_storage.save(name, File(handle))


def _train_detector(run: TrainingRun) -> None:
    from proposals.training.evaluation import ModelScore, PromotionDecision, promotion_decision, validation_key

    project_id = run.project_id
    train_ids, val_ids = _require_enough_frames(project_id)
    train_frames = _training_frames(project_id, train_ids)
    val_frames = _training_frames(project_id, val_ids)
    label_ids = sorted({int(label) for frame in train_frames + val_frames for label in frame.label_ids})
    parent = run.parent if run.parent is not None and run.parent.artifact else None
    parent_path = str(local_checkpoint(parent.artifact)) if parent is not None else None
    if parent is not None:
        label_ids = sorted(set(label_ids) | {int(label) for label in parent.label_ids})
    TrainingRun.objects.filter(pk=run.pk).update(train_frame_ids=train_ids, val_frame_ids=val_ids, label_ids=label_ids)

    def after_epoch(stats) -> None:
        losses = {name: round(value, 5) for name, value in stats.losses.items()}
        _record_progress(run.pk, {"epoch": stats.epoch + 1, "seconds": round(stats.seconds, 2), **losses})

    result, options = ml.train_detector(
        train_frames, label_ids=label_ids, parent_path=parent_path,
        epochs=run.epochs_total or settings.LABELLER["TRAINING_EPOCHS"], seed=SEED, log=after_epoch,
    )
    names = dict(Label.objects.filter(pk__in=label_ids).values_list("pk", "name"))
    candidate = ml.evaluate_detector(result.detector, val_frames)
    key = validation_key(val_ids)
    learning = learning_settings(project=run.project)
    current_run = learning.current_run if learning.current_run is not None and learning.current_run.artifact else None
    current_scores = None
    if current_run is not None:
        current_scores = ml.evaluate_detector_file(local_checkpoint(current_run.artifact), val_frames)
    decision = promotion_decision(
        ModelScore(candidate.map50, key), ModelScore(current_scores.map50, key) if current_scores is not None else None
    )
    if current_scores is None and decision.promote and not candidate.map50 > 0:
        # Without a detector nothing is detected: a first one must find something to be better.
        decision = PromotionDecision(False, "it finds nothing on the validation frames yet (mAP@0.5 0)")
    metrics = {
        **_scores_as_dict(candidate, names),
        "validation_key": key,
        "train_frames": len(train_ids),
        "val_frames": len(val_ids),
        "seconds_per_epoch": round(result.seconds_per_epoch, 2),
        "weights": result.detector.weights_description,
        "current": None if current_scores is None else {"run": current_run.number, **_scores_as_dict(current_scores, names)},
    }
    name = _save_artifact(run, lambda path: ml.save_detector(result.detector, path, run_id=run.pk, project_id=project_id))
    refiner_name, metrics["refiner"] = _train_refiner(run, train_frames, val_frames, current_run, name)
    hyperparameters = {
        "backbone": str(result.detector.config.backbone), "max_side": result.detector.config.max_side,
        "epochs": options.epochs, "batch_size": options.batch_size, "learning_rate": options.learning_rate,
        "schedule": "one-cycle", "repeat_threshold": options.repeat_threshold, "seed": options.seed,
        "fine_tuned_from": parent.number if parent is not None else None, "frozen": result.frozen,
    }
    with transaction.atomic():
        finished = _finish(run.pk, RunState.SUCCEEDED, metrics=metrics, artifact=name, decision=decision.reason,
                           hyperparameters=hyperparameters, refiner_artifact=refiner_name)
        if finished and decision.promote:
            _promote(TrainingRun.objects.get(pk=run.pk))


def _stop_if_cancelled(run_id: int) -> None:
    if TrainingRun.objects.filter(pk=run_id, cancel_requested=True).exists():
        raise RunCancelled


def _refiner_cases(val_frames, detector_name: str) -> tuple[list[tuple], list[tuple]]:
    """The validation frames as a refiner is judged on them, each ``(frame, boxes, their
    confidence, its confirmed boxes)``: first a video's frames with the boxes followed into them
    from their labelled neighbours and the tracker's confidence, then the stills (nothing is
    followed into them) with the boxes a refiner moves there, the detections of the detector
    saved as ``detector_name`` and the pixels' class-agnostic segments, with no confidence."""
    stored = Frame.objects.select_related("video").in_bulk([frame.frame_id for frame in val_frames])
    followed = [(frame.image, *followed_into(stored[frame.frame_id], frame.image), frame.boxes)
                for frame in val_frames if stored[frame.frame_id].shot_id is not None]
    stills = [frame for frame in val_frames if stored[frame.frame_id].shot_id is None]
    if not stills:
        return followed, []
    detector = ml.load_detector(local_checkpoint(detector_name))
    return followed, [(frame.image, np.concatenate([detector(frame.image)[0], ml.class_agnostic_boxes(frame.image)]),
                       None, frame.boxes) for frame in stills]


def _train_refiner(run: TrainingRun, train_frames, val_frames, current_run: TrainingRun | None,
                   detector_name: str) -> tuple[str, dict]:
    """Train the version's box refiner on the run's training frames; keep it (its checkpoint's
    name, else "") when it mends the validation frames' boxes moved as the tracker errs, and
    the boxes it would move in those frames would cost a person no more seconds refined than as
    they are: in a video's frames the boxes really followed into them from their labelled
    neighbours, in stills the boxes proposed there (the version's detections, saved as
    ``detector_name``, and the pixels' segments). Why both: a few validation frames a second
    from their labels hold few followed boxes that need mending (the refiner's gain is a box in
    twenty), but a refiner trained on few frames also moves good boxes off their objects, and
    that shows there. Its figures, beside those of the refiner in use on the same frames."""
    if not settings.LABELLER["REFINER_STEPS"]:
        return "", {"kept": False, "reason": "off (LABELLER_REFINER_STEPS=0)"}
    training = ml.train_box_refiner(train_frames, seed=SEED, log=lambda step, loss: _stop_if_cancelled(run.pk))
    cases, still_cases = _refiner_cases(val_frames, detector_name)
    followed = ml.evaluate_box_refiner_on_followed(training.refiner, cases)
    on_stills = ml.evaluate_box_refiner_on_followed(training.refiner, still_cases)
    moved = ml.evaluate_box_refiner(training.refiner, val_frames, seed=SEED)
    judged = [score for score in (followed, on_stills) if score.boxes]
    kept = moved.helps and bool(judged) and all(score.no_worse for score in judged)
    figures = {**moved.as_dict(), "followed": followed.as_dict(), "on_stills": on_stills.as_dict(), "kept": kept,
               "steps": settings.LABELLER["REFINER_STEPS"], "samples": training.samples,
               "seconds": round(training.seconds, 2), "loss_curve": training.loss_curve}
    if current_run is not None and current_run.refiner_artifact:
        try:
            in_use = ml.load_box_refiner_net(local_checkpoint(current_run.refiner_artifact))
            figures["current"] = {"run": current_run.number,
                                  "followed": ml.evaluate_box_refiner_on_followed(in_use, cases).as_dict()}
        except UNREADABLE_CHECKPOINT:
            logger.exception("run %s: the refiner in use cannot be loaded to compare", run.pk)
    if not kept:
        return "", figures
    name = _save_artifact(run, lambda path: ml.save_box_refiner(training.refiner, path, run_id=run.pk), kind="refiner")
    return name, figures


# The loss curve of an embedding run keeps at most this many points (one per step otherwise).
LOSS_POINTS = 100


def _train_embedding(run: TrainingRun) -> None:
    from proposals.training.evaluation import ModelScore, promotion_decision, validation_key

    project_id = run.project_id
    train_ids, val_ids = _require_enough_crops(project_id)
    train_crops = ml.embedding_crops(_training_frames(project_id, train_ids))
    val_crops = ml.embedding_crops(_training_frames(project_id, val_ids))
    TrainingRun.objects.filter(pk=run.pk).update(
        train_frame_ids=train_ids, val_frame_ids=val_ids,
        label_ids=sorted({crop.label_id for crop in train_crops}),
    )
    every = max(1, run.epochs_total // LOSS_POINTS)

    def after_step(step: int, loss: float, spread: float) -> None:
        if (step + 1) % every and step + 1 != run.epochs_total:
            return
        _record_progress(run.pk, {"epoch": step + 1, "total": round(loss, 5), "spread": round(spread, 5)})

    weights = project_feature_weights(project_id)
    result, options = ml.train_embedding(train_crops, weights=weights, steps=run.epochs_total, seed=SEED, log=after_step)
    if result.collapsed:
        _finish(run.pk, RunState.FAILED, error=f"The embedding collapsed ({result.reason}); the one in use stays.")
        return
    candidate = ml.evaluate_embedding(result.extractor, val_crops, train_crops)
    current = ml.evaluate_embedding(ml.feature_extractor(weights), val_crops, train_crops)
    key = validation_key(val_ids)
    decision = promotion_decision(ModelScore(candidate, key), ModelScore(current, key))
    current_run = learning_settings(project=run.project).current_embedding_run
    metrics = {
        "recall_at_1": round(candidate, 4),
        "validation_key": key,
        "train_frames": len(train_ids),
        "val_frames": len(val_ids),
        "train_crops": len(train_crops),
        "val_crops": len(val_crops),
        "seconds": round(result.seconds, 2),
        "weights": result.extractor.weights_description,
        "current": {"run": current_run.number if current_run else None, "recall_at_1": round(current, 4)},
    }
    name = _save_artifact(run, lambda path: ml.save_embedding(result.extractor, path, run_id=run.pk, project_id=project_id))
    hyperparameters = {
        "backbone": str(result.extractor.config.backbone), "loss": "batch-hard triplet, soft margin",
        "steps": options.steps, "labels_per_batch": options.labels_per_batch,
        "crops_per_label": options.crops_per_label, "learning_rate": options.learning_rate, "seed": options.seed,
        "fine_tuned_from": run.parent.number if run.parent is not None else None,
    }
    with transaction.atomic():
        finished = _finish(run.pk, RunState.SUCCEEDED, metrics=metrics, artifact=name, decision=decision.reason,
                           hyperparameters=hyperparameters)
        if finished and decision.promote:
            _promote(TrainingRun.objects.get(pk=run.pk))


# --- promotion and rollback -------------------------------------------------------------------


@dataclass(frozen=True)
class _Change:
    label: str
    before: float
    after: float


def promotion_notice(run: TrainingRun, previous: TrainingRun | None) -> str:
    """What annotators are told: what improved against the model it replaces."""
    after = run.metrics.get("per_label", {})
    before = (run.metrics.get("current") or {}).get("per_label", {}) if previous is not None else {}
    if previous is not None and run.metrics.get("current", {}) and run.metrics["current"].get("run") != previous.number:
        before = {}  # promoted by hand over another version: no like-for-like figures
    changes = [
        _Change(label.rsplit(".", 1)[-1], before.get(label) or 0.0, ap)
        for label, ap in after.items()
        if ap is not None and (label not in before or before.get(label) is None or ap > before[label] + 0.005)
    ]
    changes.sort(key=lambda c: c.after - c.before, reverse=True)
    shown = ", ".join(
        f"{c.label} AP {c.before:.2f} → {c.after:.2f}" if before else f"{c.label} AP {c.after:.2f}" for c in changes[:3]
    )
    if previous is None:
        return f"The model learned from {run.metrics.get('train_frames', 0)} complete frames: " + (shown or "first version in use")
    return f"The model learned: {shown}" if shown else f"Model version {run.number} is in use."


def _promote(run: TrainingRun) -> TrainingRun:
    """Make ``run`` the project's model (caller holds a transaction). A detector is in use at
    once; an embedding first needs its index: the bulk worker builds it and then switches
    (:func:`embedding_index_switch`), so proposals are never interrupted."""
    if run.kind == RunKind.EMBEDDING:
        ProjectLearning.objects.get_or_create(project_id=run.project_id)
        ProjectLearning.objects.filter(project_id=run.project_id).update(pending_embedding_run=run)
        enqueue(BUILD_EMBEDDING_INDEX, run.pk)
        return run
    return _put_in_use(run)


def _put_in_use(run: TrainingRun) -> TrainingRun:
    """One row update; the learning clock ticks so proposals built by the old model are stale,
    and the bulk worker rebuilds those of the frames nobody holds."""
    learning = ProjectLearning.objects.select_for_update().get_or_create(project_id=run.project_id)[0]
    embedding = run.kind == RunKind.EMBEDDING
    previous = learning.current_embedding_run if embedding else learning.current_run
    now = timezone.now()
    if embedding:
        learning.current_embedding_run, learning.pending_embedding_run = run, None
    else:
        learning.current_run = run
    learning.notice = (embedding_notice(run) if embedding else promotion_notice(run, previous))[:500]
    learning.notice_at = now
    learning.save(update_fields=["current_run", "current_embedding_run", "pending_embedding_run", "notice", "notice_at"])
    TrainingRun.objects.filter(pk=run.pk).update(promoted_at=now)
    learning_clock_tick(project_id=run.project_id)
    repropose_soon(project_id=run.project_id, built_before=learning_clock_read(project_id=run.project_id))
    return run


def embedding_notice(run: TrainingRun) -> str:
    before = (run.metrics.get("current") or {}).get("recall_at_1")
    after = run.metrics.get("recall_at_1")
    if before is None or after is None:
        return f"The model learned to tell your labels apart (embedding version {run.number})"
    return f"The model learned to tell your labels apart: nearest-example label right {before:.0%} → {after:.0%}"


def embedding_index_build(*, run_id: int) -> bool:
    """The bulk task's body after an embedding is promoted: sync the index of its feature model
    (a slice at a time), and when it holds every confirmed box, switch to it atomically.
    Returns whether the switch happened (False: call again for the next slice, or the run is
    no longer the one waiting)."""
    from labeller.training.services import IndexConflict, index_sync

    run = TrainingRun.objects.filter(pk=run_id).first()
    learning = ProjectLearning.objects.filter(project_id=run.project_id).first() if run else None
    if run is None or learning is None or learning.pending_embedding_run_id != run.pk:
        return False  # superseded, or switched already: nothing to do
    weights = str(local_checkpoint(run.artifact))
    try:
        result = index_sync(project_id=run.project_id, weights=weights)
    except IndexConflict:
        return False  # another worker is syncing it: it carries on
    if result.remaining:
        return False
    with transaction.atomic():
        learning = ProjectLearning.objects.select_for_update().get(project_id=run.project_id)
        if learning.pending_embedding_run_id != run.pk:
            return False
        _put_in_use(run)
    index_sync_soon(project_id=run.project_id)  # what changed while the index was being built
    return True


def training_run_promote(*, run: TrainingRun) -> TrainingRun:
    """An admin's choice: use this version (also an older one: a rollback)."""
    if run.state != RunState.SUCCEEDED or not run.artifact:
        raise DomainError(f"Run {run.number} has no trained model to use ({run.state}).", code="no_model", http_status=409)
    with transaction.atomic():
        _promote(run)
    run.refresh_from_db()
    return run


def runs_in_use(*, project_id: int) -> dict[str, set[int]]:
    """The runs in use ("current": the detector and the embedding) and the embedding whose
    index is being built ("pending")."""
    row = (
        ProjectLearning.objects.filter(project_id=project_id)
        .values("current_run_id", "current_embedding_run_id", "pending_embedding_run_id")
        .first()
    ) or {}
    current = {row.get("current_run_id"), row.get("current_embedding_run_id")} - {None}
    return {"current": current, "pending": {row.get("pending_embedding_run_id")} - {None}}


def learned_notice(*, project_id: int) -> dict | None:
    """The latest promotion as annotators are told it, or None before the first."""
    row = (
        ProjectLearning.objects.filter(project_id=project_id, notice_at__isnull=False)
        .values("notice", "notice_at", "current_run__number")
        .first()
    )
    if row is None:
        return None
    return {"notice": row["notice"], "at": row["notice_at"], "version": row["current_run__number"] or 0}


# --- beat ---------------------------------------------------------------------------------------


def training_runs_fail_stalled(*, now=None) -> list[int]:
    """Fail running runs whose heartbeat stopped (their worker died), readably."""
    now = now or timezone.now()
    stalled = list(
        TrainingRun.objects.filter(state=RunState.RUNNING, heartbeat_at__lt=now - STALLED_AFTER).values_list("pk", flat=True)
    )
    for run_id in stalled:
        _finish(
            run_id, RunState.FAILED,
            error="The worker training this run stopped (no heartbeat for minutes); start a new run.",
        )
    return stalled


def training_runs_resend_queued(*, now=None) -> list[int]:
    """Queued runs whose message never reached a worker (the broker was down): send again;
    a duplicate is harmless, only a queued run is ever trained."""
    now = now or timezone.now()
    queued = list(
        TrainingRun.objects.filter(state=RunState.QUEUED, created_at__lt=now - QUEUED_RESEND_AFTER).values_list("pk", flat=True)
    )
    for run_id in queued:
        enqueue(TRAIN_RUN, run_id)
    return queued


def embedding_index_builds_resend() -> list[int]:
    """Promoted embeddings still waiting for their index (a lost message, a killed worker):
    send the build again; a duplicate finds the index being synced and stops."""
    waiting = list(
        ProjectLearning.objects.filter(pending_embedding_run__isnull=False).values_list("pending_embedding_run", flat=True)
    )
    for run_id in waiting:
        enqueue(BUILD_EMBEDDING_INDEX, run_id)
    return waiting


def _kinds_due(project: Project, every: int) -> list[str]:
    """The kinds of run the project is due for, detector first: each kind retrains once enough
    boxes were confirmed since its own last run, the embedding EMBEDDING_RETRAIN_FACTOR times
    less often. Why: on a CPU an embedding run takes several times a detector run (measured
    on a generated video: 120 steps still unfinished after five minutes, against 80 s for the
    detector), and a project trains one run at a time; taking turns held the detector, which
    is what finds new boxes, back for most of a labelling session.

    The first detector is due at once, i.e. as soon as the project has enough complete frames
    to train and validate one (the caller skips a kind that cannot start yet). Without a
    detector, a new shot's first frame has only class-agnostic candidates: a person draws
    about half of its boxes (bench/assist.py), and that is where a first model can help;
    waiting for ``every`` boxes had it arrive after the keyframes, which come first in the
    queue (on bench/assist.py's 40 s videos it now lands 48 s sooner, still after the last
    shot's first frame, so the figure does not move there).
    """
    confirmed = _confirmed(project.pk).count()
    factors = ((RunKind.DETECTOR, 1), (RunKind.EMBEDDING, settings.LABELLER["EMBEDDING_RETRAIN_FACTOR"]))
    due = []
    for kind, factor in factors:
        previous = TrainingRun.objects.filter(project=project, kind=kind).order_by("-id")
        boxes_then = previous.values_list("confirmed_boxes", flat=True).first()  # at its last run
        if boxes_then is None and kind == RunKind.DETECTOR:
            due.append(kind)
        elif confirmed - (boxes_then or 0) >= every * factor:
            due.append(kind)
    return due


def training_runs_start_due() -> list[int]:
    """Start a periodic run for every project with enough new confirmed boxes since its last run
    of that kind (``ProjectLearning.retrain_every_boxes``; 0 turns it off; see :func:`_kinds_due`)."""
    started = []
    for project in Project.objects.filter(annotations__status=AnnotationStatus.CONFIRMED).distinct():
        every = learning_settings(project=project).retrain_every_boxes
        if not every:
            continue
        run, created = None, False
        for kind in _kinds_due(project, every):
            try:
                run, created = training_run_start(project=project, trigger=RunTrigger.PERIODIC, kind=kind)
                break
            except DomainError:
                continue  # not enough complete frames (or labelled boxes) for this kind yet
        if created:
            started.append(run.pk)
    return started
