"""A project's progress in numbers, for the project page's charts."""

from drf_spectacular.utils import OpenApiParameter, extend_schema

from labeller.annotations import selectors
from labeller.annotations.serializers import ProgressWindowSerializer, ProjectProgressSerializer
from labeller.api.base import OrganizationAPIView
from labeller.projects.selectors import project_get


class ProjectProgressApi(OrganizationAPIView):
    """Any member: frames complete per video, confirmed boxes per label, proposals kept per day."""

    @extend_schema(
        parameters=[OpenApiParameter("days", int, description="days of proposal history, 1 to 365 (default 30)")],
        responses=ProjectProgressSerializer,
    )
    def get(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        days = self.validated(ProgressWindowSerializer, data=request.query_params)["days"]
        progress = selectors.project_progress(organization=self.organization, project=project, days=days)
        return self.respond(progress, ProjectProgressSerializer)
