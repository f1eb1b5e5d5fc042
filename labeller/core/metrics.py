"""Prometheus metrics at /metrics: off unless LABELLER_METRICS=1, and then not public.

Two sources go out in one answer:
- django-prometheus's request metrics (latency by view and method, responses by status,
  exceptions by type), recorded by its middleware, which the settings add only when metrics
  are on. With several gunicorn workers each keeps its own counters; set
  PROMETHEUS_MULTIPROC_DIR (an empty folder, emptied at each start) to add them up.
- the app's own figures, computed from the database at scrape time by ``LabellerCollector``
  (a few grouped queries, each bounded by a time window or a row limit), so that every web
  process answers the same and nothing has to be kept in step with the writes.

- the Celery queues' depth, read from the broker at scrape time (``labeller.core.queue_depth``):
  a broker that cannot be read gives no depth and ``labeller_celery_queue_depth_error`` 1.
- the task latencies per queue, which the workers record (``labeller.core.task_metrics``) and
  which arrive here through the multiprocess folder (``process_registry``).

Access: a request with ``Authorization: Bearer <LABELLER_METRICS_TOKEN>``, or a direct one
(no X-Forwarded-For or Forwarded header, so not relayed by a reverse proxy on the same host)
from an address in LABELLER_METRICS_ALLOWED_IPS (empty by default). Anything else gets 403;
with metrics off the route answers 404.
"""

from __future__ import annotations

import hmac
import logging
import os
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.http import Http404, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from labeller.annotations.models import Label
from labeller.core.queue_depth import broker_transport, queue_depths
from labeller.media.models import Frame, Video
from labeller.training.models import ProjectIndex, ProposalOutcome, TrainingRun

# How far back the proposal figures look, and how many projects' indexes are reported (the
# most recently changed): both keep a scrape's queries and its label sets bounded.
OUTCOME_WINDOW = timedelta(days=7)
MAX_PROJECT_INDEXES = 500
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
# Per-label acceptance: the labels (by name, across projects) with the most decided proposals.
MAX_LABELS = 20
# Ingest throughput: frames created in this trailing window (the created_at index serves it);
# the metric's name says 5m.
INGEST_WINDOW = timedelta(minutes=5)

logger = logging.getLogger(__name__)


def _bool_label(value: bool | None) -> str:
    return {True: "true", False: "false", None: "undecided"}[value]


