"""A retried create with the same Idempotency-Key creates nothing twice; the bulk route saves
many boxes of one frame in one request, reporting each box's outcome."""

import time
import uuid
from unittest import mock

import pytest

from labeller.annotations import services
from labeller.annotations.models import Annotation, AnnotationEvent, IdempotencyKey
from labeller.media.models import FrameStatus
from tests.concurrency import in_parallel
from tests.conftest import api_path, client_for
from tests.factories import AnnotationFactory, FrameFactory, LabelFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def frame(tenant):
    return FrameFactory(project=tenant.project, width=640, height=360)


@pytest.fixture
def label(tenant):
    return LabelFactory(project=tenant.project, name="cell.rbc")


def create(client, tenant, frame, body, key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(api_path(tenant, f"frames/{frame.pk}/annotations/"), body, format="json", **headers)


# --- idempotency keys -----------------------------------------------------------------------


def test_a_retried_create_with_the_same_key_returns_the_first_box(tenant, frame, label):
    client = tenant.client("annotator")
    body = {"box": [10, 10, 50, 50], "label_id": label.pk}
    key = str(uuid.uuid4())
    first = create(client, tenant, frame, body, key)
    again = create(client, tenant, frame, body, key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Annotation.objects.filter(frame=frame).count() == 1
    assert AnnotationEvent.objects.filter(frame_id=frame.pk).count() == 1


def test_without_a_key_each_create_is_a_new_box(tenant, frame, label):
    client = tenant.client("annotator")
    body = {"box": [10, 10, 50, 50], "label_id": label.pk}
    create(client, tenant, frame, body)
    create(client, tenant, frame, body)
    assert Annotation.objects.filter(frame=frame).count() == 2


def test_a_key_reused_with_another_body_is_a_422(tenant, frame, label):
    client = tenant.client("annotator")
    key = str(uuid.uuid4())
    create(client, tenant, frame, {"box": [10, 10, 50, 50], "label_id": label.pk}, key)
    reused = create(client, tenant, frame, {"box": [20, 20, 60, 60], "label_id": label.pk}, key)
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"
    assert "different request" in reused.json()["detail"]
    assert Annotation.objects.filter(frame=frame).count() == 1


def test_a_key_reused_on_another_frame_is_a_422(tenant, frame, label):
    client = tenant.client("annotator")
    other = FrameFactory(project=tenant.project, width=640, height=360)
    body = {"box": [10, 10, 50, 50], "label_id": label.pk}
    create(client, tenant, frame, body, "same-key")
    assert create(client, tenant, other, body, "same-key").status_code == 422
    assert not Annotation.objects.filter(frame=other).exists()


def test_keys_belong_to_their_user(tenant, frame, label):
    body = {"box": [10, 10, 50, 50], "label_id": label.pk}
    assert create(tenant.client("annotator"), tenant, frame, body, "shared").status_code == 201
    theirs = create(tenant.client("reviewer"), tenant, frame, body, "shared")
    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs
    assert Annotation.objects.filter(frame=frame).count() == 2


def test_a_refused_create_keeps_no_key_so_a_fixed_retry_runs(tenant, frame, label):
    client = tenant.client("annotator")
    frame.status = FrameStatus.COMPLETE
    frame.save()
    body = {"box": [10, 10, 50, 50], "label_id": label.pk}
    assert create(client, tenant, frame, body, "k1").status_code == 409
    assert not IdempotencyKey.objects.exists()
    frame.status = FrameStatus.IN_PROGRESS
    frame.save()
    assert create(client, tenant, frame, body, "k1").status_code == 201


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9"], ids=["empty", "too-long", "not-ascii"])
def test_a_malformed_key_is_a_400(tenant, frame, label, key):
    response = create(tenant.client("annotator"), tenant, frame, {"box": [1, 1, 5, 5], "label_id": label.pk}, key)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]
    assert not Annotation.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_retries_with_one_key_create_one_box(tenant, frame, label):
    """Both requests start together; the first is slow to write, so the second arrives while it
    is in flight. The unique key makes the second wait and replay the first's answer."""
    body = {"box": [10, 10, 50, 50], "label_id": label.pk}
    key = str(uuid.uuid4())
    real_create = services.annotation_create

    def slow_create(**kwargs):
        time.sleep(0.3)
        return real_create(**kwargs)

    def post():
        return create(client_for(tenant.annotator), tenant, frame, body, key)

    with mock.patch.object(services, "annotation_create", slow_create):
        answers = in_parallel([post, post], start_together=True)

    assert [getattr(a, "status_code", a) for a in answers] == [201, 201], answers
    assert answers[0].json() == answers[1].json()
    assert sorted(a.get("Idempotent-Replayed", "") for a in answers) == ["", "true"]
    assert Annotation.objects.filter(frame=frame).count() == 1
    assert IdempotencyKey.objects.count() == 1


# --- the bulk route -------------------------------------------------------------------------


def bulk(client, tenant, frame, boxes, key=None, **extra):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(
        api_path(tenant, f"frames/{frame.pk}/annotations/bulk"), {"boxes": boxes, **extra}, format="json", **headers
    )


def test_bulk_creates_updates_and_confirms_boxes_of_one_frame(tenant, frame, label):
    mine = AnnotationFactory(frame=frame, label=label, author=tenant.annotator)
    proposal = AnnotationFactory(frame=frame, label=label, author=None, source="model", status="proposed", score=0.9)
    boxes = [
        {"action": "create", "box": [1, 1, 30, 30], "label_id": label.pk},
        {"action": "create", "box": [40, 40, 80, 80]},
        {"action": "update", "id": mine.pk, "version": 1, "box": [5, 5, 25, 25]},
        {"action": "confirm", "id": proposal.pk, "version": 1},
    ]
    response = bulk(tenant.client("annotator"), tenant, frame, boxes)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["saved"], body["refused"]) == (4, 0)
    assert [r["status"] for r in body["results"]] == [201, 201, 200, 200]
    assert body["results"][1]["annotation"]["status"] == "proposed"
    mine.refresh_from_db()
    proposal.refresh_from_db()
    assert ([mine.x1, mine.x2], mine.version) == ([5, 25], 2)
    assert (proposal.status, proposal.version) == ("confirmed", 2)
    assert Annotation.objects.filter(frame=frame).count() == 4


