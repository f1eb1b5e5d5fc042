from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "labeller.annotations"
    label = "annotations"
