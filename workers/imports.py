"""Zip image uploads and dataset imports as a Celery task: a thin wrapper over
labeller.annotations.import_jobs.import_run.

Bad data is recorded on the row by the service. Other errors (the database or storage
briefly away) give the row back to the queue and retry; after the last retry the row fails
with the reason. A retry is safe: the import writes its rows and its ``done`` in one
transaction, and skips images the project already has.
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
        import_jobs.import_run(import_id=import_id)
    except Exception as error:
        token = import_jobs.import_token(import_id=import_id)
        if token is None:
            raise  # not running any more: nothing of ours to retry or fail
        if self.request.retries >= self.max_retries:
            import_jobs.import_fail(import_id=import_id, token=token, message=f"The import failed: {error}")
            raise
        import_jobs.import_requeue(import_id=import_id, token=token)
        raise self.retry(exc=error, countdown=2 ** self.request.retries) from error
    logger.info("run_import(%s) took %.2fs", import_id, time.monotonic() - started)
