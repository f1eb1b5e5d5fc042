"""Task latency per queue, measured with Celery's signals in the processes that do the work.

- ``before_task_publish`` (in whichever process sends: web, beat, a worker) stamps the message
  with the wall-clock time it was sent and the queue it goes to;
- ``task_prerun`` (in the worker) observes the wait, from that stamp (or from the task's ETA,
  when it was deliberately delayed) to the start, in ``labeller_task_queue_wait_seconds``;
- ``task_postrun`` observes the run time in ``labeller_task_run_seconds`` and counts the
  finished task by its state in ``labeller_tasks_finished``.

All three are labelled by queue and task name (a fixed set: the registered tasks). They live
in the worker processes, so they reach /metrics through prometheus_client's multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, shared by the web server and the workers: see
``labeller.core.metric_files``). Without it they stay in the worker and /metrics shows none.
The wait compares clocks of two processes, perhaps two machines: keep them in NTP sync.

Imported by ``workers.celery``, so every process with the Celery app has the handlers.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

from celery import signals

SENT_AT_HEADER = "labeller_sent_at"
QUEUE_HEADER = "labeller_queue"
# Seconds: an interactive task should start within a second; bulk work may wait an hour.
WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, float("inf"))
RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, float("inf"))

_lock = threading.Lock()
_metrics = None
_started: dict[str, float] = {}  # task id -> monotonic start, in this process


def task_metrics():
    """The histograms, made on first use: by then the settings have chosen how metric files
    are named (multiprocess mode), which must happen before any metric exists."""
    global _metrics
    with _lock:
        if _metrics is None:
            from prometheus_client import Counter, Histogram

            labels = ["queue", "task"]
            _metrics = (
                Histogram("labeller_task_queue_wait_seconds", "Time from publishing a task to its start, by queue.",
                          labels, buckets=WAIT_BUCKETS),
                Histogram("labeller_task_run_seconds", "Run time of tasks, by queue.", labels, buckets=RUN_BUCKETS),
                Counter("labeller_tasks_finished", "Tasks finished, by queue and state (SUCCESS, FAILURE, RETRY...).",
                        [*labels, "state"]),
            )
        return _metrics


@signals.before_task_publish.connect
def _stamp_sent_at(headers=None, routing_key=None, declare=None, **kwargs) -> None:
    if headers is None:
        return
    headers[SENT_AT_HEADER] = time.time()
    queue = declare[0].name if declare else routing_key
    if queue:
        headers[QUEUE_HEADER] = queue


def _header(request, name):
    value = getattr(request, name, None)  # a worker's request carries the message's headers
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(name)  # Task.apply(headers=...)
    return value


def _queue(request) -> str:
    delivery = getattr(request, "delivery_info", None) or {}
    return delivery.get("routing_key") or _header(request, QUEUE_HEADER) or "unknown"


def _eta_timestamp(request) -> float | None:
    eta = getattr(request, "eta", None)
    if not eta:
        return None
    try:
        return (eta if isinstance(eta, datetime) else datetime.fromisoformat(eta)).timestamp()
    except (TypeError, ValueError):
        return None


@signals.task_prerun.connect
def _task_started(task_id=None, task=None, **kwargs) -> None:
    if task is None or task_id is None:
        return
    _started[task_id] = time.monotonic()
    sent_at = _header(task.request, SENT_AT_HEADER)
    if sent_at is None:
        return  # published by something without the handler (or run eagerly): no honest wait
    due = max(float(sent_at), _eta_timestamp(task.request) or 0.0)
    wait, _, _ = task_metrics()
    wait.labels(_queue(task.request), task.name).observe(max(0.0, time.time() - due))


@signals.task_postrun.connect
def _task_finished(task_id=None, task=None, state=None, **kwargs) -> None:
    started = _started.pop(task_id, None)
    if task is None or started is None:
        return
    _, run, finished = task_metrics()
    queue = _queue(task.request)
    run.labels(queue, task.name).observe(time.monotonic() - started)
    finished.labels(queue, task.name, state or "unknown").inc()
