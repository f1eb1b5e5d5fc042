from celery import current_app
from django.conf import settings

from workers import ingest, proposals
from workers.celery import app


def test_tasks_are_bound_to_the_projects_app_and_broker():
    # Celery's default app would publish to amqp://localhost instead of the configured broker.
    assert ingest.probe_video.app is app and proposals.sync_index.app is app
    assert current_app.conf.broker_url == settings.CELERY_BROKER_URL


def test_each_kind_of_work_has_its_queue():
    routes = app.conf.task_routes
    assert routes["workers.ingest.*"]["queue"] == "ingest"
    assert routes["workers.proposals.*"]["queue"] == "gpu"
