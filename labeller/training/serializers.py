from rest_framework import serializers

from labeller.api.fields import BoxField


class SuggestLabelsRequestSerializer(serializers.Serializer):
    """Needs ``context["frame"]``: the box is cropped from it, so it must lie on it and have an area."""

    box = BoxField()

    def validate_box(self, box: list[float]) -> list[float]:
        frame = self.context["frame"]
        x1, y1, x2, y2 = box
        if not x2 > x1:
            raise serializers.ValidationError(
                f"x2 ({x2}) must be greater than x1 ({x1}): a box needs a positive width."
            )
        if not y2 > y1:
            raise serializers.ValidationError(
                f"y2 ({y2}) must be greater than y1 ({y1}): a box needs a positive height."
            )
        if x1 < 0 or y1 < 0 or x2 > frame.width or y2 > frame.height:
            raise serializers.ValidationError(f"{box} lies outside the {frame.width}x{frame.height} frame.")
        return box


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


class CalibrationCurveSerializer(serializers.Serializer):
    decisions = serializers.IntegerField(help_text="Decided proposals of this source the curve was fitted on.")
    prior = serializers.FloatField()
    curve = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        help_text="[score, P(useful)] points; chances between points are interpolated.",
    )


class ProposalPolicySerializer(serializers.Serializer):
    decisions = serializers.IntegerField(help_text="Proposals decided so far (frames completed).")
    cold = serializers.BooleanField(help_text="Too little history yet: only the best few guesses are shown.")
    break_even = serializers.FloatField(help_text="A proposal is shown when its chance of being kept is above this.")
    label_wrong = serializers.FloatField(help_text="Share of kept proposals whose label was fixed.")
    box_loose = serializers.FloatField(help_text="Share of kept proposals whose box was fixed.")
    sources = serializers.DictField(child=CalibrationCurveSerializer())
    recent_frames = serializers.IntegerField()
    shown_per_frame = serializers.FloatField()
    generated_per_frame = serializers.FloatField()
