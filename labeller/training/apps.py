from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "labeller.training"
    label = "training"
