"""Completing and reopening frames: who may complete which frame, and a complete frame's boxes
stay as they were until a reviewer reopens it."""

import threading
import time

import pytest
from django.db import connections, transaction

from labeller.annotations.models import Annotation, AnnotationEvent, AnnotationSource, AnnotationStatus
from labeller.annotations.services import Box, annotation_create, frame_complete
from labeller.core.errors import DomainError
from labeller.media.models import Frame, FrameStatus
from labeller.tenants.models import Role
from tests.conftest import api_path, client_for
from tests.factories import AnnotationFactory, FrameFactory, LabelFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def label(tenant):
    return LabelFactory(project=tenant.project, name="food.dish.dessert")


@pytest.fixture
def colleague(tenant):
    """A second annotator of the organisation."""
    user = UserFactory(username="acme-colleague")
    MembershipFactory(user=user, organization=tenant.organization, role=Role.ANNOTATOR)
    return user


def held_frame(tenant, holder):
    frame = FrameFactory(project=tenant.project, width=640, height=360, status=FrameStatus.IN_PROGRESS)
    Frame.objects.filter(pk=frame.pk).update(assigned_to=holder)
    frame.refresh_from_db()
    return frame


def open_proposal(frame, label):
    return AnnotationFactory(
        frame=frame, label=label, status=AnnotationStatus.PROPOSED, source=AnnotationSource.MODEL, author=None
    )


def frame_state(frame) -> tuple:
    frame = Frame.objects.get(pk=frame.pk)
    return frame.status, frame.assigned_to_id, frame.completed_by_id, frame.version


def box_state(frame) -> list:
    return list(Annotation.objects.filter(frame=frame).order_by("pk").values_list("pk", "status", "version", "x1", "label_id"))


def complete(tenant, frame, role):
    return tenant.client(role).post(api_path(tenant, f"frames/{frame.pk}/complete"))


# --- who may complete a frame ---------------------------------------------------------------


def test_an_annotator_cannot_complete_a_frame_someone_else_holds(tenant, colleague, label):
    frame = held_frame(tenant, colleague)
    proposal = open_proposal(frame, label)
    before = (frame_state(frame), box_state(frame), AnnotationEvent.objects.count())

    response = complete(tenant, frame, "annotator")

    assert response.status_code == 403, response.content
    assert "reviewer" in response.json()["detail"]
    assert (frame_state(frame), box_state(frame), AnnotationEvent.objects.count()) == before
    proposal.refresh_from_db()
    assert proposal.status == AnnotationStatus.PROPOSED  # not turned into a hard negative


def test_an_annotator_cannot_complete_a_frame_nobody_holds(tenant, label):
    frame = FrameFactory(project=tenant.project, width=640, height=360)
    open_proposal(frame, label)
    before = (frame_state(frame), box_state(frame))

    assert complete(tenant, frame, "annotator").status_code == 403
    assert (frame_state(frame), box_state(frame)) == before


def test_an_annotator_completes_the_frame_they_hold(tenant, label):
    frame = held_frame(tenant, tenant.annotator)
    proposal = open_proposal(frame, label)

    response = complete(tenant, frame, "annotator")

    assert response.status_code == 200, response.content
    assert (response.json()["status"], response.json()["completed_by"]) == ("complete", "acme-annotator")
    proposal.refresh_from_db()
    assert proposal.status == AnnotationStatus.REJECTED


@pytest.mark.parametrize("role", ["reviewer", "admin"])
def test_a_reviewer_or_admin_may_complete_a_frame_someone_else_holds(tenant, colleague, label, role):
    frame = held_frame(tenant, colleague)
    open_proposal(frame, label)

    response = complete(tenant, frame, role)

    assert response.status_code == 200, response.content
    assert response.json()["completed_by"] == f"acme-{role}"
    assert frame_state(frame)[:2] == (FrameStatus.COMPLETE, None)


def test_the_service_takes_the_role_it_is_given(tenant, colleague):
    frame = held_frame(tenant, colleague)
    with pytest.raises(Exception, match="reviewer role"):
        frame_complete(frame=frame, actor=tenant.annotator, actor_role=Role.ANNOTATOR)
    assert frame_complete(frame=frame, actor=tenant.reviewer, actor_role=Role.REVIEWER).status == FrameStatus.COMPLETE


# --- a complete frame's boxes do not change ---------------------------------------------------


@pytest.fixture
def completed(tenant, label):
    """A frame the annotator completed: one box they drew, one proposal left over (now rejected)."""
    frame = held_frame(tenant, tenant.annotator)
    drawn = AnnotationFactory(frame=frame, label=label, author=tenant.annotator)
    leftover = open_proposal(frame, label)
    assert complete(tenant, frame, "annotator").status_code == 200
    drawn.refresh_from_db(), leftover.refresh_from_db()
    return frame, drawn, leftover


