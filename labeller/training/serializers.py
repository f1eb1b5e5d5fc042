from rest_framework import serializers

from labeller.api.fields import BoxField


class SuggestLabelsRequestSerializer(serializers.Serializer):
    box = BoxField()


class ModelInfoSerializer(serializers.Serializer):
    weights_description = serializers.CharField()
    is_random = serializers.BooleanField()
    version = serializers.IntegerField()
    index_size = serializers.IntegerField(source="size")
    updated_at = serializers.DateTimeField(allow_null=True)


class LabelSuggestionSerializer(serializers.Serializer):
    label_id = serializers.IntegerField()
    label_name = serializers.CharField()
    score = serializers.FloatField()


class SuggestLabelsResponseSerializer(serializers.Serializer):
    suggestions = LabelSuggestionSerializer(many=True)
    model = ModelInfoSerializer()


class AnnotatorStatsSerializer(serializers.Serializer):
    boxes_today = serializers.IntegerField()
    frames_today = serializers.IntegerField()
    proposals_accepted = serializers.IntegerField()
    proposals_rejected = serializers.IntegerField()
    acceptance_rate = serializers.FloatField(allow_null=True)
    model = ModelInfoSerializer()


class EmbeddingReportSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project_id = serializers.IntegerField()
    crop_count = serializers.IntegerField()
    label_count = serializers.IntegerField()
    rows = serializers.JSONField()
    grid_url = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_grid_url(self, report) -> str | None:
        if not report.grid:
            return None
        return f"/api/v1/orgs/{self.context['organization'].slug}/embedding-reports/{report.pk}/grid"
