from rest_framework import serializers

from labeller.api.fields import BoxField
from labeller.training.models import TrainingRun


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


class LearnedSerializer(serializers.Serializer):
    """The latest promotion of a retrained model, as annotators are told it."""

    notice = serializers.CharField()
    at = serializers.DateTimeField()
    version = serializers.IntegerField(help_text="The promoted run's number.")


class AnnotatorStatsSerializer(serializers.Serializer):
    boxes_today = serializers.IntegerField()
    frames_today = serializers.IntegerField()
    proposals_accepted = serializers.IntegerField()
    proposals_rejected = serializers.IntegerField()
    acceptance_rate = serializers.FloatField(allow_null=True)
    model = ModelInfoSerializer()
    learned = LearnedSerializer(allow_null=True, help_text="Null until a retrained model was promoted.")


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


class ShapeAdjustmentSerializer(serializers.Serializer):
    weights = serializers.ListField(
        child=serializers.FloatField(),
        help_text="Logistic weights on the standardised logit of the score's chance, the box's log share of the "
                  "frame, its square, the squared log aspect ratio, how much of it a followed box covers (times "
                  "that box's score) and, for a followed box, whether a likelier followed box has its label; the "
                  "intercept last.",
    )


class ChanceHonestySerializer(serializers.Serializer):
    decided = serializers.IntegerField(help_text="Decided proposals of the recent frames with a recorded chance.")
    expected_useful = serializers.FloatField(
        help_text="How many of them the policy expected to be kept: their chances summed."
    )
    useful = serializers.IntegerField(help_text="How many were kept (or, hidden, matched a box a person confirmed).")
    brier = serializers.FloatField(
        allow_null=True, help_text="Mean squared gap between chance and outcome: 0 is perfect, 0.25 a coin toss's."
    )


class ProposalPolicySerializer(serializers.Serializer):
    decisions = serializers.IntegerField(help_text="Proposals decided so far (frames completed).")
    cold = serializers.BooleanField(help_text="Too little history yet: only the best few guesses are shown.")
    break_even = serializers.FloatField(help_text="A proposal is shown when its chance of being kept is above this.")
    break_evens = serializers.DictField(
        child=serializers.FloatField(),
        help_text="Per source, the break-even of its own proposals: higher where its kept ones often need fixing.",
    )
    label_wrong = serializers.FloatField(help_text="Share of kept proposals whose label was fixed.")
    box_loose = serializers.FloatField(help_text="Share of kept proposals whose box was fixed.")
    sources = serializers.DictField(child=CalibrationCurveSerializer())
    shape = serializers.DictField(
        child=ShapeAdjustmentSerializer(),
        help_text="Per source with enough history: how the box's size and shape move the chance from its score.",
    )
    recent_frames = serializers.IntegerField()
    shown_per_frame = serializers.FloatField()
    generated_per_frame = serializers.FloatField()
    honesty = ChanceHonestySerializer(help_text="Whether the chances given on the recent frames were borne out.")


class TrainingRunSerializer(serializers.ModelSerializer):
    """A retraining run and, once it succeeded, the model version it made."""

    project_id = serializers.IntegerField(read_only=True)
    parent_number = serializers.IntegerField(source="parent.number", allow_null=True, read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", allow_null=True, read_only=True)
    is_current = serializers.SerializerMethodField()
    is_pending = serializers.SerializerMethodField(help_text="An embedding promoted while its index is being built.")
    train_frames = serializers.SerializerMethodField()
    val_frames = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id", "project_id", "number", "kind", "state", "trigger", "requested_by", "parent_number", "is_current",
            "confirmed_boxes", "train_frames", "val_frames", "hyperparameters", "loss_curve", "epochs_done",
            "epochs_total", "metrics", "decision", "error", "cancel_requested", "is_pending", "created_at", "started_at",
            "heartbeat_at", "finished_at", "promoted_at",
        ]
        read_only_fields = fields

    def get_is_current(self, run) -> bool:
        return run.pk in self.context.get("in_use", {}).get("current", ())

    def get_is_pending(self, run) -> bool:
        return run.pk in self.context.get("in_use", {}).get("pending", ())

    def get_train_frames(self, run) -> int:
        return len(run.train_frame_ids)

    def get_val_frames(self, run) -> int:
        return len(run.val_frame_ids)


class TrainingRunStartSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["detector", "embedding"], default="detector", required=False)


class ProjectLearningSerializer(serializers.Serializer):
    retrain_every_boxes = serializers.IntegerField(
        min_value=0, max_value=1_000_000,
        help_text="Beat starts a run when this many boxes were confirmed since the last one; 0 turns it off.",
    )
    queue_order = serializers.ChoiceField(
        choices=["uncertain_first", "sequential"],
        help_text="After keyframes: the frames the models are least sure of first, or video order.",
    )
    current_run_number = serializers.IntegerField(source="current_run.number", allow_null=True, read_only=True)
    current_embedding_number = serializers.IntegerField(
        source="current_embedding_run.number", allow_null=True, read_only=True,
        help_text="Null: the configured feature model.",
    )
    notice = serializers.CharField(read_only=True)
