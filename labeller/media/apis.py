from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from labeller.annotations.models import AnnotationStatus
from labeller.annotations.selectors import annotation_list
from labeller.annotations.services import frame_complete, frame_reopen
from labeller.api.base import OrganizationAPIView
from labeller.media import ingest, selectors, services, uploads
from labeller.media.models import Upload
from labeller.media.uploaded import local_upload_path
from labeller.tenants.access import scoped_get
from labeller.media.files import serve_stored_file, stored_image_type
from labeller.media.filters import FrameFilter
from labeller.media.serializers import FrameDetailSerializer, FrameSerializer, ShotSerializer, VideoSerializer
from labeller.projects.selectors import project_get
from labeller.tenants.models import Role
from labeller.training.proposing import frame_proposals_state


class VideoListApi(OrganizationAPIView):
    @extend_schema(responses=VideoSerializer(many=True))
    def get(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        return self.paginated(selectors.video_list(organization=self.organization, project=project), VideoSerializer)

    @extend_schema(
        request={"multipart/form-data": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}},
        responses={201: VideoSerializer},
        description="Upload a whole video in one request; for large files use the resumable uploads.",
    )
    def post(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        uploaded = request.FILES.get("file")
        if uploaded is None:
            raise ValidationError({"file": ["Attach the video as the multipart field 'file'."]})
        with local_upload_path(uploaded) as path:
            video = ingest.video_create_from_file(project=project, actor=request.user, path=path, original_name=uploaded.name)
        return self.respond(video, VideoSerializer, status.HTTP_201_CREATED)


class VideoReingestApi(OrganizationAPIView):
    @extend_schema(request=None, responses={202: VideoSerializer})
    def post(self, request, org, pk):
        video = ingest.video_ingest_restart(video=selectors.video_get(organization=self.organization, video_id=pk))
        return self.respond(video, VideoSerializer, status.HTTP_202_ACCEPTED)


class UploadStartSerializer(serializers.Serializer):
    filename = serializers.CharField(max_length=255)
    size = serializers.IntegerField(min_value=1)


class UploadSerializer(serializers.ModelSerializer):
    offset = serializers.IntegerField(source="received_bytes")
    size = serializers.IntegerField(source="total_bytes")

    class Meta:
        model = Upload
        fields = ["id", "filename", "size", "offset", "status", "video_id", "created_at"]


class UploadListApi(OrganizationAPIView):
    @extend_schema(responses=UploadSerializer(many=True))
    def get(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        return self.paginated(selectors.upload_list_open(organization=self.organization, project=project), UploadSerializer)

    @extend_schema(request=UploadStartSerializer, responses={201: UploadSerializer})
    def post(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        data = self.validated(UploadStartSerializer)
        upload = uploads.upload_start(project=project, actor=request.user, filename=data["filename"], total_bytes=data["size"])
        return self.respond(upload, UploadSerializer, status.HTTP_201_CREATED)


class UploadDetailApi(OrganizationAPIView):
    """GET tells where to resume; PUT appends one chunk (raw body, Content-Range header)."""

    @extend_schema(responses=UploadSerializer)
    def get(self, request, org, pk):
        return self.respond(scoped_get(Upload, self.organization, pk=pk), UploadSerializer)

    @extend_schema(request={"application/octet-stream": {"type": "string", "format": "binary"}}, responses=UploadSerializer)
    def put(self, request, org, pk):
        upload = scoped_get(Upload, self.organization, pk=pk)
        byte_range = uploads.parse_content_range(request.headers.get("Content-Range"))
        upload = uploads.upload_append(upload=upload, byte_range=byte_range, body=request.stream)
        return self.respond(upload, UploadSerializer)


class UploadFinishApi(OrganizationAPIView):
    @extend_schema(request=None, responses={201: VideoSerializer})
    def post(self, request, org, pk):
        upload = scoped_get(Upload, self.organization, pk=pk)
        video = uploads.upload_finish(upload=upload, actor=request.user)
        return self.respond(video, VideoSerializer, status.HTTP_201_CREATED)


class VideoDetailApi(OrganizationAPIView):
    @extend_schema(responses=VideoSerializer)
    def get(self, request, org, pk):
        return self.respond(selectors.video_get(organization=self.organization, video_id=pk), VideoSerializer)

    @extend_schema(responses={204: None})
    def delete(self, request, org, pk):
        services.video_delete(video=selectors.video_get(organization=self.organization, video_id=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class VideoShotListApi(OrganizationAPIView):
    @extend_schema(responses=ShotSerializer(many=True))
    def get(self, request, org, pk):
        video = selectors.video_get(organization=self.organization, video_id=pk)
        return self.paginated(selectors.shot_list(organization=self.organization, video=video), ShotSerializer)


class VideoFileApi(OrganizationAPIView):
    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request, org, pk):
        video = selectors.video_get(organization=self.organization, video_id=pk)
        return serve_stored_file(video.file)


class FrameListApi(OrganizationAPIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("status", str),
            OpenApiParameter("is_keyframe", bool),
            OpenApiParameter("video_id", int),
            OpenApiParameter("shot_id", int),
        ],
        responses=FrameSerializer(many=True),
    )
    def get(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        queryset = selectors.frame_list(organization=self.organization, project=project).select_related("completed_by")
        return self.paginated(self.filtered(FrameFilter, queryset), FrameSerializer)


class FrameDetailApi(OrganizationAPIView):
    @extend_schema(
        parameters=[OpenApiParameter("include_rejected", bool)],
        responses=FrameDetailSerializer,
    )
    def get(self, request, org, pk):
        frame = selectors.frame_get(organization=self.organization, frame_id=pk)
        annotations = annotation_list(organization=self.organization, frame_id=frame.pk).select_related("author")
        if request.query_params.get("include_rejected") not in ("1", "true"):
            annotations = annotations.exclude(status=AnnotationStatus.REJECTED)
        context = {
            **self.get_serializer_context(),
            "annotations": annotations,
            "proposal_state": frame_proposals_state(frame=frame),
        }
        return Response(FrameDetailSerializer(frame, context=context).data)


class FrameImageApi(OrganizationAPIView):
    @extend_schema(responses={(200, "image/jpeg"): bytes, (200, "image/png"): bytes})
    def get(self, request, org, pk):
        image = selectors.frame_get(organization=self.organization, frame_id=pk).image
        return serve_stored_file(image, content_type=stored_image_type(image.name))


class FrameThumbnailApi(OrganizationAPIView):
    @extend_schema(responses={(200, "image/jpeg"): bytes})
    def get(self, request, org, pk):
        frame = selectors.frame_get(organization=self.organization, frame_id=pk)
        return serve_stored_file(frame.thumbnail or frame.image, content_type="image/jpeg")


class FrameCompleteApi(OrganizationAPIView):
    """Complete the frame you hold; a reviewer may complete any frame."""

    write_role = Role.ANNOTATOR

    @extend_schema(request=None, responses=FrameSerializer)
    def post(self, request, org, pk):
        frame = frame_complete(
            frame=selectors.frame_get(organization=self.organization, frame_id=pk),
            actor=request.user,
            actor_role=Role(self.membership.role),
        )
        return self.respond(frame, FrameSerializer)


class FrameReopenApi(OrganizationAPIView):
    """Take a complete frame back to work, so its boxes may change again."""

    write_role = Role.REVIEWER

    @extend_schema(request=None, responses=FrameSerializer)
    def post(self, request, org, pk):
        frame = frame_reopen(frame=selectors.frame_get(organization=self.organization, frame_id=pk))
        return self.respond(frame, FrameSerializer)


class FrameReleaseSerializer(serializers.Serializer):
    skip = serializers.BooleanField(default=False, help_text="Also move the frame down the queue.")


class FrameReleaseApi(OrganizationAPIView):
    """Give back a frame you hold (to skip it, or to stop for the day)."""

    write_role = Role.ANNOTATOR

    @extend_schema(request=FrameReleaseSerializer, responses=FrameSerializer)
    def post(self, request, org, pk):
        frame = selectors.frame_get(organization=self.organization, frame_id=pk)
        data = self.validated(FrameReleaseSerializer)
        return self.respond(services.frame_release(frame=frame, user=request.user, skip=data["skip"]), FrameSerializer)


class QueueNextApi(OrganizationAPIView):
    """Take the next frame to label (and hold it for you)."""

    write_role = Role.ANNOTATOR

    @extend_schema(request=None, responses={200: FrameSerializer, 204: None})
    def post(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        frame = services.frame_assign_next(organization=self.organization, project=project, user=request.user)
        if frame is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return self.respond(frame, FrameSerializer)


class QueuePeekQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=20, default=3)


class QueuePeekApi(OrganizationAPIView):
    """The frames that come after the next one, for prefetching; nothing is assigned."""

    pagination_class = None  # a few frames, whole
    @extend_schema(parameters=[OpenApiParameter("limit", int)], responses=FrameSerializer(many=True))
    def get(self, request, org, project_id):
        project = project_get(organization=self.organization, project_id=project_id)
        limit = self.validated(QueuePeekQuerySerializer, data=request.query_params)["limit"]
        frames = selectors.frame_queue(organization=self.organization, project=project, user=request.user)[:limit]
        return Response(FrameSerializer(frames, many=True, context=self.get_serializer_context()).data)
