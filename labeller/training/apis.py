from django.core.files.storage import default_storage
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from labeller.annotations.models import Label
from labeller.annotations.selectors import annotator_day
from labeller.api.base import OrganizationAPIView
from labeller.media.files import serve_stored
from labeller.media.selectors import frame_get
from labeller.projects.selectors import project_get
from labeller.tenants.access import scoped, scoped_get
from labeller.tenants.models import Role
from labeller.training import proposing, runs, services
from labeller.training.models import EmbeddingReport, TrainingRun
from labeller.training.serializers import (
    AnnotatorStatsSerializer,
    EmbeddingReportSerializer,
    ProjectLearningSerializer,
    ProposalPolicySerializer,
    SuggestLabelsRequestSerializer,
    SuggestLabelsResponseSerializer,
    TrainingRunSerializer,
    TrainingRunStartSerializer,
)


class SuggestLabelsApi(OrganizationAPIView):
    """The model's top-3 labels for a box drawn by hand (the label picker's pre-fill)."""

    write_role = Role.ANNOTATOR  # a read in effect; POST carries the box

    @extend_schema(request=SuggestLabelsRequestSerializer, responses=SuggestLabelsResponseSerializer)
    def post(self, request, org, pk):
        frame = frame_get(organization=self.organization, frame_id=pk)
        box = self.validated(SuggestLabelsRequestSerializer, context={"frame": frame})["box"]
        suggestions, state = proposing.label_suggestions(frame=frame, box=tuple(box))
        names = dict(scoped(Label, self.organization).filter(pk__in=[s.label_id for s in suggestions]).values_list("pk", "name"))
        payload = {
            "suggestions": [
                {"label_id": s.label_id, "label_name": names[s.label_id], "score": s.score}
                for s in suggestions
                if s.label_id in names
            ],
            "model": state,
        }
        return Response(SuggestLabelsResponseSerializer(payload).data)


class AnnotatorStatsApi(OrganizationAPIView):
    """The annotator's day and the model's state, for the instant-feedback panel."""

    @extend_schema(responses=AnnotatorStatsSerializer)
    def get(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        day = annotator_day(organization=self.organization, project=project, user=request.user)
        payload = {
            "boxes_today": day.boxes_today,
            "frames_today": day.frames_today,
            "proposals_accepted": day.proposals_accepted,
            "proposals_rejected": day.proposals_rejected,
            "acceptance_rate": day.acceptance_rate,
            "model": services.index_state_peek(project),
            "learned": runs.learned_notice(project_id=project.pk),
        }
        return Response(AnnotatorStatsSerializer(payload).data)


class ProposalPolicyApi(OrganizationAPIView):
    """How the project decides which proposals to show: the calibration from its own
    accept/reject history, the break-even chance, and how many are shown per frame."""

    read_role = Role.ADMIN

    @extend_schema(responses=ProposalPolicySerializer)
    def get(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        return Response(ProposalPolicySerializer(proposing.proposal_policy_summary(project_id=project.pk)).data)


class EmbeddingReportListApi(OrganizationAPIView):
    """Admins read the embedding quality reports and ask for a new one (it runs in a worker)."""

    read_role = Role.ADMIN

    @extend_schema(responses=EmbeddingReportSerializer(many=True))
    def get(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        return self.paginated(scoped(EmbeddingReport, self.organization).filter(project=project), EmbeddingReportSerializer)

    @extend_schema(request=None, responses={202: None})
    def post(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        services.embedding_report_request(project=project)
        return Response({"detail": "The report is being computed; it appears in this list when done."}, status=202)


class EmbeddingReportDetailApi(OrganizationAPIView):
    read_role = Role.ADMIN

    @extend_schema(responses=EmbeddingReportSerializer)
    def get(self, request, org, pk):
        return self.respond(scoped_get(EmbeddingReport, self.organization, pk=pk), EmbeddingReportSerializer)


class EmbeddingReportGridApi(OrganizationAPIView):
    read_role = Role.ADMIN

    @extend_schema(responses={(200, "image/png"): bytes})
    def get(self, request, org, pk):
        report = scoped_get(EmbeddingReport, self.organization, pk=pk)
        if not report.grid:
            raise NotFound("This report has no false positives to show.")
        return serve_stored(default_storage, report.grid, content_type="image/png")


class TrainingRunListApi(OrganizationAPIView):
    """The project's retraining runs (model versions), newest first; POST starts one.

    At most one run is queued or running per project: a second Retrain answers 200 with the
    run already under way instead of 202 with a new one."""

    read_role = Role.ADMIN

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        project_id = self.kwargs.get("project_id")
        context["in_use"] = runs.runs_in_use(project_id=project_id) if project_id else {}
        return context

    @extend_schema(responses=TrainingRunSerializer(many=True))
    def get(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        return self.paginated(scoped(TrainingRun, self.organization).filter(project=project), TrainingRunSerializer)

    @extend_schema(request=TrainingRunStartSerializer, responses={202: TrainingRunSerializer, 200: TrainingRunSerializer})
    def post(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        kind = self.validated(TrainingRunStartSerializer)["kind"]
        run, created = runs.training_run_start(project=project, user=request.user, kind=kind)
        return self.respond(run, TrainingRunSerializer, 202 if created else 200)


class _TrainingRunApi(OrganizationAPIView):
    read_role = Role.ADMIN

    def run(self, pk) -> TrainingRun:
        return scoped_get(TrainingRun.objects.select_related("parent", "requested_by"), self.organization, pk=pk)

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        pk = self.kwargs.get("pk")
        project_id = TrainingRun.objects.filter(pk=pk).values_list("project_id", flat=True).first() if pk else None
        context["in_use"] = runs.runs_in_use(project_id=project_id) if project_id else {}
        return context


class TrainingRunDetailApi(_TrainingRunApi):
    @extend_schema(responses=TrainingRunSerializer)
    def get(self, request, org, pk):
        return self.respond(self.run(pk), TrainingRunSerializer)


class TrainingRunCancelApi(_TrainingRunApi):
    """A queued run never starts; a running one stops after its current epoch."""

    @extend_schema(request=None, responses=TrainingRunSerializer)
    def post(self, request, org, pk):
        return self.respond(runs.training_run_cancel(run=self.run(pk)), TrainingRunSerializer)


class TrainingRunPromoteApi(_TrainingRunApi):
    """Use this version for proposals from now on: a candidate the rule refused, or an older
    version (a rollback)."""

    @extend_schema(request=None, responses=TrainingRunSerializer)
    def post(self, request, org, pk):
        return self.respond(runs.training_run_promote(run=self.run(pk)), TrainingRunSerializer)


class ProjectLearningApi(OrganizationAPIView):
    """The project's learning-loop settings: periodic retraining and the queue's order."""

    read_role = Role.ADMIN

    @extend_schema(responses=ProjectLearningSerializer)
    def get(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        return self.respond(runs.learning_settings(project=project), ProjectLearningSerializer)

    @extend_schema(request=ProjectLearningSerializer, responses=ProjectLearningSerializer)
    def patch(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        fields = self.validated(ProjectLearningSerializer, partial=True)
        return self.respond(runs.learning_settings_update(project=project, **fields), ProjectLearningSerializer)
