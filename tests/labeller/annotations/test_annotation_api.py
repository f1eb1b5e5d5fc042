"""Annotations through the API: validation, optimistic concurrency, history and roles."""

import pytest

from labeller.annotations.models import Annotation, AnnotationEvent, AnnotationSource, AnnotationStatus
from labeller.media.models import Frame, FrameStatus
from tests.conftest import api_path
from tests.factories import AnnotationFactory, FrameFactory, LabelFactory, ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def frame(tenant):
    return FrameFactory(project=tenant.project, width=640, height=360)


@pytest.fixture
def label(tenant):
    return LabelFactory(project=tenant.project, name="food.dish.dessert")


def create(tenant, frame, role="annotator", **body):
    return tenant.client(role).post(api_path(tenant, f"frames/{frame.pk}/annotations/"), body, format="json")


def test_an_annotator_draws_a_box_and_history_records_it(tenant, frame, label):
    response = create(tenant, frame, box=[10, 20, 110, 220], label_id=label.pk)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["box"] == [10, 20, 110, 220]
    assert (body["status"], body["source"], body["author"], body["version"]) == ("confirmed", "human", "acme-annotator", 1)
    events = list(AnnotationEvent.objects.filter(annotation_id=body["id"]))
    assert [(e.action, e.actor.username, e.before) for e in events] == [("created", "acme-annotator", None)]
    assert events[0].after["box"] == [10, 20, 110, 220]


@pytest.mark.parametrize(
    "box,fragment",
    [
        pytest.param([50, 10, 40, 20], "positive width", id="negative-width"),
        pytest.param([10, 50, 40, 50], "positive height", id="zero-height"),
        pytest.param([600, 10, 700, 20], "outside the 640x360 frame", id="outside-right"),
        pytest.param([-5, 10, 40, 20], "outside", id="negative-origin"),
    ],
)
def test_invalid_boxes_answer_400_naming_the_field(tenant, frame, label, box, fragment):
    response = create(tenant, frame, box=box, label_id=label.pk)
    assert response.status_code == 400
    assert fragment in response.json()["errors"]["box"][0]
    assert not Annotation.objects.exists()


def test_a_box_needs_four_numbers(tenant, frame, label):
    response = create(tenant, frame, box=[1, 2, 3], label_id=label.pk)
    assert response.status_code == 400
    assert "box" in response.json()


def test_a_label_of_another_project_is_refused(tenant, frame):
    foreign = LabelFactory(project=ProjectFactory(organization=tenant.organization), name="body.hand")
    response = create(tenant, frame, box=[1, 1, 10, 10], label_id=foreign.pk)
    assert response.status_code == 400
    assert "another project" in response.json()["errors"]["label_id"][0]


def test_a_label_of_another_organisation_reads_as_missing(tenant, other_tenant, frame):
    foreign = LabelFactory(project=other_tenant.project)
    response = create(tenant, frame, box=[1, 1, 10, 10], label_id=foreign.pk)
    assert response.status_code == 400
    assert "does not exist" in str(response.json()["label_id"])


