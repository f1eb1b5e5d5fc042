from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from labeller.api.base import OrganizationAPIView
from labeller.projects import selectors, services
from labeller.projects.serializers import ProjectSerializer, ProjectUpdateSerializer


class ProjectListApi(OrganizationAPIView):
    @extend_schema(responses=ProjectSerializer(many=True))
    def get(self, request, org):
        return self.paginated(selectors.project_list(organization=self.organization), ProjectSerializer)

    @extend_schema(request=ProjectSerializer, responses={201: ProjectSerializer})
    def post(self, request, org):
        data = self.validated(ProjectSerializer)
        project = services.project_create(organization=self.organization, **data)
        return self.respond(project, ProjectSerializer, status.HTTP_201_CREATED)


class ProjectDetailApi(OrganizationAPIView):
    conflict_serializer_class = ProjectSerializer

    @extend_schema(responses=ProjectSerializer)
    def get(self, request, org, pk):
        return self.respond(selectors.project_get(organization=self.organization, project_id=pk), ProjectSerializer)

    @extend_schema(request=ProjectUpdateSerializer, responses=ProjectSerializer)
    def patch(self, request, org, pk):
        project = selectors.project_get(organization=self.organization, project_id=pk)
        data = dict(self.validated(ProjectUpdateSerializer))
        project = services.project_update(project=project, expected_version=data.pop("version"), **data)
        return self.respond(project, ProjectSerializer)

    @extend_schema(responses={204: None})
    def delete(self, request, org, pk):
        services.project_delete(project=selectors.project_get(organization=self.organization, project_id=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)
