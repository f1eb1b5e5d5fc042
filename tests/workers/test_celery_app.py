import pytest
from celery import current_app
from django.conf import settings

from workers import ingest, proposals
from workers.celery import BULK, INTERACTIVE, TRAINING, app


def test_tasks_are_bound_to_the_projects_app_and_broker():
    # Celery's default app would publish to amqp://localhost instead of the configured broker.
    assert ingest.probe_video.app is app and proposals.sync_index.app is app
    assert current_app.conf.broker_url == settings.CELERY_BROKER_URL


@pytest.mark.parametrize(
    ("task_name", "queue"),
    [
        ("workers.proposals.sync_index", INTERACTIVE),
        ("workers.proposals.sync_index_then_refresh_next", INTERACTIVE),
        ("workers.proposals.refresh_frame_proposals", INTERACTIVE),
        ("workers.maintenance.enqueue_overdue_index_syncs", INTERACTIVE),
        ("workers.maintenance.release_expired_assignments", INTERACTIVE),
        ("workers.proposals.propose_video", BULK),
        ("workers.proposals.repropose_stale", BULK),
        ("workers.ingest.probe_video", BULK),
        ("workers.ingest.scan_video", BULK),
        ("workers.training.evaluate_embeddings", BULK),
        ("workers.training.train_run", TRAINING),
        ("workers.training.build_embedding_index", BULK),
        ("workers.training.check_training_runs", INTERACTIVE),
        ("workers.maintenance.delete_abandoned_uploads", BULK),
        ("workers.something_new", BULK),
    ],
)
def test_people_wait_only_on_the_interactive_queue(task_name, queue):
    route = app.amqp.router.route({}, task_name)
    assert route["queue"].name == queue


def test_every_scheduled_task_exists():
    app.loader.import_default_modules()
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks, entry["task"]
