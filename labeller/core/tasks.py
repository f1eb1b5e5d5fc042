"""The domain's one way to start background work: enqueue a Celery task by name.

``labeller/`` never imports ``workers/`` (an import-linter contract keeps it so): it names
the task, and the routes in ``workers.celery`` pick its queue. Publishing happens after
the surrounding transaction commits, never before, and never turns a committed write into
an error: a broker that is down or slow is logged and the call returns. The work is not
lost because every caller keeps its own record of what is wanted (the index's pending-sync
mark, a video's ingest stage, a frame's stale proposals) and beat or the next request
enqueues it again (see ``workers.maintenance``).
"""

from __future__ import annotations

import logging

from celery import current_app
from django.db import transaction

logger = logging.getLogger(__name__)

# Bounded: an unreachable broker costs a request at most about a second, not a hang.
PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}


def enqueue(task_name: str, *args, queue: str | None = None) -> None:
    """Send ``task_name(*args)`` once the current transaction commits (at once outside one).

    ``args`` are ids and plain values. ``queue`` overrides the task's route.
    """
    transaction.on_commit(lambda: publish(task_name, *args, queue=queue))


def publish(task_name: str, *args, queue: str | None = None) -> bool:
    """Send now; False (logged) when the broker refused. For callers outside a request's
    transaction, e.g. beat re-sending work its record says is still wanted."""
    options = {"queue": queue} if queue else {}
    try:
        current_app.send_task(task_name, args=args, retry=True, retry_policy=PUBLISH_RETRY_POLICY, **options)
    except Exception:  # kombu's OperationalError, OSError, ...: whatever the broker raised
        logger.exception("could not enqueue %s%r; it stays recorded and is sent again later", task_name, args)
        return False
    return True
