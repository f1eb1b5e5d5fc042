"""A video whose ingest worker dies is restarted by beat within minutes, then failed with a
reason; it never sits in its stage until the broker's visibility timeout."""

import signal
import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from labeller.media.ingest import ingest_runs_recover_stalled
from labeller.media.models import IngestStage, Video
from tests.celery_worker import filesystem_broker_options, publishing_to, running_worker, wait_for, worker_env
from tests.factories import VideoFactory
from tests.workers.test_real_worker import upload_video
from workers.celery import _visibility_timeout_of_the_queues_served
from workers.maintenance import INGEST_SILENT_S, check_ingest_runs

SILENT = timedelta(seconds=INGEST_SILENT_S)


def running_video(project, *, stage=IngestStage.SCANNING, beat_ago: timedelta | None = timedelta(minutes=10)):
    return VideoFactory(
        project=project,
        stage=stage,
        ingest_token=uuid.uuid4(),
        ingest_heartbeat_at=None if beat_ago is None else timezone.now() - beat_ago,
    )


@pytest.mark.django_db
def test_a_silent_run_is_restarted_once_then_failed_with_a_reason(tenant, django_capture_on_commit_callbacks):
    video = running_video(tenant.project)
    first_token = video.ingest_token

    with mock.patch("labeller.media.ingest.enqueue") as enqueue:
        with django_capture_on_commit_callbacks(execute=True):
            recovered = ingest_runs_recover_stalled(silent_for=SILENT)

    assert recovered.restarted == [video.pk] and recovered.failed == []
    video.refresh_from_db()
    assert (video.stage, video.ingest_recoveries, video.ingest_heartbeat_at) == (IngestStage.PROBING, 1, None)
    assert video.ingest_token != first_token  # the dead stage's redelivered message stops at once
    enqueue.assert_called_once_with("workers.ingest.probe_video", video.pk, str(video.ingest_token))

    # The restarted run dies too, in another stage.
    Video.objects.filter(pk=video.pk).update(
        stage=IngestStage.FRAMES, ingest_heartbeat_at=timezone.now() - timedelta(minutes=6)
    )
    assert ingest_runs_recover_stalled(silent_for=SILENT).failed == [video.pk]
    video.refresh_from_db()
    assert video.stage == IngestStage.FAILED
    assert "went silent while writing frames, again after a restart. Reingest" in video.error


@pytest.mark.django_db
@pytest.mark.parametrize(
    "stage,beat_ago",
    [
        (IngestStage.SCANNING, timedelta(seconds=30)),  # beating
        (IngestStage.KEYFRAMES, None),  # waiting in the queue, not yet started
        (IngestStage.READY, timedelta(hours=2)),
        (IngestStage.FAILED, timedelta(hours=2)),
    ],
    ids=["beating", "queued", "ready", "failed"],
)
def test_runs_that_are_alive_queued_or_over_are_left_alone(tenant, stage, beat_ago):
    video = running_video(tenant.project, stage=stage, beat_ago=beat_ago)
    with mock.patch("labeller.media.ingest.enqueue") as enqueue:
        recovered = ingest_runs_recover_stalled(silent_for=SILENT)
    assert recovered.restarted == recovered.failed == []
    assert Video.objects.get(pk=video.pk).stage == stage
    enqueue.assert_not_called()


@pytest.mark.parametrize(
    "queues,timeout,key",
    [
        (["interactive"], 600, "unacked:interactive"),
        ("bulk", 3600, "unacked:bulk"),
        (["training"], 6 * 3600, "unacked:training"),
        (["interactive", "bulk"], 3600, "unacked:bulk,interactive"),
    ],
)
def test_each_worker_takes_the_visibility_timeout_of_its_queues_and_its_own_unacked_list(
    queues, timeout, key, settings
):
    settings.TASK_VISIBILITY_TIMEOUTS = {"interactive": 600, "bulk": 3600, "training": 6 * 3600}
    conf = mock.Mock(broker_transport_options={"visibility_timeout": 3600, "socket_connect_timeout": 2})
    _visibility_timeout_of_the_queues_served(conf=conf, options={"queues": queues})
    options = conf.update.call_args.kwargs["CELERY_BROKER_TRANSPORT_OPTIONS"]
    assert options["visibility_timeout"] == timeout
    assert (options["unacked_key"], options["unacked_index_key"]) == (key, key + ":index")
    assert options["socket_connect_timeout"] == 2


def test_the_filesystem_broker_keeps_its_options():
    conf = mock.Mock(broker_transport_options={"data_folder_in": "/x"})
    _visibility_timeout_of_the_queues_served(conf=conf, options={"queues": ["bulk"]})
    conf.update.assert_not_called()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_ingest_is_noticed_by_beat_and_the_video_completes(tenant, tmp_path, settings):
    from tests.pipeline import make_synthetic

    # The embedded broker forgets a message once a worker took it: a killed worker's stage is
    # never redelivered, so only beat can bring the video back.
    env = worker_env(tmp_path, "filesystem://", settings)
    synthetic = make_synthetic(tmp_path, seconds=20, width=640, height=360, n_shots=3, seed=9)
    log = tmp_path / "worker.log"
    with publishing_to("filesystem://", filesystem_broker_options(tmp_path)):
        with running_worker(env, log, "bulk") as first:
            video = upload_video(tenant, synthetic)
            # The stage turns to scanning when the probe hands over, and the scan beats when it
            # starts: kill the worker once it is scanning, not while the scan waits in the queue.
            wait_for(
                lambda: Video.objects.filter(
                    pk=video.pk, stage=IngestStage.SCANNING, ingest_heartbeat_at__isnull=False
                ).exists(),
                timeout=90, log=log, what="the scan to start",
            )
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        stuck = Video.objects.get(pk=video.pk)
        assert stuck.stage == IngestStage.SCANNING and stuck.ingest_heartbeat_at is not None

        assert check_ingest_runs() == {"restarted": [], "failed": []}  # silent for seconds only
        later = (timezone.now() + SILENT + timedelta(seconds=1)).isoformat()
        assert check_ingest_runs(now=later) == {"restarted": [video.pk], "failed": []}

        with running_worker(env, log, "bulk"):
            wait_for(
                lambda: Video.objects.get(pk=video.pk).stage in (IngestStage.READY, IngestStage.FAILED),
                timeout=180, log=log, what="the restarted ingest",
            )
    video.refresh_from_db()
    assert video.stage == IngestStage.READY, video.error
    assert video.ingest_heartbeat_at is None and video.ingest_recoveries == 1
