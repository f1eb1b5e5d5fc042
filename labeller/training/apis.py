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
from labeller.training import proposing, services
from labeller.training.models import EmbeddingReport
from labeller.training.serializers import (
    AnnotatorStatsSerializer,
    EmbeddingReportSerializer,
    ProposalPolicySerializer,
    SuggestLabelsRequestSerializer,
    SuggestLabelsResponseSerializer,
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
