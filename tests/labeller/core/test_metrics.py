"""/metrics: off by default, not public when on, and the app's own figures from the database."""

import os

import pytest
import redis
from celery import signals
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from labeller.core import metrics, task_metrics
from labeller.core.tasks import publish
from labeller.media.models import IngestStage
from labeller.training.models import ProjectIndex, ProposalOutcome, RunKind, RunState, TrainingRun
from tests.celery_worker import filesystem_broker_options, publishing_to
from tests.factories import FrameFactory, LabelFactory, ProjectFactory, VideoFactory
from workers.celery import app
from workers.maintenance import check_exports

TOKEN = "test-metrics-token"
REQUEST_METRICS = ("django_http_requests_latency_seconds_by_view_method", "django_http_responses_total_by_status")
APP_METRICS = ("labeller_training_runs", "labeller_ingest_videos", "labeller_project_index_size",
               "labeller_project_index_version", "labeller_proposal_outcomes_decided",
               "labeller_proposal_acceptance_ratio", "labeller_proposal_score")


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_ENABLED = True
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = []
    settings.MIDDLEWARE = ["django_prometheus.middleware.PrometheusBeforeMiddleware", *settings.MIDDLEWARE,
                           "django_prometheus.middleware.PrometheusAfterMiddleware"]
    return settings


def scrape(client=None, **headers):
    response = (client or Client()).get("/metrics", headers={"Authorization": f"Bearer {TOKEN}", **headers})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {f.name: f for f in text_string_to_metric_families(response.content.decode())}


def samples(families, name, **labels):
    return {s.name: s.value for s in families[name].samples if labels.items() <= s.labels.items()}


@pytest.mark.django_db
def test_metrics_are_not_found_when_the_setting_is_off(settings):
    settings.METRICS_ENABLED = False
    settings.METRICS_TOKEN = TOKEN

    response = Client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 404
    assert b"labeller_" not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("headers", [
    pytest.param({}, id="anonymous"),
    pytest.param({"Authorization": "Bearer wrong"}, id="wrong-token"),
    pytest.param({"Authorization": TOKEN}, id="token-without-bearer"),
])
def test_metrics_are_refused_to_a_caller_without_the_token(metrics_on, headers):
    response = Client(REMOTE_ADDR="203.0.113.9").get("/metrics", headers=headers)

    assert response.status_code == 403
    assert b"labeller_" not in response.content


@pytest.mark.django_db
def test_an_allowed_address_reads_metrics_without_the_token_unless_relayed_by_a_proxy(metrics_on):
    metrics_on.METRICS_ALLOWED_IPS = ["127.0.0.1"]
    local = Client(REMOTE_ADDR="127.0.0.1")

    assert local.get("/metrics").status_code == 200
    # A reverse proxy on the same host makes every outside caller 127.0.0.1.
    assert local.get("/metrics", headers={"X-Forwarded-For": "198.51.100.7"}).status_code == 403
    assert Client(REMOTE_ADDR="10.0.0.8").get("/metrics").status_code == 403


@pytest.mark.django_db
def test_metrics_answer_prometheus_text_with_request_and_app_metrics(metrics_on):
    client = Client()
    client.get("/healthz")  # one request through django-prometheus's middleware

    families = scrape(client)

    for name in (*REQUEST_METRICS, *APP_METRICS):
        assert name in families, f"/metrics lacks {name}"
    assert any(s.labels.get("view") == "healthz" for s in families[REQUEST_METRICS[0]].samples)


