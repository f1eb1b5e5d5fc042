"""The learning clock: how many changes the learning loop has seen per project.

Kept apart so the hooks (called from the annotation services) can tick it without
importing the proposing side.
"""

from django.db import IntegrityError, transaction
from django.db.models import F

from labeller.training.models import LearningClock


def learning_clock_tick(*, project_id: int) -> None:
    """One more change to learn from; call inside the transaction that makes it."""
    if LearningClock.objects.filter(project_id=project_id).update(changes=F("changes") + 1):
        return
    try:
        with transaction.atomic():
            LearningClock.objects.create(project_id=project_id, changes=1)
    except IntegrityError:  # created meanwhile by another request
        LearningClock.objects.filter(project_id=project_id).update(changes=F("changes") + 1)


def learning_clock_read(*, project_id: int) -> int:
    return LearningClock.objects.filter(project_id=project_id).values_list("changes", flat=True).first() or 0
