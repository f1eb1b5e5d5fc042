from rest_framework import serializers

from labeller.annotations.models import Annotation, AnnotationEvent, Label, LabelEvent
from labeller.annotations.services import BoxAction
from labeller.api.fields import BoxField, ScopedPrimaryKeyField, VersionSerializer


class LabelSerializer(serializers.ModelSerializer):
    parent_name = serializers.CharField(read_only=True, allow_null=True)  # null for a top-level label
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


class BulkBoxSerializer(serializers.Serializer):
    """One box of a bulk request: ``create`` takes box (and label_id); ``update`` and ``confirm``
    take the box's ``id`` and the ``version`` last seen, update also box and/or label_id."""

    action = serializers.ChoiceField(choices=[action.value for action in BoxAction])
    id = serializers.IntegerField(required=False, min_value=1)
    version = serializers.IntegerField(required=False, min_value=1)
    box = BoxField(required=False)
    label_id = ScopedPrimaryKeyField(model=Label, allow_null=True, required=False)

    def validate(self, data):
        action = BoxAction(data["action"])
        if action == BoxAction.CREATE:
            if "box" not in data:
                raise serializers.ValidationError({"box": "A new box needs its box."})
            if "id" in data:
                raise serializers.ValidationError({"id": "A new box has no id yet; update or confirm an existing one."})
        else:
            missing = {"id", "version"} - set(data)
            if missing:
                raise serializers.ValidationError(
                    {name: f"{action.value} needs the box's {name}." for name in sorted(missing)}
                )
        if action == BoxAction.UPDATE and "box" not in data and "label_id" not in data:
            raise serializers.ValidationError({"box": "Nothing to change: send box and/or label_id."})
        if action == BoxAction.CONFIRM and "box" in data:
            raise serializers.ValidationError({"box": "confirm takes no box; use update to move it."})
        return data


class AnnotationBulkSerializer(serializers.Serializer):
    boxes = BulkBoxSerializer(many=True, min_length=1, max_length=500)
    all_or_nothing = serializers.BooleanField(default=False)


class BulkBoxResultSerializer(serializers.Serializer):
    """One box's outcome; ``annotation`` when saved, else ``code``/``detail`` (and ``current`` on 409)."""

    index = serializers.IntegerField()
    status = serializers.IntegerField()
    annotation = AnnotationSerializer(required=False)
    code = serializers.CharField(required=False)
    detail = serializers.CharField(required=False)
    errors = serializers.DictField(required=False)
    current = AnnotationSerializer(required=False)


class AnnotationBulkResultSerializer(serializers.Serializer):
    frame_id = serializers.IntegerField()
    saved = serializers.IntegerField()
    refused = serializers.IntegerField()
    results = BulkBoxResultSerializer(many=True)


# --- reshaping the taxonomy ----------------------------------------------------------------


class LabelRenameSerializer(VersionSerializer):
    name = serializers.CharField(max_length=200, help_text="The full new dotted name; sub-labels follow.")


class LabelMoveSerializer(VersionSerializer):
    parent_id = ScopedPrimaryKeyField(model=Label, allow_null=True, help_text="The new parent; null for the top level.")


class LabelMergeSerializer(VersionSerializer):
    into_id = ScopedPrimaryKeyField(model=Label, help_text="The label that takes over every box.")


class MovedLabelSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name_before = serializers.CharField()
    name = serializers.CharField()


class MergedLabelSerializer(serializers.Serializer):
    name_before = serializers.CharField()
    into_id = serializers.IntegerField()
    into = serializers.CharField()
    moved_annotations = serializers.IntegerField()


class LabelMergeResultSerializer(serializers.Serializer):
    into = LabelSerializer(source="target")
    moved_annotations = serializers.IntegerField(help_text="Boxes that changed label, sub-labels' included.")
    moved_labels = MovedLabelSerializer(many=True, help_text="Sub-labels that went under the target as they were.")
    merged_labels = MergedLabelSerializer(
        many=True, help_text="Sub-labels merged into the target's sub-label of the same name."
    )


class TaxonomyEntrySerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    color = serializers.RegexField(r"^#[0-9a-fA-F]{6}$", required=False)
    hotkey = serializers.CharField(max_length=1, required=False, allow_blank=True)
    deprecated = serializers.BooleanField(required=False)


class TaxonomySerializer(serializers.Serializer):
    """The taxonomy as a file: ``{"format": "labeller-taxonomy", "labels": [...]}``."""

    format = serializers.CharField(required=False)
    labels = TaxonomyEntrySerializer(many=True, max_length=10_000)


class TaxonomyImportResultSerializer(serializers.Serializer):
    created = serializers.ListField(child=serializers.CharField())
    updated = serializers.ListField(child=serializers.CharField())
    unchanged = serializers.IntegerField()


class LabelEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", read_only=True, default=None, allow_null=True)

    class Meta:
        model = LabelEvent
        fields = ["id", "label_id", "actor", "action", "before", "after", "created_at"]


# --- progress -------------------------------------------------------------------------------


class FrameProgressSerializer(serializers.Serializer):
    video_id = serializers.IntegerField(allow_null=True, help_text="null: the project's still images")
    name = serializers.CharField()
    complete = serializers.IntegerField()
    total = serializers.IntegerField()


class LabelCountSerializer(serializers.Serializer):
    label_id = serializers.IntegerField()
    name = serializers.CharField()
    confirmed = serializers.IntegerField()


class ProposalDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()


class ProjectProgressSerializer(serializers.Serializer):
    complete = serializers.IntegerField(help_text="complete frames of the project")
    total = serializers.IntegerField()
    videos = FrameProgressSerializer(many=True)
    labels = LabelCountSerializer(many=True, help_text="confirmed boxes per label, most first")
    proposals = ProposalDaySerializer(many=True, help_text="proposals kept and rejected per day, oldest first")


class ProgressWindowSerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=365, default=30)
