from django.contrib import admin

from labeller.media.models import Frame, Shot, Video


@admin.register(Video)
class VideoAdmin(admin.ModelAdmin):
    list_display = ["original_name", "project", "stage", "progress", "duration_s", "frame_count", "created_at"]
    list_filter = ["stage", "project__organization"]
    search_fields = ["original_name"]


@admin.register(Shot)
class ShotAdmin(admin.ModelAdmin):
    list_display = ["video", "index", "start_frame", "end_frame"]
    list_filter = ["video__project"]


@admin.register(Frame)
class FrameAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "video", "shot", "index", "is_keyframe", "status"]
    list_filter = ["status", "is_keyframe", "project"]
    raw_id_fields = ["video", "shot", "assigned_to", "completed_by"]
