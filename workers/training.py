"""Training-side tasks: reports now; retraining joins here."""

import logging
import time

from celery import shared_task

from labeller.core.errors import DomainError
from labeller.projects.models import Project
from labeller.training.reports import embedding_report_create

logger = logging.getLogger(__name__)


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
