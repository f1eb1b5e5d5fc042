from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "labeller.exports"
    label = "exports"
