"""A real Celery worker process runs the tasks: on the embedded filesystem broker and on
Redis, including a worker killed in the middle of a task."""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from django.db import connection

from labeller.annotations.models import Annotation, AnnotationStatus
from labeller.media.models import Frame, IngestStage, Video
from tests.conftest import api_path
from tests.pipeline import make_synthetic
from workers.celery import app

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def worker_env(tmp_path: Path, broker_url: str, settings) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "labeller.settings.dev",
        "LABELLER_DATA_DIR": str(tmp_path / "worker-var"),
        "LABELLER_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "LABELLER_FEATURE_WEIGHTS": "none",
        "CELERY_BROKER_URL": broker_url,
        "LABELLER_TASK_VISIBILITY_TIMEOUT": "5",
        "PYTHONUNBUFFERED": "1",
    }
    database = connection.settings_dict
    if database["ENGINE"].endswith("sqlite3"):
        env["LABELLER_SQLITE_PATH"] = database["NAME"]
        env.pop("DATABASE_URL", None)
    else:
        env["DATABASE_URL"] = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    return env


@contextmanager
def running_worker(env: dict, log: Path):
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.celery", "worker", "--concurrency=1", "--pool=solo",
         "-Q", "default,ingest,gpu", "--loglevel=INFO", "--without-heartbeat", "--without-mingle", "--without-gossip"],
        cwd=REPO, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@contextmanager
def publishing_to(broker_url: str, transport_options: dict):
    """Point this test process's Celery app at the worker's broker, then back."""
    # The app reads Django's CELERY_* names (namespace "CELERY"), so override those; the
    # cached connection pools must go too, or publishing keeps the old broker.
    saved = (app.conf.broker_url, app.conf.broker_transport_options)
    app.conf.update(CELERY_BROKER_URL=broker_url, CELERY_BROKER_TRANSPORT_OPTIONS=transport_options)
    app._pool, app.amqp._producer_pool = None, None
    try:
        yield
    finally:
        app.conf.update(CELERY_BROKER_URL=saved[0], CELERY_BROKER_TRANSPORT_OPTIONS=saved[1])
        app._pool, app.amqp._producer_pool = None, None


def wait_for(predicate, *, timeout: float, log: Path, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{log.read_text()[-4000:]}")


def upload_video(tenant, synthetic) -> Video:
    with synthetic.path.open("rb") as handle:
        response = tenant.client("admin").post(
            api_path(tenant, f"projects/{tenant.project.pk}/videos/"), {"file": handle}, format="multipart"
        )
    assert response.status_code == 201, response.content
    return Video.objects.get(pk=response.json()["id"])


def test_the_embedded_default_ingests_and_proposes_in_a_real_worker(tenant, tmp_path, settings):
    env = worker_env(tmp_path, "filesystem://", settings)
    # The worker's settings build its broker folders from LABELLER_DATA_DIR; publish there too.
    options = {key: str(tmp_path / "worker-var" / "celery" / "queue") for key in ("data_folder_in", "data_folder_out")}
    options["processed_folder"] = str(tmp_path / "worker-var" / "celery" / "processed")
    options["store_processed"] = False
    Path(options["data_folder_in"]).mkdir(parents=True)
    synthetic = make_synthetic(tmp_path, seconds=4, n_shots=2, seed=5)
    log = tmp_path / "worker.log"
    with publishing_to("filesystem://", options), running_worker(env, log):
        video = upload_video(tenant, synthetic)
        wait_for(lambda: Video.objects.get(pk=video.pk).stage in (IngestStage.READY, IngestStage.FAILED), timeout=120, log=log, what="ingest")
        video.refresh_from_db()
        assert video.stage == IngestStage.READY, video.error
        assert Frame.objects.filter(video=video, is_keyframe=True).count() >= 2
        # After ingest the worker proposes regions on every frame, still in the background.
        frames = Frame.objects.filter(video=video).count()
        wait_for(
            lambda: Annotation.objects.filter(frame__video=video, status=AnnotationStatus.PROPOSED).values("frame").distinct().count() == frames,
            timeout=120, log=log, what="proposals on every frame",
        )


def redis_url() -> str:
    url = os.environ.get("LABELLER_TEST_REDIS_URL")
    if not url:
        pytest.fail("LABELLER_TEST_REDIS_URL is not set: scripts/test sets it when Redis answers on 127.0.0.1:6379")
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.mark.redis
def test_a_worker_killed_mid_task_loses_nothing_on_redis(tenant, tmp_path, settings):
    url = redis_url()
    env = worker_env(tmp_path, url, settings)
    synthetic = make_synthetic(tmp_path, seconds=20, width=640, height=360, n_shots=3, seed=9)
    log = tmp_path / "worker.log"
    with publishing_to(url, {"visibility_timeout": 5}):
        with running_worker(env, log) as first:
            video = upload_video(tenant, synthetic)
            wait_for(lambda: Video.objects.get(pk=video.pk).stage == IngestStage.SCANNING, timeout=90, log=log, what="the scan to start")
            first.send_signal(signal.SIGKILL)  # no goodbye: the task is neither acked nor finished
            first.wait(timeout=10)
        assert Video.objects.get(pk=video.pk).stage == IngestStage.SCANNING
        with running_worker(env, log):
            # The unacknowledged task comes back after the visibility timeout and completes.
            wait_for(lambda: Video.objects.get(pk=video.pk).stage in (IngestStage.READY, IngestStage.FAILED), timeout=180, log=log, what="the redelivered ingest")
    video.refresh_from_db()
    assert video.stage == IngestStage.READY, video.error
    indexes = list(Frame.objects.filter(video=video).values_list("index", flat=True))
    assert len(indexes) == len(set(indexes)) > 0  # no duplicate frames from the retried stage
