from django.core.files.storage import default_storage
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from labeller.api.base import OrganizationAPIView
from labeller.exports import selectors, services
from labeller.exports.models import ExportState
from labeller.exports.serializers import DatasetExportSerializer, ExportRequestSerializer
from labeller.media.files import serve_stored
from labeller.projects.selectors import project_get
from labeller.tenants.models import Role


class ExportListApi(OrganizationAPIView):
    """Admins list a project's exports and start new ones (written by a bulk worker)."""

    read_role = Role.ADMIN
    write_role = Role.ADMIN

    @extend_schema(responses=DatasetExportSerializer(many=True))
    def get(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        exports = selectors.export_list(organization=self.organization, project=project)
        return self.paginated(exports, DatasetExportSerializer)

    @extend_schema(request=ExportRequestSerializer, responses={202: DatasetExportSerializer})
    def post(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        data = self.validated(ExportRequestSerializer)
        export = services.export_start(project=project, actor=request.user, request=services.ExportRequest(**data))
        return self.respond(export, DatasetExportSerializer, status.HTTP_202_ACCEPTED)


class ExportDetailApi(OrganizationAPIView):
    """One export's state and progress, ``download_url`` once done; admins delete old ones."""

    read_role = Role.ADMIN
    write_role = Role.ADMIN

    @extend_schema(responses=DatasetExportSerializer)
    def get(self, request, org, pk):
        return self.respond(selectors.export_get(organization=self.organization, export_id=pk), DatasetExportSerializer)

    @extend_schema(responses={204: None})
    def delete(self, request, org, pk):
        services.export_delete(export=selectors.export_get(organization=self.organization, export_id=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExportFileApi(OrganizationAPIView):
    """The finished export's file, as an attachment, after the same checks as every media file."""

    read_role = Role.ADMIN
    write_role = Role.ADMIN

    @extend_schema(responses={(200, "application/json"): bytes, (200, "application/zip"): bytes})
    def get(self, request, org, pk):
        export = selectors.export_get(organization=self.organization, export_id=pk)
        if export.state != ExportState.DONE or not export.file:
            raise NotFound("This export has no file yet.")
        return serve_stored(
            default_storage,
            export.file,
            content_type=export.content_type,
            download_name=services.export_download_name(export),
        )
