from django.urls import reverse
from rest_framework import serializers

from labeller.exports.models import DatasetExport, ExportFormat, ExportState


class ExportRequestSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=ExportFormat.choices, default=ExportFormat.COCO)
    video_ids = serializers.ListField(child=serializers.IntegerField(min_value=1), default=list, max_length=10_000)
    shot_ids = serializers.ListField(child=serializers.IntegerField(min_value=1), default=list, max_length=10_000)
    label_ids = serializers.ListField(child=serializers.IntegerField(min_value=1), default=list, max_length=10_000)
    complete_frames_only = serializers.BooleanField(default=False)
    confirmed_only = serializers.BooleanField(default=True)
    include_images = serializers.BooleanField(default=False, help_text="Put the frame images in the download (a zip).")
    val_share = serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        allow_null=True,
        default=None,
        help_text="Split into train and validation as the learning loop does, with this share in validation "
        "(0.2 is the share training runs use); null for no split.",
    )


class DatasetExportSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = DatasetExport
        fields = [
            "id", "format", "video_ids", "shot_ids", "label_ids", "complete_frames_only", "confirmed_only",
            "include_images", "val_share", "split_salt", "state", "progress", "error", "content_type", "size_bytes",
            "image_count", "annotation_count", "created_at", "started_at", "heartbeat_at", "finished_at",
            "download_url",
        ]
        read_only_fields = fields

    def get_download_url(self, export: DatasetExport) -> str | None:
        if export.state != ExportState.DONE:
            return None
        org = self.context["organization"].slug
        return reverse("api:export-file", kwargs={"org": org, "pk": export.pk})
