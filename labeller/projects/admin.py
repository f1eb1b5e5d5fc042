from django.contrib import admin

from labeller.projects.models import Project


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "every_nth_frame", "created_at"]
    list_filter = ["organization"]
    search_fields = ["name"]
