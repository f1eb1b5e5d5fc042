from rest_framework import serializers

from labeller.annotations.models import Annotation, AnnotationEvent, Label
from labeller.api.fields import BoxField, ScopedPrimaryKeyField, VersionSerializer


class LabelSerializer(serializers.ModelSerializer):
    parent_name = serializers.CharField(read_only=True)
    depth = serializers.IntegerField(read_only=True)

    class Meta:
        model = Label
        fields = ["id", "name", "parent_name", "depth", "color", "hotkey", "deprecated", "version", "created_at"]
        read_only_fields = ["id", "parent_name", "depth", "deprecated", "version", "created_at"]


class LabelUpdateSerializer(VersionSerializer):
    color = serializers.CharField(max_length=7, required=False)
    hotkey = serializers.CharField(max_length=1, required=False, allow_blank=True)
    deprecated = serializers.BooleanField(required=False)


class AnnotationSerializer(serializers.ModelSerializer):
    box = serializers.SerializerMethodField()
    label_name = serializers.CharField(source="label.name", read_only=True, default=None)
    author = serializers.CharField(source="author.username", read_only=True, default=None)

    class Meta:
        model = Annotation
        fields = [
            "id",
            "frame_id",
            "label_id",
            "label_name",
            "box",
            "status",
            "source",
            "score",
            "suggestions",
            "model_version",
            "author",
            "version",
            "created_at",
            "updated_at",
        ]

    def get_box(self, annotation) -> list[float]:
        return [annotation.x1, annotation.y1, annotation.x2, annotation.y2]


class AnnotationCreateSerializer(serializers.Serializer):
    box = BoxField()
    label_id = ScopedPrimaryKeyField(model=Label, allow_null=True, required=False, default=None)


class AnnotationUpdateSerializer(VersionSerializer):
    box = BoxField(required=False)
    label_id = ScopedPrimaryKeyField(model=Label, allow_null=True, required=False)


class AnnotationConfirmSerializer(VersionSerializer):
    label_id = ScopedPrimaryKeyField(model=Label, allow_null=False, required=False)


class AnnotationEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", read_only=True, default=None)

    class Meta:
        model = AnnotationEvent
        fields = ["id", "annotation_id", "frame_id", "actor", "action", "before", "after", "created_at"]