@pytest.mark.django_db
def test_app_metrics_count_runs_videos_indexes_and_proposal_outcomes(metrics_on):
    project = ProjectFactory()
    frame = FrameFactory(project=project)
    TrainingRun.objects.create(project=project, number=1, state=RunState.SUCCEEDED)
    TrainingRun.objects.create(project=project, number=2, state=RunState.FAILED, kind=RunKind.EMBEDDING)
    VideoFactory(project=project, stage=IngestStage.SCANNING)
    ProjectIndex.objects.create(project=project, feature_key="resnet", size=42, version=7)
    now = timezone.now()
    for score, shown, useful in ((0.95, True, True), (0.85, True, True), (0.55, True, False), (0.15, False, None)):
        ProposalOutcome.objects.create(project=project, frame=frame, source="knn", score=score, box=[0, 0, 1, 1],
                                       shown=shown, useful=useful, decided_at=now if useful is not None else None)

    families = scrape()

    runs = families["labeller_training_runs"].samples
    assert {(s.labels["state"], s.labels["kind"], s.value) for s in runs} == {
        ("succeeded", "detector", 1), ("failed", "embedding", 1)}
    assert samples(families, "labeller_ingest_videos", stage="scanning") == {"labeller_ingest_videos": 1}
    project_id = str(project.id)
    assert samples(families, "labeller_project_index_size", project=project_id)["labeller_project_index_size"] == 42
    assert samples(families, "labeller_project_index_version", project=project_id)[
        "labeller_project_index_version"] == 7
    acceptance = samples(families, "labeller_proposal_acceptance_ratio", source="knn")
    assert acceptance["labeller_proposal_acceptance_ratio"] == pytest.approx(2 / 3)
    decided = families["labeller_proposal_outcomes_decided"].samples
    assert sum(s.value for s in decided) == 3, "the undecided outcome is not counted as decided"
    scores = samples(families, "labeller_proposal_score", source="knn")
    assert scores["labeller_proposal_score_count"] == 4
    assert scores["labeller_proposal_score_sum"] == pytest.approx(0.95 + 0.85 + 0.55 + 0.15)
    buckets = {s.labels["le"]: s.value for s in families["labeller_proposal_score"].samples
               if s.name.endswith("_bucket")}
    assert buckets["0.2"] == 1 and buckets["0.6"] == 2 and buckets["0.9"] == 3 and buckets["+Inf"] == 4


# --- the model's health per label, ingest throughput -----------------------------------------


@pytest.mark.django_db
def test_app_metrics_give_acceptance_per_label_name_and_frames_ingested_by_kind(metrics_on):
    project, other = ProjectFactory(), ProjectFactory()
    frame = FrameFactory(project=project)  # a still image
    FrameFactory(project=project, video=VideoFactory(project=project))  # a video frame
    car, person = LabelFactory(project=project, name="car"), LabelFactory(project=project, name="person")
    other_car = LabelFactory(project=other, name="car")  # the same name in another project adds up
    now = timezone.now()
    for label, shown, useful in ((car, True, True), (car, True, False), (other_car, True, True), (car, False, True),
                                 (person, True, False), (None, True, True), (person, True, None)):
        ProposalOutcome.objects.create(
            project=label.project if label else project, frame=frame, source="knn", score=0.5, box=[0, 0, 1, 1],
            label_id=label.id if label else None, shown=shown, useful=useful,
            decided_at=now if useful is not None else None)

    families = scrape()

    def by_label(name):
        return {s.labels["label"]: s.value for s in families[name].samples}

    assert by_label("labeller_proposal_label_decided") == {"car": 4, "person": 1, "(none)": 1}
    assert by_label("labeller_proposal_label_shown") == {"car": 3, "person": 1, "(none)": 1}
    acceptance = by_label("labeller_proposal_label_acceptance_ratio")
    assert acceptance == {"car": pytest.approx(2 / 3), "person": 0.0, "(none)": 1.0}
    assert {s.labels["kind"]: s.value for s in families["labeller_frames_ingested_last_5m"].samples} == {
        "video": 1, "image": 1}


@pytest.mark.django_db
def test_acceptance_per_label_reports_only_the_busiest_labels(metrics_on, monkeypatch):
    monkeypatch.setattr(metrics, "MAX_LABELS", 2)
    project = ProjectFactory()
    frame = FrameFactory(project=project)
    for n, name in enumerate(("a", "b", "c"), start=1):
        label = LabelFactory(project=project, name=name)
        for _ in range(n):
            ProposalOutcome.objects.create(project=project, frame=frame, source="knn", score=0.5, box=[0, 0, 1, 1],
                                           label_id=label.id, shown=True, useful=True, decided_at=timezone.now())

    families = scrape()

    assert {s.labels["label"] for s in families["labeller_proposal_label_decided"].samples} == {"b", "c"}


# --- queue depth, read from the broker -------------------------------------------------------