class LabellerCollector:
    """The app's gauges, read from the database at each scrape."""

    def describe(self):
        return []  # computed at scrape time: nothing to query at registration

    def collect(self):
        yield self._training_runs()
        yield self._ingest_videos()
        yield self._frames_ingested()
        yield from self._queue_depths()
        yield from self._project_indexes()
        yield from self._proposal_outcomes()
        yield from self._label_acceptance()
        yield self._proposal_scores()

    def _training_runs(self):
        family = GaugeMetricFamily("labeller_training_runs", "Training runs by state and kind.",
                                   labels=["state", "kind"])
        for row in TrainingRun.objects.values("state", "kind").annotate(n=Count("id")).order_by():
            family.add_metric([row["state"], row["kind"]], row["n"])
        return family

    def _ingest_videos(self):
        family = GaugeMetricFamily("labeller_ingest_videos", "Videos by ingest stage (ready and failed included).",
                                   labels=["stage"])
        for row in Video.objects.values("stage").annotate(n=Count("id")).order_by():
            family.add_metric([row["stage"]], row["n"])
        return family

    def _frames_ingested(self):
        family = GaugeMetricFamily(
            "labeller_frames_ingested_last_5m",
            "Frames ingested in the last 5 minutes, by kind (video frames, still images); / 300 for a rate.",
            labels=["kind"])
        counts = Frame.objects.filter(created_at__gte=timezone.now() - INGEST_WINDOW).aggregate(
            n_video=Count("id", filter=Q(video__isnull=False)), n_image=Count("id", filter=Q(video__isnull=True)))
        for kind in ("video", "image"):
            family.add_metric([kind], counts[f"n_{kind}"])
        return family

    def _queue_depths(self):
        depth = GaugeMetricFamily("labeller_celery_queue_depth", "Tasks waiting in each Celery queue (not yet taken).",
                                  labels=["queue"])
        error = GaugeMetricFamily("labeller_celery_queue_depth_error",
                                  "1 when the broker could not be read at this scrape (no depths then), else 0.",
                                  labels=["transport"])
        url = settings.CELERY_BROKER_URL
        # One queue per visibility timeout: interactive, bulk, training.
        queues = sorted({*settings.TASK_VISIBILITY_TIMEOUTS, settings.CELERY_TASK_DEFAULT_QUEUE})
        try:
            depths = queue_depths(url, dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}), queues)
        except Exception as exc:  # a broker that is down, slow or unsupported must not fail the scrape
            logger.warning("queue depth: could not read the %s broker: %s", broker_transport(url), type(exc).__name__)
            error.add_metric([broker_transport(url)], 1)
        else:
            for queue, waiting in depths.items():
                depth.add_metric([queue], waiting)
            error.add_metric([broker_transport(url)], 0)
        return depth, error

    def _project_indexes(self):
        size = GaugeMetricFamily("labeller_project_index_size", "Rows in the project's current embedding index.",
                                 labels=["project"])
        version = GaugeMetricFamily("labeller_project_index_version", "Version of the project's current index.",
                                    labels=["project"])
        seen: set[int] = set()
        rows = ProjectIndex.objects.order_by("-updated_at").values_list("project_id", "size", "version")
        for project_id, rows_in_index, index_version in rows[: MAX_PROJECT_INDEXES * 2]:
            if project_id in seen or len(seen) >= MAX_PROJECT_INDEXES:
                continue  # an older index of the project (another feature model)
            seen.add(project_id)
            size.add_metric([str(project_id)], rows_in_index)
            version.add_metric([str(project_id)], index_version)
        return size, version

    def _proposal_outcomes(self):
        decided = GaugeMetricFamily(
            "labeller_proposal_outcomes_decided",
            f"Proposals decided in the last {OUTCOME_WINDOW.days} days, by source, whether they were shown "
            "and whether they were useful (kept, or matching a confirmed box).",
            labels=["source", "shown", "useful"])
        acceptance = GaugeMetricFamily(
            "labeller_proposal_acceptance_ratio",
            f"Useful share of the shown proposals decided in the last {OUTCOME_WINDOW.days} days, by source.",
            labels=["source"])
        recent = ProposalOutcome.objects.filter(decided_at__gte=timezone.now() - OUTCOME_WINDOW)
        shown: dict[str, list[int]] = {}
        for row in recent.values("source", "shown", "useful").annotate(n=Count("id")).order_by():
            decided.add_metric([row["source"], _bool_label(row["shown"]), _bool_label(row["useful"])], row["n"])
            if row["shown"]:
                counts = shown.setdefault(row["source"], [0, 0])
                counts[0] += row["n"] if row["useful"] else 0
                counts[1] += row["n"]
        for source, (useful, total) in sorted(shown.items()):
            acceptance.add_metric([source], useful / total)
        return decided, acceptance

    def _label_acceptance(self):
        """Shown and decided proposals, and the useful share of the shown, by label name (summed
        over projects), for the MAX_LABELS names with the most decided proposals."""
        decided = GaugeMetricFamily(
            "labeller_proposal_label_decided",
            f"Proposals decided in the last {OUTCOME_WINDOW.days} days, by label name (the {MAX_LABELS} busiest).",
            labels=["label"])
        shown = GaugeMetricFamily(
            "labeller_proposal_label_shown",
            f"Shown proposals decided in the last {OUTCOME_WINDOW.days} days, by label name.", labels=["label"])
        acceptance = GaugeMetricFamily(
            "labeller_proposal_label_acceptance_ratio",
            f"Useful share of the shown proposals decided in the last {OUTCOME_WINDOW.days} days, by label name.",
            labels=["label"])
        name = Subquery(Label.objects.filter(pk=OuterRef("label_id")).values("name")[:1])
        rows = (ProposalOutcome.objects.filter(decided_at__gte=timezone.now() - OUTCOME_WINDOW)
                .annotate(label_name=name).values("label_name")
                .annotate(n=Count("id"), n_shown=Count("id", filter=Q(shown=True)),
                          n_useful=Count("id", filter=Q(shown=True, useful=True)))
                .order_by("-n", "label_name")[:MAX_LABELS])
        for row in rows:
            label = row["label_name"] or "(none)"  # no label, or a label deleted since
            decided.add_metric([label], row["n"])
            shown.add_metric([label], row["n_shown"])
            if row["n_shown"]:
                acceptance.add_metric([label], row["n_useful"] / row["n_shown"])
        return decided, shown, acceptance

    def _proposal_scores(self):
        family = HistogramMetricFamily(
            "labeller_proposal_score",
            f"Scores of the proposals made in the last {OUTCOME_WINDOW.days} days, by source.",
            labels=["source"])
        per_bucket = {f"le_{i}": Count("id", filter=Q(score__lte=bound)) for i, bound in enumerate(SCORE_BUCKETS)}
        rows = (ProposalOutcome.objects.filter(created_at__gte=timezone.now() - OUTCOME_WINDOW)
                .values("source").annotate(total=Count("id"), score_sum=Sum("score"), **per_bucket).order_by())
        for row in rows:
            buckets = [(str(bound), row[f"le_{i}"]) for i, bound in enumerate(SCORE_BUCKETS)]
            family.add_metric([row["source"]], buckets + [("+Inf", row["total"])], row["score_sum"] or 0.0)
        return family


_app_registry: CollectorRegistry | None = None


def app_registry() -> CollectorRegistry:
    global _app_registry
    if _app_registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(LabellerCollector())
        _app_registry = registry
    return _app_registry


def request_may_read_metrics(request) -> bool:
    token = settings.METRICS_TOKEN
    if token and hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return True
    relayed = "X-Forwarded-For" in request.headers or "Forwarded" in request.headers
    return not relayed and request.META.get("REMOTE_ADDR") in settings.METRICS_ALLOWED_IPS


def process_registry():
    """Metrics the processes record themselves: django-prometheus's and the Celery tasks'.

    Without PROMETHEUS_MULTIPROC_DIR, this process's alone (so no task latencies: they are in
    the workers). With it, the sum over every process that writes there: gunicorn's workers
    and the Celery workers, whose files ``labeller.core.metric_files`` names by host and pid.
    """
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return REGISTRY
    from prometheus_client import multiprocess

    os.makedirs(folder, exist_ok=True)  # a scrape before any process wrote there is empty, not a 500
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=folder)
    return registry


@require_GET
def metrics(request):
    if not settings.METRICS_ENABLED:
        raise Http404
    if not request_may_read_metrics(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    body = generate_latest(process_registry()) + generate_latest(app_registry())
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
