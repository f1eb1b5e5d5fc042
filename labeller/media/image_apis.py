from contextlib import ExitStack

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

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
        responses={201: FrameSerializer(many=True)},
        description="Add still images as frames: one or more multipart fields 'files', or one zip as 'archive'. "
        "Every file is checked first; one bad file refuses the whole request and nothing is stored.",
    )
    def post(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        files = request.FILES.getlist("files")
        archive = request.FILES.get("archive")
        if bool(files) == bool(archive):
            message = "Attach images as the multipart field 'files' (repeat it for several) or one zip as 'archive'."
            raise ValidationError({"files": [message]})
        if archive is not None:
            with local_upload_path(archive) as path:
                frames = images.frames_create_from_zip(
                    project=project, actor=request.user, archive=path, archive_name=archive.name
                )
        else:
            with ExitStack() as stack:
                paths = [(uploaded.name, stack.enter_context(local_upload_path(uploaded))) for uploaded in files]
                frames = images.frames_create_from_images(project=project, actor=request.user, files=paths)
        data = FrameSerializer(frames, many=True, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_201_CREATED)