def test_bulk_reports_each_refused_box_and_saves_the_rest(tenant, frame, label, other_tenant):
    stale = AnnotationFactory(frame=frame, label=label, author=tenant.annotator, version=3)
    others_work = AnnotationFactory(frame=frame, label=label, author=tenant.admin)
    elsewhere = AnnotationFactory(frame=FrameFactory(project=tenant.project), label=label)
    foreign = AnnotationFactory(frame=FrameFactory(project=other_tenant.project))
    boxes = [
        {"action": "update", "id": stale.pk, "version": 1, "box": [5, 5, 25, 25]},
        {"action": "create", "box": [600, 10, 700, 20], "label_id": label.pk},
        {"action": "update", "id": others_work.pk, "version": 1, "box": [5, 5, 25, 25]},
        {"action": "confirm", "id": elsewhere.pk, "version": 1},
        {"action": "confirm", "id": foreign.pk, "version": 1},
        {"action": "create", "box": [1, 1, 30, 30], "label_id": label.pk},
    ]
    response = bulk(tenant.client("annotator"), tenant, frame, boxes)
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == [409, 400, 403, 404, 404, 201]
    assert results[0]["code"] == "stale_version" and results[0]["current"]["version"] == 3
    assert "outside the 640x360 frame" in results[1]["errors"]["box"][0]
    assert "reviewer" in results[2]["detail"]
    stale.refresh_from_db()
    foreign.refresh_from_db()
    assert stale.version == 3 and foreign.version == 1
    assert Annotation.objects.filter(frame=frame).count() == 3  # two existing + the one created


