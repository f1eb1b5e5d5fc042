from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "labeller.projects"
    label = "projects"
