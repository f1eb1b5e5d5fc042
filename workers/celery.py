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

from celery import Celery

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
    "workers.training.train_detector_run": {"queue": TRAINING},
    "workers.training.check_training_runs": {"queue": INTERACTIVE},
    "workers.training.*": {"queue": BULK},
    "workers.exports.*": {"queue": BULK},
    "workers.maintenance.delete_abandoned_uploads": {"queue": BULK},
    "workers.maintenance.*": {"queue": INTERACTIVE},
}
app.conf.imports = ("workers.maintenance", "workers.ingest", "workers.proposals", "workers.training", "workers.exports")


def _ensure_filesystem_broker_folders() -> None:
    # kombu's filesystem transport expects its folders to exist.
    for folder in (app.conf.broker_transport_options or {}).values():
        if isinstance(folder, str) and os.sep in folder:
            os.makedirs(folder, exist_ok=True)


_ensure_filesystem_broker_folders()
