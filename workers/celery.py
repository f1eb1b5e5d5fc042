"""The Celery app. Workers use the GPU when one is there and the CPU otherwise.

Embedded default: kombu's filesystem broker under var/celery (no server needed).
Production: CELERY_BROKER_URL or REDIS_URL pointing at Redis. Add capacity by starting
more workers on more machines; there is no other queue or scheduler.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeller.settings.dev")

app = Celery("labeller")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_routes = {
    "workers.ingest.*": {"queue": "ingest"},
    "workers.proposals.*": {"queue": "gpu"},
    "workers.training.*": {"queue": "gpu"},
}
app.conf.imports = ("workers.maintenance", "workers.ingest", "workers.proposals", "workers.training")


def _ensure_filesystem_broker_folders() -> None:
    # kombu's filesystem transport expects its folders to exist.
    for folder in (app.conf.broker_transport_options or {}).values():
        if isinstance(folder, str) and os.sep in folder:
            os.makedirs(folder, exist_ok=True)


_ensure_filesystem_broker_folders()
