"""Parallel queue/next calls, with real threads and connections (SQLite and PostgreSQL).

Each call is held just before it commits (in ``frame_proposals_prepare_open``, the last step of
``frame_assign_next``) until the other call has got that far too, or a moment has passed: calls
that do not wait on each other are then both in flight at once, as they are in production.
"""

import threading
import time
from unittest import mock

import pytest
from django.db import connection

from labeller.media import services
from labeller.media.models import Frame, FrameStatus
from tests.concurrency import in_parallel
from tests.conftest import api_path
from tests.factories import FrameFactory

pytestmark = pytest.mark.django_db(transaction=True)

OVERLAP_WAIT_S = 1.5


def claim_in_parallel(tenant, roles: list[str]) -> tuple[list, int]:
    """POST queue/next once per role, each from its own thread; return the answers and how many
    calls were inside ``frame_assign_next`` at the same time (at most)."""
    prepare_open = services.frame_proposals_prepare_open
    lock = threading.Lock()
    inside = {"now": 0, "most": 0}

    def held_before_commit(*, frame):
        with lock:
            inside["now"] += 1
            inside["most"] = max(inside["most"], inside["now"])
        deadline = time.monotonic() + OVERLAP_WAIT_S
        while time.monotonic() < deadline and inside["most"] < len(roles):
            time.sleep(0.01)
        with lock:
            inside["now"] -= 1
        return prepare_open(frame=frame)

    def claim(role):
        return lambda: tenant.client(role).post(api_path(tenant, f"projects/{tenant.project.pk}/queue/next"))

    with mock.patch.object(services, "frame_proposals_prepare_open", held_before_commit):
        answers = in_parallel([claim(role) for role in roles], start_together=True)
    return answers, inside["most"]


def test_parallel_claims_of_one_person_hand_out_one_frame(tenant):
    frames = [FrameFactory(project=tenant.project) for _ in range(4)]

    answers, _ = claim_in_parallel(tenant, ["annotator", "annotator", "annotator"])

    assert [getattr(a, "status_code", a) for a in answers] == [200, 200, 200], answers
    assert {a.json()["id"] for a in answers} == {frames[0].pk}  # the second and third resume it
    held = Frame.objects.filter(project=tenant.project, assigned_to=tenant.annotator)
    assert list(held.values_list("pk", "status")) == [(frames[0].pk, FrameStatus.IN_PROGRESS)]
    assert not Frame.objects.filter(assigned_to__isnull=False).exclude(pk=frames[0].pk).exists()


def test_parallel_claims_of_different_people_get_different_frames_without_waiting(tenant):
    frames = [FrameFactory(project=tenant.project) for _ in range(4)]

    answers, most_at_once = claim_in_parallel(tenant, ["annotator", "reviewer", "admin"])

    assert [getattr(a, "status_code", a) for a in answers] == [200, 200, 200], answers
    assert sorted(a.json()["id"] for a in answers) == [f.pk for f in frames[:3]]
    for answer, user in zip(answers, (tenant.annotator, tenant.reviewer, tenant.admin)):
        assert Frame.objects.get(pk=answer.json()["id"]).assigned_to == user
    if connection.vendor == "postgresql":
        # Only one person's claims queue up: different people still claim side by side.
        # (SQLite runs one write transaction at a time whatever the code does.)
        assert most_at_once == 3
