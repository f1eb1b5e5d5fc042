"""/metrics: off by default, not public when on, and the app's own figures from the database."""

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from labeller.media.models import IngestStage
from labeller.training.models import ProjectIndex, ProposalOutcome, RunKind, RunState, TrainingRun
from tests.factories import FrameFactory, ProjectFactory, VideoFactory

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
