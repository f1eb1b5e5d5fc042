from django.contrib import admin

from labeller.annotations.models import Annotation, AnnotationEvent, Label


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "color", "hotkey", "deprecated"]
    list_filter = ["project", "deprecated"]
    search_fields = ["name"]


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ["id", "frame", "label", "status", "source", "score", "author", "version"]
    list_filter = ["status", "source", "project"]
    raw_id_fields = ["frame", "label", "author"]


@admin.register(AnnotationEvent)
class AnnotationEventAdmin(admin.ModelAdmin):
    """Read-only: the history is append-only."""

    list_display = ["id", "annotation_id", "action", "actor", "created_at"]
    list_filter = ["action"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