def test_an_all_or_nothing_bulk_with_a_refusal_saves_nothing(tenant, frame, label):
    stale = AnnotationFactory(frame=frame, label=label, author=tenant.annotator, version=2)
    boxes = [
        {"action": "create", "box": [1, 1, 30, 30], "label_id": label.pk},
        {"action": "update", "id": stale.pk, "version": 1, "box": [5, 5, 25, 25]},
    ]
    response = bulk(tenant.client("annotator"), tenant, frame, boxes, all_or_nothing=True)
    assert response.status_code == 409
    assert [r["status"] for r in response.json()["results"]] == [424, 409]
    assert Annotation.objects.filter(frame=frame).count() == 1
    assert AnnotationEvent.objects.filter(frame_id=frame.pk).count() == 0


def test_a_bulk_on_a_complete_frame_is_refused_whole(tenant, frame, label):
    frame.status = FrameStatus.COMPLETE
    frame.save()
    response = bulk(tenant.client("annotator"), tenant, frame, [{"action": "create", "box": [1, 1, 30, 30], "label_id": label.pk}])
    assert response.status_code == 409 and response.json()["code"] == "frame_complete"
    assert not Annotation.objects.exists()


@pytest.mark.parametrize(
    "box, field",
    [
        pytest.param({"action": "create"}, "box", id="create-without-box"),
        pytest.param({"action": "update", "box": [1, 1, 5, 5]}, "id", id="update-without-id"),
        pytest.param({"action": "confirm", "id": 1}, "version", id="confirm-without-version"),
        pytest.param({"action": "paint", "box": [1, 1, 5, 5]}, "action", id="unknown-action"),
        pytest.param({"action": "create", "box": [1, 1, "NaN", 5]}, "box", id="nan-box"),
    ],
)
def test_a_malformed_bulk_is_a_400_naming_the_box_and_field(tenant, frame, label, box, field):
    response = bulk(tenant.client("annotator"), tenant, frame, [{"action": "create", "box": [1, 1, 5, 5]}, box])
    assert response.status_code == 400, response.content
    assert field in str(response.json()["boxes"][1])
    assert not Annotation.objects.exists()


def test_an_empty_or_oversized_bulk_is_a_400(tenant, frame):
    assert bulk(tenant.client("annotator"), tenant, frame, []).status_code == 400
    too_many = [{"action": "create", "box": [1, 1, 5, 5]}] * 501
    assert bulk(tenant.client("annotator"), tenant, frame, too_many).status_code == 400
    assert not Annotation.objects.exists()


def test_a_retried_bulk_with_its_key_applies_once(tenant, frame, label):
    client = tenant.client("annotator")
    boxes = [{"action": "create", "box": [1, 1, 30, 30], "label_id": label.pk}] * 3
    first = bulk(client, tenant, frame, boxes, key="import-batch-1")
    again = bulk(client, tenant, frame, boxes, key="import-batch-1")
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Annotation.objects.filter(frame=frame).count() == 3


def test_another_organisations_frame_is_a_404_and_changes_nothing(tenant, other_tenant, label):
    theirs = FrameFactory(project=other_tenant.project, width=640, height=360)
    response = tenant.client("admin").post(
        api_path(tenant, f"frames/{theirs.pk}/annotations/bulk"),
        {"boxes": [{"action": "create", "box": [1, 1, 30, 30]}]},
        format="json",
    )
    assert response.status_code == 404
    assert not Annotation.objects.exists()


def test_a_refused_all_or_nothing_bulk_with_a_key_replays_its_refusal(tenant, frame, label):
    stale = AnnotationFactory(frame=frame, label=label, author=tenant.annotator, version=2)
    boxes = [
        {"action": "create", "box": [1, 1, 30, 30], "label_id": label.pk},
        {"action": "update", "id": stale.pk, "version": 1, "box": [5, 5, 25, 25]},
    ]
    client = tenant.client("annotator")
    first = bulk(client, tenant, frame, boxes, key="batch", all_or_nothing=True)
    again = bulk(client, tenant, frame, boxes, key="batch", all_or_nothing=True)
    assert (first.status_code, again.status_code) == (409, 409)
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert Annotation.objects.filter(frame=frame).count() == 1
