"""The lock an import takes on its project serialises imports into that project and blocks
nothing else: annotators go on drawing boxes in it while an import writes."""

import threading

import pytest
from django.db import OperationalError, connection, transaction

from labeller.media.images import project_lock
from tests.concurrency import in_parallel
from tests.conftest import api_path, client_for
from tests.factories import FrameFactory, LabelFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent writers (PostgreSQL)"),
]


def holding_the_lock(project, locked: threading.Event, other_done: threading.Event):
    """An import in its write transaction; True when the other call ended while it still held the lock."""

    def call():
        with transaction.atomic():
            project_lock(project)
            locked.set()
            return other_done.wait(timeout=5)

    return call


def after_the_lock(locked: threading.Event, done: threading.Event, call):
    def run():
        try:
            assert locked.wait(timeout=10)
            return call()
        finally:
            done.set()

    return run


def test_a_box_is_drawn_in_the_project_while_an_import_holds_its_lock(tenant):
    frame = FrameFactory(project=tenant.project, width=640, height=360)
    label = LabelFactory(project=tenant.project, name="cat")
    url = api_path(tenant, f"frames/{frame.pk}/annotations/")
    locked, drawn = threading.Event(), threading.Event()

    def draw():
        return client_for(tenant.annotator).post(url, {"box": [10, 10, 60, 60], "label_id": label.pk}, format="json")

    held, response = in_parallel(
        [holding_the_lock(tenant.project, locked, drawn), after_the_lock(locked, drawn, draw)]
    )

    assert getattr(response, "status_code", response) == 201, getattr(response, "content", response)
    assert held is True  # the box did not wait for the import to commit


def test_a_second_import_into_the_project_waits_for_the_first(tenant):
    locked, tried = threading.Event(), threading.Event()

    def second_import():
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '300ms'")
            project_lock(tenant.project)

    held, second = in_parallel(
        [holding_the_lock(tenant.project, locked, tried), after_the_lock(locked, tried, second_import)]
    )

    assert held is True
    assert isinstance(second, OperationalError) and "lock timeout" in str(second), second
