"""Retraining in a real Celery worker on the training queue: a run trains end to end, an
admin can cancel one mid-run, and a worker killed mid-run leaves no run stuck."""

import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from labeller.training import runs
from labeller.training.models import ProjectLearning, RunState, TrainingRun
from tests.celery_worker import filesystem_broker_options, publishing_to, running_worker, wait_for, worker_env
from tests.conftest import api_path
from tests.training_data import labelled_frames

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def training_worker(tmp_path, settings, epochs: int):
    """A training worker's environment; runs started from here last ``epochs`` epochs (a run
    takes its length from the settings of whoever starts it)."""
    settings.LABELLER = {**settings.LABELLER, "TRAINING_EPOCHS": epochs, "TRAINING_MAX_EPOCHS": epochs}
    env = {**worker_env(tmp_path, "filesystem://", settings), "LABELLER_DETECTOR_MAX_SIDE": "96", "OMP_NUM_THREADS": "1"}
    return env, filesystem_broker_options(tmp_path)


def start(tenant) -> TrainingRun:
    response = tenant.client("admin").post(api_path(tenant, f"projects/{tenant.project.pk}/training-runs/"))
    assert response.status_code == 202, response.content
    return TrainingRun.objects.get(pk=response.json()["id"])


def state(run) -> str:
    return TrainingRun.objects.get(pk=run.pk).state


def test_a_run_trains_in_the_training_worker_and_is_promoted(tenant, tmp_path, settings):
    labelled_frames(tenant.project, 12)
    env, options = training_worker(tmp_path, settings, epochs=20)
    log = tmp_path / "worker.log"
    with publishing_to("filesystem://", options), running_worker(env, log, queues="training"):
        run = start(tenant)
        wait_for(lambda: state(run) not in (RunState.QUEUED, RunState.RUNNING), timeout=180, log=log, what="the run")
    run.refresh_from_db()
    assert run.state == RunState.SUCCEEDED, run.error
    assert len(run.loss_curve) == 20 and run.metrics["val_frames"] == len(run.val_frame_ids) > 0
    assert ProjectLearning.objects.get(project=tenant.project).current_run_id == run.pk


def test_an_admin_cancels_a_run_mid_training(tenant, tmp_path, settings):
    labelled_frames(tenant.project, 12)
    env, options = training_worker(tmp_path, settings, epochs=500)
    log = tmp_path / "worker.log"
    with publishing_to("filesystem://", options), running_worker(env, log, queues="training"):
        run = start(tenant)
        wait_for(lambda: TrainingRun.objects.get(pk=run.pk).epochs_done >= 1, timeout=120, log=log, what="an epoch")
        response = tenant.client("admin").post(api_path(tenant, f"training-runs/{run.pk}/cancel"))
        assert response.status_code == 200 and response.json()["cancel_requested"]
        wait_for(lambda: state(run) == RunState.CANCELLED, timeout=60, log=log, what="the run to stop")
    run.refresh_from_db()
    assert run.epochs_done < 500 and run.promoted_at is None and run.finished_at
    assert not ProjectLearning.objects.filter(project=tenant.project, current_run__isnull=False).exists()


def test_a_killed_training_worker_leaves_the_run_failed_not_running(tenant, tmp_path, settings):
    labelled_frames(tenant.project, 12)
    env, options = training_worker(tmp_path, settings, epochs=500)
    log = tmp_path / "worker.log"
    with publishing_to("filesystem://", options), running_worker(env, log, queues="training") as worker:
        run = start(tenant)
        wait_for(lambda: TrainingRun.objects.get(pk=run.pk).epochs_done >= 1, timeout=120, log=log, what="an epoch")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    assert state(run) == RunState.RUNNING
    # Beat's check, as it runs once the heartbeat has been silent for long enough.
    later = timezone.now() + runs.STALLED_AFTER + timedelta(seconds=1)
    assert runs.training_runs_fail_stalled(now=later) == [run.pk]
    run.refresh_from_db()
    assert run.state == RunState.FAILED and "no heartbeat" in run.error
    assert start(tenant).state == RunState.QUEUED  # the project can train again