def test_malformed_json_is_a_clear_400(tenant, frame):
    response = tenant.client("annotator").post(
        api_path(tenant, f"frames/{frame.pk}/annotations/"), data="{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert "not valid" in response.json()["detail"]


def test_a_stale_edit_answers_409_with_the_current_state_and_loses_nothing(tenant, frame, label):
    annotation = AnnotationFactory(frame=frame, label=label, author=tenant.annotator)
    url = api_path(tenant, f"annotations/{annotation.pk}")
    first = tenant.client("annotator").patch(url, {"version": 1, "box": [5, 5, 50, 50]}, format="json")
    assert first.status_code == 200 and first.json()["version"] == 2
    stale = tenant.client("annotator").patch(url, {"version": 1, "box": [9, 9, 90, 90]}, format="json")
    assert stale.status_code == 409
    assert stale.json()["current"]["box"] == [5, 5, 50, 50]
    assert stale.json()["current"]["version"] == 2
    annotation.refresh_from_db()
    assert (annotation.x2, annotation.version) == (50, 2)


def test_a_stale_delete_answers_409(tenant, frame, label):
    annotation = AnnotationFactory(frame=frame, label=label, author=tenant.annotator, version=3)
    response = tenant.client("annotator").delete(api_path(tenant, f"annotations/{annotation.pk}?version=2"))
    assert response.status_code == 409
    assert Annotation.objects.filter(pk=annotation.pk).exists()


def test_delete_keeps_the_history(tenant, frame, label):
    created = create(tenant, frame, box=[1, 1, 10, 10], label_id=label.pk).json()
    response = tenant.client("annotator").delete(api_path(tenant, f"annotations/{created['id']}?version=1"))
    assert response.status_code == 204
    history = tenant.client("annotator").get(api_path(tenant, f"annotations/{created['id']}/history")).json()
    assert [e["action"] for e in history["results"]] == ["created", "deleted"]
    assert history["results"][1]["before"]["box"] == [1, 1, 10, 10]


def test_accepting_a_proposal_with_another_label(tenant, frame, label):
    other = LabelFactory(project=tenant.project, name="food.fruit.apple")
    proposal = AnnotationFactory(
        frame=frame, label=label, status=AnnotationStatus.PROPOSED, source=AnnotationSource.MODEL, author=None
    )
    response = tenant.client("annotator").post(
        api_path(tenant, f"annotations/{proposal.pk}/confirm"), {"version": 1, "label_id": other.pk}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["label_name"]) == ("confirmed", "food.fruit.apple")


def test_rejecting_a_proposal_keeps_it_as_a_hard_negative(tenant, frame, label):
    proposal = AnnotationFactory(frame=frame, label=label, status=AnnotationStatus.PROPOSED, source=AnnotationSource.MODEL, author=None)
    response = tenant.client("annotator").post(api_path(tenant, f"annotations/{proposal.pk}/reject"), {"version": 1}, format="json")
    assert response.status_code == 200
    proposal.refresh_from_db()
    assert proposal.status == AnnotationStatus.REJECTED
    detail = tenant.client("annotator").get(api_path(tenant, f"frames/{frame.pk}")).json()
    assert detail["annotations"] == []


def test_an_annotator_cannot_change_another_persons_box_but_a_reviewer_can(tenant, frame, label):
    theirs = AnnotationFactory(frame=frame, label=label, author=tenant.admin)
    url = api_path(tenant, f"annotations/{theirs.pk}/confirm")
    assert tenant.client("annotator").post(url, {"version": 1}, format="json").status_code == 403
    assert tenant.client("reviewer").post(url, {"version": 1}, format="json").status_code == 200


def test_completing_a_frame_rejects_the_proposals_nobody_accepted(tenant, frame, label):
    kept = AnnotationFactory(frame=frame, label=label, author=tenant.annotator)
    ignored = AnnotationFactory(frame=frame, label=label, status=AnnotationStatus.PROPOSED, source=AnnotationSource.MODEL, author=None)
    Frame.objects.filter(pk=frame.pk).update(assigned_to=tenant.annotator)  # the frame is theirs
    response = tenant.client("annotator").post(api_path(tenant, f"frames/{frame.pk}/complete"))
    assert response.status_code == 200
    assert response.json()["status"] == FrameStatus.COMPLETE
    assert response.json()["completed_by"] == "acme-annotator"
    ignored.refresh_from_db()
    kept.refresh_from_db()
    assert (ignored.status, kept.status) == (AnnotationStatus.REJECTED, AnnotationStatus.CONFIRMED)
    assert AnnotationEvent.objects.filter(annotation_id=ignored.pk, action="rejected", actor=tenant.annotator).exists()


def test_frame_detail_returns_boxes_and_proposals_in_one_answer(tenant, frame, label):
    AnnotationFactory(frame=frame, label=label, author=tenant.annotator)
    AnnotationFactory(frame=frame, label=label, status=AnnotationStatus.PROPOSED, source=AnnotationSource.MODEL, score=0.8, author=None)
    body = tenant.client("annotator").get(api_path(tenant, f"frames/{frame.pk}")).json()
    assert sorted(a["status"] for a in body["annotations"]) == ["confirmed", "proposed"]
    assert body["image_url"].startswith(f"/api/v1/orgs/acme/frames/{frame.pk}/image")


def test_filters_validate_their_values(tenant, frame):
    url = api_path(tenant, f"frames/{frame.pk}/annotations/?status=bogus")
    response = tenant.client("annotator").get(url)
    assert response.status_code == 400
    assert "status" in response.json()
