"""Training-side tasks: retraining runs (their own queue and worker), beat's checks on
them, and embedding reports. Thin: the logic is in ``labeller.training.runs``."""

import logging
import time

from celery import shared_task

from labeller.core.errors import DomainError
from labeller.projects.models import Project
from labeller.training.reports import embedding_report_create

logger = logging.getLogger(__name__)


@shared_task(name="workers.training.train_run", acks_late=True)
def train_run(run_id: int) -> str | None:
    """Train, evaluate and maybe promote one run (detector or embedding). A redelivered
    message finds the run no longer queued and does nothing."""
    from labeller.training.runs import training_run_execute

    run = training_run_execute(run_id=run_id)
    if run is None:
        return None
    logger.info("training run %s of project %s: %s (%s)", run.pk, run.project_id, run.state, run.decision or run.error)
    return run.state


@shared_task(name="workers.training.check_training_runs", acks_late=True)
def check_training_runs() -> dict:
    """Beat: fail runs whose worker died, re-send queued runs whose message was lost, and
    start the periodic runs of projects with enough new confirmed boxes."""
    from labeller.training.runs import (embedding_index_builds_resend, training_runs_fail_stalled,
                                        training_runs_resend_queued, training_runs_start_due)

    result = {
        "failed": training_runs_fail_stalled(),
        "resent": training_runs_resend_queued(),
        "started": training_runs_start_due(),
        "index_builds": embedding_index_builds_resend(),
    }
    if any(result.values()):
        logger.info("training runs: %s", result)
    return result


# One build task embeds slices of the new index for at most this long, then hands the bulk
# worker back and continues in a new task.
BUILD_SLICE_S = 60


@shared_task(name="workers.training.build_embedding_index", acks_late=True)
def build_embedding_index(run_id: int) -> bool:
    """After an embedding is promoted, on the bulk queue: build its index, then switch to it."""
    from labeller.core.tasks import enqueue
    from labeller.training.models import ProjectLearning
    from labeller.training.runs import BUILD_EMBEDDING_INDEX, embedding_index_build

    started = time.monotonic()
    while time.monotonic() - started < BUILD_SLICE_S:
        if embedding_index_build(run_id=run_id):
            logger.info("embedding run %s: index built and in use after %.1fs", run_id, time.monotonic() - started)
            return True
        if not ProjectLearning.objects.filter(pending_embedding_run=run_id).exists():
            return False  # superseded
    enqueue(BUILD_EMBEDDING_INDEX, run_id)
    return False


@shared_task(name="workers.training.evaluate_embeddings", acks_late=True)
def evaluate_embeddings(project_id: int) -> None:
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return
    started = time.monotonic()
    try:
        report = embedding_report_create(project=project)
    except DomainError as error:  # too few crops: nothing to report, nothing to retry
        logger.warning("embedding report for project %s: %s", project_id, error)
        return
    logger.info("embedding report %s for project %s in %.1fs", report.pk, project_id, time.monotonic() - started)
