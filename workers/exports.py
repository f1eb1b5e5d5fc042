"""Exports as a Celery task: a thin wrapper over labeller.exports.services.export_run."""

import logging
import time

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="workers.exports.run_export", acks_late=True, reject_on_worker_lost=True)
def run_export(export_id: int) -> None:
    """Write one export. A second delivery finds it claimed and does nothing; a worker
    killed part-way leaves it to beat (``check_exports``), which fails it with a reason."""
    from labeller.exports.services import export_run

    started = time.monotonic()
    export_run(export_id=export_id)
    logger.info("run_export(%s) took %.2fs", export_id, time.monotonic() - started)
