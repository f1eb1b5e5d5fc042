"""A video whose ingest worker dies is restarted by beat within minutes, then failed with a
reason; it never sits in its stage until the broker's visibility timeout. A stage whose message
was lost is sent again, and a stage runs once however many copies of its message arrive."""

import signal
import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from labeller.media import ingest
from labeller.media.ingest import ingest_runs_recover_stalled, ingest_stages_resend_waiting
from labeller.media.models import IngestStage, Video
from tests.celery_worker import filesystem_broker_options, publishing_to, running_worker, wait_for, worker_env
from tests.factories import VideoFactory
from tests.workers.test_real_worker import upload_video
from workers.celery import _visibility_timeout_of_the_queues_served
from workers.ingest import probe_video
from workers.maintenance import INGEST_QUEUED_OVERDUE_S, INGEST_SILENT_S, check_ingest_runs

SILENT = timedelta(seconds=INGEST_SILENT_S)
OVERDUE = timedelta(seconds=INGEST_QUEUED_OVERDUE_S)


def running_video(
    project, *, stage=IngestStage.SCANNING, beat_ago: timedelta | None = timedelta(minutes=10),
    sent_ago: timedelta | None = None,
):
    return VideoFactory(
        project=project,
        stage=stage,
        ingest_token=uuid.uuid4(),
        ingest_heartbeat_at=None if beat_ago is None else timezone.now() - beat_ago,
        ingest_enqueued_at=None if sent_ago is None else timezone.now() - sent_ago,
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

        assert check_ingest_runs() == {"restarted": [], "failed": [], "resent": []}  # silent for seconds only
        later = (timezone.now() + SILENT + timedelta(seconds=1)).isoformat()
        assert check_ingest_runs(now=later) == {"restarted": [video.pk], "failed": [], "resent": []}

        with running_worker(env, log, "bulk"):
            wait_for(
                lambda: Video.objects.get(pk=video.pk).stage in (IngestStage.READY, IngestStage.FAILED),
                timeout=180, log=log, what="the restarted ingest",
            )
    video.refresh_from_db()
    assert video.stage == IngestStage.READY, video.error
    assert video.ingest_heartbeat_at is None and video.ingest_recoveries == 1


@pytest.mark.django_db
def test_a_stage_no_worker_started_is_sent_again_once_per_wait(tenant):
    lost = running_video(tenant.project, stage=IngestStage.KEYFRAMES, beat_ago=None, sent_ago=OVERDUE * 1.1)
    waiting = running_video(tenant.project, stage=IngestStage.FRAMES, beat_ago=None, sent_ago=OVERDUE / 10)
    running_video(tenant.project, stage=IngestStage.SCANNING, beat_ago=timedelta(seconds=5), sent_ago=OVERDUE * 2)
    running_video(tenant.project, stage=IngestStage.READY, beat_ago=None, sent_ago=OVERDUE * 2)

    with mock.patch("labeller.media.ingest.enqueue") as enqueue:
        assert ingest_stages_resend_waiting(waiting_for=OVERDUE) == [lost.pk]
        enqueue.assert_called_once_with("workers.ingest.select_keyframes", lost.pk, str(lost.ingest_token))
        # Sent again now: the next round waits its own while before sending another copy.
        assert ingest_stages_resend_waiting(waiting_for=OVERDUE) == []
        later = timezone.now() + OVERDUE + timedelta(seconds=1)
        assert ingest_stages_resend_waiting(waiting_for=OVERDUE, now=later) == [lost.pk, waiting.pk]
    assert enqueue.call_count == 3


@pytest.mark.django_db
def test_a_run_restarted_by_a_round_is_not_sent_again_by_the_same_round(tenant, django_capture_on_commit_callbacks):
    # A round given its time (a replay) restarts the silent run at that time, and its second
    # step must not take the probe it has just sent for one that waited too long.
    video = running_video(tenant.project)
    later = timezone.now() + timedelta(hours=1)

    with mock.patch("labeller.media.ingest.enqueue") as enqueue:
        with django_capture_on_commit_callbacks(execute=True):
            outcome = check_ingest_runs(later.isoformat())

    assert outcome == {"restarted": [video.pk], "failed": [], "resent": []}
    enqueue.assert_called_once()
    video.refresh_from_db()
    assert video.stage == IngestStage.PROBING and video.ingest_enqueued_at == later


@pytest.mark.django_db
def test_a_stage_runs_once_however_many_copies_of_its_message_arrive(tenant, tmp_path):
    from tests.pipeline import make_synthetic

    synthetic = make_synthetic(tmp_path)
    with mock.patch("labeller.media.ingest.enqueue") as enqueue:
        video = ingest.video_create_from_file(
            project=tenant.project, actor=tenant.admin, path=synthetic.path, original_name="a.mp4"
        )
        token = str(video.ingest_token)
        ingest.ingest_probe(video_id=video.pk, token=token)
        ingest.ingest_probe(video_id=video.pk, token=token)  # beat's copy, arriving late
    assert [c.args[0] for c in enqueue.call_args_list] == ["workers.ingest.probe_video", "workers.ingest.scan_video"]
    video.refresh_from_db()
    assert (video.stage, video.ingest_heartbeat_at) == (IngestStage.SCANNING, None)

    # A copy of the scan's message while the scan runs (it beat) stops before any work.
    Video.objects.filter(pk=video.pk).update(ingest_heartbeat_at=timezone.now())
    with mock.patch("labeller.media.ingest.scan_video", side_effect=AssertionError("scanned twice")):
        ingest.ingest_scan(video_id=video.pk, token=token, embed=None)
    assert Video.objects.get(pk=video.pk).stage == IngestStage.SCANNING


@pytest.mark.django_db
def test_a_stage_that_failed_for_a_passing_reason_is_retried_and_goes_on(tenant, tmp_path):
    from labeller.media.video import probe_video as real_probe
    from tests.pipeline import make_synthetic

    synthetic = make_synthetic(tmp_path)
    with mock.patch("labeller.media.ingest.enqueue"):
        video = ingest.video_create_from_file(
            project=tenant.project, actor=tenant.admin, path=synthetic.path, original_name="a.mp4"
        )
        attempts = []

        def probe_once_failing(path, **options):
            attempts.append(path)
            if len(attempts) == 1:
                raise OSError("storage hiccup")
            return real_probe(path, **options)

        # The first attempt claims the stage and fails; its retry, another message, must claim it again.
        with mock.patch("labeller.media.ingest.probe_video", side_effect=probe_once_failing):
            probe_video.apply(args=(video.pk, str(video.ingest_token)))
    assert len(attempts) == 2
    video.refresh_from_db()
    assert (video.stage, video.error) == (IngestStage.SCANNING, "")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_video_uploaded_while_the_broker_was_down_is_ingested_once_beat_sends_its_stage_again(
    tenant, tmp_path, settings
):
    from tests.pipeline import make_synthetic

    env = worker_env(tmp_path, "filesystem://", settings)
    synthetic = make_synthetic(tmp_path, seconds=4, n_shots=2, seed=5)
    log = tmp_path / "worker.log"
    with publishing_to("filesystem://", filesystem_broker_options(tmp_path)):
        with mock.patch("labeller.core.tasks.current_app.send_task", side_effect=OSError("broker unreachable")):
            video = upload_video(tenant, synthetic)  # kept, its first stage's message lost
        with running_worker(env, log, "bulk"):
            assert check_ingest_runs()["resent"] == []  # waiting minutes only
            later = (timezone.now() + OVERDUE + timedelta(seconds=1)).isoformat()
            assert check_ingest_runs(now=later) == {"restarted": [], "failed": [], "resent": [video.pk]}
            wait_for(
                lambda: Video.objects.get(pk=video.pk).stage in (IngestStage.READY, IngestStage.FAILED),
                timeout=120, log=log, what="the ingest sent again",
            )
    video.refresh_from_db()
    assert video.stage == IngestStage.READY, video.error
    assert video.ingest_recoveries == 0
