from contextlib import ExitStack

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from labeller.annotations import import_jobs
from labeller.annotations.import_apis import ImportJobSerializer
from labeller.annotations.models import ImportKind
from labeller.api.base import OrganizationAPIView
from labeller.media import images
from labeller.media.serializers import FrameSerializer
from labeller.media.uploaded import local_upload_path
from labeller.projects.selectors import project_get

UPLOAD_SCHEMA = {
    "multipart/form-data": {
        "type": "object",
        "properties": {
            "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
            "archive": {"type": "string", "format": "binary"},
        },
    }
}


class ImageUploadApi(OrganizationAPIView):
    @extend_schema(
        request=UPLOAD_SCHEMA,
        responses={201: FrameSerializer(many=True), 202: ImportJobSerializer},
        description="Add still images as frames: one or more multipart fields 'files' (added at once: 201 with "
        "the new frames), or one zip as 'archive' (added by a bulk worker: 202 with the import; follow it at "
        "imports/<id>). Every file is checked first; one bad file refuses all of them and nothing is stored "
        "(400 at once for 'files' and for an unsafe or unreadable zip; a failed import for a bad image inside "
        "the zip). Images the project already has (same name and content) are skipped.",
    )
    def post(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        files = request.FILES.getlist("files")
        archive = request.FILES.get("archive")
        if bool(files) == bool(archive):
            message = "Attach images as the multipart field 'files' (repeat it for several) or one zip as 'archive'."
            raise ValidationError({"files": [message]})
        if archive is not None:
            job = import_jobs.import_start(
                project=project, actor=request.user, kind=ImportKind.IMAGES, upload=archive, archive_name=archive.name
            )
            return self.respond(job, ImportJobSerializer, status.HTTP_202_ACCEPTED)
        with ExitStack() as stack:
            paths = [(uploaded.name, stack.enter_context(local_upload_path(uploaded))) for uploaded in files]
            frames = images.frames_create_from_images(project=project, actor=request.user, files=paths).created
        data = FrameSerializer(frames, many=True, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_201_CREATED)
