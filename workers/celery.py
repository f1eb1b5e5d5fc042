"""The Celery app. Workers use the GPU when one is there and the CPU otherwise.

Two kinds of work, two queues, separate worker processes, so bulk work never delays a
person:

* ``interactive``: what someone is waiting for: the project's index sync (coalesced, at
  most one pending per project) and the proposals of the frames about to be opened.
* ``bulk``: whole-video proposals, the ingest stages, evaluation reports.
* ``training``: retraining runs, minutes each, on the GPU worker where there is one.

Embedded default: kombu's filesystem broker under var/celery (no server needed).
Production: CELERY_BROKER_URL or REDIS_URL pointing at Redis. Add capacity by starting
more workers (``-Q interactive``, ``-Q bulk`` or ``-Q training``) on more machines.
"""

import os

from celery import Celery, signals

import labeller.core.task_metrics  # noqa: F401  (task latency per queue, from Celery's signals)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeller.settings.dev")

INTERACTIVE = "interactive"
BULK = "bulk"
TRAINING = "training"

app = Celery("labeller")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Exact names win over patterns, whatever their order.
app.conf.task_routes = {
    "workers.proposals.propose_video": {"queue": BULK},
    "workers.proposals.propose_stills": {"queue": BULK},
    "workers.proposals.repropose_stale": {"queue": BULK},
    "workers.proposals.*": {"queue": INTERACTIVE},
    "workers.ingest.*": {"queue": BULK},
    "workers.training.train_run": {"queue": TRAINING},
    "workers.training.check_training_runs": {"queue": INTERACTIVE},
    "workers.training.*": {"queue": BULK},
    "workers.exports.*": {"queue": BULK},
    "workers.imports.*": {"queue": BULK},
    "workers.maintenance.delete_abandoned_uploads": {"queue": BULK},
    "workers.maintenance.*": {"queue": INTERACTIVE},
}
app.conf.imports = ("workers.maintenance", "workers.ingest", "workers.proposals", "workers.training", "workers.exports", "workers.imports")


@signals.celeryd_init.connect
def _visibility_timeout_of_the_queues_served(conf=None, options=None, **kwargs) -> None:
    """On Redis, give this worker the visibility timeout of the queues it serves.

    Kombu keeps one list of unacknowledged tasks per key and every worker redelivers the
    entries older than its own timeout, whatever their queue; so each set of queues keeps its
    own list, or an interactive worker's 10 minutes would redeliver a bulk task still running.
    """
    from django.conf import settings

    transport_options = dict(conf.broker_transport_options or {})
    if "visibility_timeout" not in transport_options:
        return  # the filesystem broker has no visibility timeout
    queues = (options or {}).get("queues") or [conf.task_default_queue]
    queues = sorted(set(queues.split(",") if isinstance(queues, str) else queues))
    timeouts = settings.TASK_VISIBILITY_TIMEOUTS
    key = "unacked:" + ",".join(queues)
    transport_options.update(
        visibility_timeout=max(timeouts.get(queue, timeouts[BULK]) for queue in queues),
        unacked_key=key,
        unacked_index_key=key + ":index",
        unacked_mutex_key=key + ":mutex",
    )
    conf.update(CELERY_BROKER_TRANSPORT_OPTIONS=transport_options)


def _ensure_filesystem_broker_folders() -> None:
    # kombu's filesystem transport expects its folders to exist.
    for folder in (app.conf.broker_transport_options or {}).values():
        if isinstance(folder, str) and os.sep in folder:
            os.makedirs(folder, exist_ok=True)


_ensure_filesystem_broker_folders()
