from django.apps import AppConfig


class MediaConfig(AppConfig):
    name = "labeller.media"
    label = "media"