def depths(families):
    return {s.labels["queue"]: s.value for s in families["labeller_celery_queue_depth"].samples}


def depth_error(families):
    return {s.labels["transport"]: s.value for s in families["labeller_celery_queue_depth_error"].samples}


@pytest.mark.django_db
def test_queue_depth_counts_the_message_files_of_the_filesystem_broker(metrics_on, tmp_path):
    options = filesystem_broker_options(tmp_path)
    metrics_on.CELERY_BROKER_URL, metrics_on.CELERY_BROKER_TRANSPORT_OPTIONS = "filesystem://", options
    with publishing_to("filesystem://", options):
        for queue in ("bulk", "bulk", "interactive"):
            assert publish("workers.maintenance.check_exports", queue=queue)

    families = scrape()

    assert depths(families) == {"bulk": 2, "interactive": 1, "training": 0}
    assert depth_error(families) == {"filesystem": 0}


@pytest.mark.redis
@pytest.mark.django_db
def test_queue_depth_reads_the_lists_of_the_real_redis_broker(metrics_on):
    url = os.environ.get("LABELLER_TEST_REDIS_URL")
    if not url:
        pytest.fail("LABELLER_TEST_REDIS_URL is not set: scripts/test sets it when Redis answers on 127.0.0.1:6379")
    redis.Redis.from_url(url).flushdb()
    metrics_on.CELERY_BROKER_URL, metrics_on.CELERY_BROKER_TRANSPORT_OPTIONS = url, {"visibility_timeout": 60}
    with publishing_to(url, {"visibility_timeout": 60}):
        for queue in ("bulk", "bulk", "training"):
            assert publish("workers.maintenance.check_exports", queue=queue)
        # A prioritised message waits in the queue's list for its priority step.
        app.send_task("workers.maintenance.check_exports", queue="bulk", priority=9)

    families = scrape()

    assert depths(families) == {"bulk": 3, "interactive": 0, "training": 1}
    assert depth_error(families) == {"redis": 0}
    assert redis.Redis.from_url(url).llen("bulk") == 2, "the messages are still there: counting consumed nothing"


@pytest.mark.django_db
def test_a_broker_that_cannot_be_read_gives_no_depth_and_an_error_not_a_failed_scrape(metrics_on):
    metrics_on.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    metrics_on.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 60}

    families = scrape()

    assert depths(families) == {}
    assert depth_error(families) == {"redis": 1}
    assert "labeller_proposal_score" in families, "the rest of the scrape is still there"


# --- task latency per queue ------------------------------------------------------------------


def task_samples(families, family, task):
    return {(s.name, s.labels["queue"]): s.value for s in families[family].samples
            if s.labels.get("task") == task and not s.name.endswith(("_bucket", "_created"))}


@pytest.mark.django_db
def test_a_published_task_records_its_wait_and_run_time_by_queue(metrics_on):
    """The publish stamps the message; the run (here in this process) observes wait and run."""
    name = "workers.maintenance.check_exports"
    sent = []

    def keep_headers(headers=None, **kwargs):
        sent.append(dict(headers))

    signals.after_task_publish.connect(keep_headers)
    try:
        assert publish(name, queue="interactive")  # the test settings' memory:// broker
    finally:
        signals.after_task_publish.disconnect(keep_headers)
    assert sent[0][task_metrics.QUEUE_HEADER] == "interactive" and sent[0][task_metrics.SENT_AT_HEADER] > 0
    before = scrape()

    check_exports.apply(headers=sent[0])

    after = scrape()
    for family, sample in (("labeller_task_queue_wait_seconds", "labeller_task_queue_wait_seconds_count"),
                           ("labeller_task_run_seconds", "labeller_task_run_seconds_count")):
        counts_before = task_samples(before, family, name) if family in before else {}
        counts = task_samples(after, family, name)
        assert counts[(sample, "interactive")] == counts_before.get((sample, "interactive"), 0) + 1
        assert counts[(sample.replace("_count", "_sum"), "interactive")] >= 0
    finished = {s.labels["state"]: s.value for s in after["labeller_tasks_finished"].samples
                if s.labels["task"] == name and s.name.endswith("_total")}
    assert finished["SUCCESS"] >= 1
