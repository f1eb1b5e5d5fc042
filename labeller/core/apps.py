from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "labeller.core"
    label = "core"

    def ready(self) -> None:
        # Load the Celery app with Django, so @shared_task binds to it (and its broker)
        # rather than to Celery's default app, which would talk to amqp://localhost.
        import workers.celery  # noqa: F401
