from rest_framework import serializers

from labeller.projects.models import Project


# Served to every member with each project; a notes field, not a document store.
PROJECT_DESCRIPTION_MAX_LENGTH = 10_000


class ProjectSerializer(serializers.ModelSerializer):
    description = serializers.CharField(max_length=PROJECT_DESCRIPTION_MAX_LENGTH, allow_blank=True, required=False)

    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "description",
            "keyframes_min_per_shot",
            "keyframes_max_per_shot",
            "every_nth_frame",
            "jpeg_quality",
            "version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "version", "created_at", "updated_at"]


class ProjectUpdateSerializer(ProjectSerializer):
    version = serializers.IntegerField(min_value=1, help_text="The version you last saw; a stale one answers 409.")

    class Meta(ProjectSerializer.Meta):
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {name: {"required": False} for name in ProjectSerializer.Meta.fields if name != "version"}

