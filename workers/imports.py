"""Zip image uploads and dataset imports as a Celery task: a thin wrapper over
labeller.annotations.import_jobs.import_run.

The service records bad data on the row, and handles any other error with its own run's
token (a run whose row beat gave to another worker changes nothing): before the last try it
queues the row again and raises ImportRetry, and the task retries; on the last try it fails
the row with a plain message and raises the error. A retry is safe: the import writes its
rows and its ``done`` in one transaction, and skips images the project already has.
"""

import logging
import time

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(
    name="workers.imports.run_import", bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=3
)
def run_import(self, import_id: int) -> None:
    from labeller.annotations import import_jobs

    started = time.monotonic()
    try:
        import_jobs.import_run(import_id=import_id, retry_on_error=self.request.retries < self.max_retries)
    except import_jobs.ImportRetry as retry:
        raise self.retry(exc=retry.__cause__, countdown=2**self.request.retries) from retry.__cause__
    logger.info("run_import(%s) took %.2fs", import_id, time.monotonic() - started)