def write_calls(tenant, completed, label):
    frame, drawn, leftover = completed
    return {
        "create": ("post", f"frames/{frame.pk}/annotations/", {"box": [300, 10, 400, 90], "label_id": label.pk}),
        "update": ("patch", f"annotations/{drawn.pk}", {"version": drawn.version, "box": [5, 5, 50, 50]}),
        "confirm-leftover": ("post", f"annotations/{leftover.pk}/confirm", {"version": leftover.version}),
        "confirm-drawn": ("post", f"annotations/{drawn.pk}/confirm", {"version": drawn.version}),
    }


@pytest.mark.parametrize("call", ["create", "update", "confirm-leftover", "confirm-drawn"])
@pytest.mark.parametrize("role", ["annotator", "reviewer", "admin"])
def test_no_box_changes_on_a_complete_frame(tenant, completed, label, call, role):
    frame = completed[0]
    method, suffix, body = write_calls(tenant, completed, label)[call]
    before = (frame_state(frame), box_state(frame), AnnotationEvent.objects.count())

    response = getattr(tenant.client(role), method)(api_path(tenant, suffix), body, format="json")

    assert response.status_code == 409, response.content
    assert response.json()["code"] == "frame_complete"
    assert "reopen" in response.json()["detail"]
    assert (frame_state(frame), box_state(frame), AnnotationEvent.objects.count()) == before


def test_an_annotator_cannot_reopen_a_frame(tenant, completed):
    frame = completed[0]
    before = frame_state(frame)
    response = tenant.client("annotator").post(api_path(tenant, f"frames/{frame.pk}/reopen"))
    assert response.status_code == 403
    assert frame_state(frame) == before


@pytest.mark.parametrize("role", ["reviewer", "admin"])
def test_a_reviewer_reopens_a_frame_and_its_boxes_may_change_again(tenant, completed, label, role):
    frame, drawn, _ = completed

    response = tenant.client(role).post(api_path(tenant, f"frames/{frame.pk}/reopen"))

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["completed_by"], body["completed_at"]) == ("in_progress", None, None)
    assert frame_state(frame)[1] is None  # back in the queue, held by nobody
    created = tenant.client(role).post(
        api_path(tenant, f"frames/{frame.pk}/annotations/"), {"box": [300, 10, 400, 90], "label_id": label.pk}, format="json"
    )
    assert created.status_code == 201, created.content
    moved = tenant.client(role).patch(
        api_path(tenant, f"annotations/{drawn.pk}"), {"version": drawn.version, "box": [5, 5, 50, 50]}, format="json"
    )
    assert moved.status_code == 200, moved.content


def test_reopening_a_frame_that_is_not_complete_is_a_409(tenant):
    frame = held_frame(tenant, tenant.annotator)
    before = frame_state(frame)
    response = tenant.client("reviewer").post(api_path(tenant, f"frames/{frame.pk}/reopen"))
    assert response.status_code == 409
    assert response.json()["code"] == "not_complete"
    assert frame_state(frame) == before


# --- a box racing the completion (real threads; SQLite serialises, PostgreSQL locks the frame) ---


@pytest.mark.django_db(transaction=True)
def test_a_box_drawn_while_the_frame_is_being_completed_is_refused_not_added(tenant, label):
    frame = held_frame(tenant, tenant.annotator)
    completing = threading.Event()
    outcome = {}

    def complete_slowly():
        try:
            with transaction.atomic():
                frame_complete(frame=frame, actor=tenant.annotator, actor_role=Role.ANNOTATOR)
                completing.set()  # completed, not yet committed
                time.sleep(0.5)
        finally:
            connections.close_all()

    def draw():
        completing.wait(10)
        try:
            annotation_create(frame=frame, actor=tenant.annotator, box=Box(10, 10, 60, 60), label=label)
            outcome["draw"] = "added"
        except DomainError as error:
            outcome["draw"] = error.code
        finally:
            connections.close_all()

    threads = [threading.Thread(target=complete_slowly), threading.Thread(target=draw)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcome == {"draw": "frame_complete"}
    assert not Annotation.objects.filter(frame=frame).exists()
    assert Frame.objects.get(pk=frame.pk).status == FrameStatus.COMPLETE


def test_other_tenants_cannot_reopen(tenant, other_tenant, completed):
    frame = completed[0]
    before = frame_state(frame)
    response = client_for(other_tenant.admin).post(api_path(other_tenant, f"frames/{frame.pk}/reopen"))
    assert response.status_code == 404
    assert frame_state(frame) == before
