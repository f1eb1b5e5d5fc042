from rest_framework import serializers
from rest_framework.reverse import reverse

from labeller.annotations.serializers import AnnotationSerializer
from labeller.media.models import Frame, Shot, Video


class VideoSerializer(serializers.ModelSerializer):
    shot_count = serializers.IntegerField(read_only=True, default=None)
    keyframe_count = serializers.IntegerField(read_only=True, default=None)

    class Meta:
        model = Video
        fields = [
            "id",
            "project_id",
            "original_name",
            "size_bytes",
            "stage",
            "progress",
            "error",
            "duration_s",
            "fps",
            "frame_count",
            "width",
            "height",
            "rotation",
            "codec",
            "shot_count",
            "keyframe_count",
            "version",
            "created_at",
        ]


class ShotSerializer(serializers.ModelSerializer):
    class Meta:
        model = Shot
        fields = ["id", "video_id", "index", "start_frame", "end_frame"]


class FrameSerializer(serializers.ModelSerializer):
    image_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()
    completed_by = serializers.CharField(source="completed_by.username", read_only=True, default=None)

    class Meta:
        model = Frame
        fields = [
            "id",
            "project_id",
            "video_id",
            "shot_id",
            "index",
            "timestamp_s",
            "original_name",
            "width",
            "height",
            "is_keyframe",
            "status",
            "priority",
            "image_url",
            "thumbnail_url",
            "completed_by",
            "completed_at",
            "version",
        ]

    def _media_url(self, frame, kind: str) -> str:
        org = self.context["organization"].slug
        # The version in the query lets browsers cache the bytes until the frame changes.
        return reverse(f"api:frame-{kind}", kwargs={"org": org, "pk": frame.pk}) + f"?v={frame.version}"

    def get_image_url(self, frame) -> str:
        return self._media_url(frame, "image")

    def get_thumbnail_url(self, frame) -> str:
        return self._media_url(frame, "thumbnail")


class FrameDetailSerializer(FrameSerializer):
    """The frame with its confirmed boxes and open proposals, in one answer for the workspace."""

    annotations = serializers.SerializerMethodField()
    proposals_state = serializers.SerializerMethodField(
        help_text="fresh; refreshing (new proposals are on their way: wait for them); or stale."
    )
    proposals_index_version = serializers.SerializerMethodField(
        help_text="The learning loop's state the proposals were built from (-1: not built yet)."
    )
    index_version = serializers.SerializerMethodField(help_text="The learning loop's state now.")

    class Meta(FrameSerializer.Meta):
        fields = FrameSerializer.Meta.fields + ["annotations", "proposals_state", "proposals_index_version", "index_version"]

    def get_proposals_state(self, frame) -> str:
        return self.context["proposal_state"]["proposals_state"]

    def get_proposals_index_version(self, frame) -> int:
        return self.context["proposal_state"]["proposals_index_version"]

    def get_index_version(self, frame) -> int:
        return self.context["proposal_state"]["index_version"]

    def get_annotations(self, frame) -> list[dict]:
        return AnnotationSerializer(self.context["annotations"], many=True, context=self.context).data
