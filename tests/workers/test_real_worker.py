"""A real Celery worker process runs the tasks: on the embedded filesystem broker and on
Redis, including a worker killed in the middle of a task."""

import os
import signal
import time

import pytest
import redis

from labeller.annotations.models import Annotation, AnnotationStatus
from labeller.media.models import Frame, IngestStage, Video
from tests.celery_worker import filesystem_broker_options, publishing_to, running_worker, wait_for, worker_env
from tests.conftest import api_path
from tests.pipeline import make_synthetic

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def upload_video(tenant, synthetic) -> Video:
    with synthetic.path.open("rb") as handle:
        response = tenant.client("admin").post(
            api_path(tenant, f"projects/{tenant.project.pk}/videos/"), {"file": handle}, format="multipart"
        )
    assert response.status_code == 201, response.content
    return Video.objects.get(pk=response.json()["id"])


def test_the_embedded_default_ingests_and_proposes_in_a_real_worker(tenant, tmp_path, settings):
    env = worker_env(tmp_path, "filesystem://", settings)
    options = filesystem_broker_options(tmp_path)
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


def test_on_the_embedded_default_an_interactive_task_starts_well_within_a_second(tenant, tmp_path, settings):
    """kombu's filesystem transport polls; with its defaults (1 s, prefork pool) a worker ran
    about one task a second and a steady trickle of clicks queued up without end. The pool is
    left to the settings, as in scripts/run."""
    from datetime import datetime

    from labeller.core.tasks import publish

    env = worker_env(tmp_path, "filesystem://", settings)
    log = tmp_path / "worker.log"
    sent = []
    with publishing_to("filesystem://", filesystem_broker_options(tmp_path)), running_worker(env, log, "interactive", pool=None):
        publish("workers.maintenance.enqueue_overdue_index_syncs")
        wait_for(lambda: "enqueue_overdue_index_syncs[" in log.read_text(), timeout=60, log=log, what="the worker to start")
        for _ in range(20):
            sent.append(time.time())
            publish("workers.maintenance.enqueue_overdue_index_syncs")
            time.sleep(0.25)
        wait_for(lambda: log.read_text().count(" succeeded in ") >= 21, timeout=60, log=log, what="every task")
    done = [
        datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for line in log.read_text().splitlines() if " succeeded in " in line
    ][1:]
    latencies = sorted(d - s for d, s in zip(done, sent))  # enqueue to done: the tasks take ms
    assert latencies[int(0.95 * len(latencies))] < 0.5, latencies
