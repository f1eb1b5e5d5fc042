"""Boxes from the API are finite numbers; suggest-labels also checks them against the frame."""

import pytest

from labeller.annotations.models import Annotation
from tests.conftest import api_path
from tests.factories import FrameFactory, LabelFactory

pytestmark = pytest.mark.django_db


def post_json(client, url, raw: str):
    return client.post(url, data=raw, content_type="application/json")


@pytest.fixture
def frame(tenant):
    return FrameFactory(project=tenant.project, width=640, height=360)


NON_FINITE_BOXES = [
    pytest.param('["NaN", 10, 50, 60]', id="nan-string"),
    pytest.param('[10, 10, "Infinity", 60]', id="infinity-string"),
    pytest.param('[10, "-inf", 50, 60]', id="minus-inf-string"),
    pytest.param("[10, 10, 1e999, 60]", id="overflowing-number"),
]


@pytest.mark.parametrize("box", NON_FINITE_BOXES)
def test_suggest_labels_refuses_a_non_finite_box_naming_the_field(tenant, frame, box):
    url = api_path(tenant, f"frames/{frame.pk}/suggest-labels")

    response = post_json(tenant.client("annotator"), url, f'{{"box": {box}}}')

    assert response.status_code == 400, response.content
    assert "finite" in response.json()["box"][0]


@pytest.mark.parametrize(
    "box,fragment",
    [
        pytest.param([-5, 10, 40, 20], "outside the 640x360 frame", id="negative"),
        pytest.param([600, 10, 700, 20], "outside the 640x360 frame", id="outside-right"),
        pytest.param([10, 300, 40, 400], "outside the 640x360 frame", id="outside-bottom"),
        pytest.param([40, 10, 40, 20], "positive width", id="empty-width"),
        pytest.param([10, 20, 40, 10], "positive height", id="inverted-height"),
    ],
)
def test_suggest_labels_refuses_a_box_outside_the_frame_or_empty(tenant, frame, box, fragment):
    response = tenant.client("annotator").post(
        api_path(tenant, f"frames/{frame.pk}/suggest-labels"), {"box": box}, format="json"
    )

    assert response.status_code == 400, response.content
    assert fragment in response.json()["box"][0]


def test_suggest_labels_accepts_a_box_inside_the_frame(tenant, frame):
    response = tenant.client("annotator").post(
        api_path(tenant, f"frames/{frame.pk}/suggest-labels"), {"box": [0, 0, 640, 360]}, format="json"
    )

    assert response.status_code == 200, response.content


@pytest.mark.parametrize("box", NON_FINITE_BOXES)
def test_annotation_create_and_update_refuse_a_non_finite_box(tenant, frame, box):
    label = LabelFactory(project=tenant.project, name="cell")
    client = tenant.client("annotator")

    # The services refused these before too, but with a misleading reason ("x2 must be greater than x1 (nan)").
    url = api_path(tenant, f"frames/{frame.pk}/annotations/")
    created = post_json(client, url, f'{{"box": {box}, "label_id": {label.pk}}}')
    assert created.status_code == 400, created.content
    assert "finite" in created.json()["box"][0]
    assert not Annotation.objects.exists()

    annotation = client.post(url, {"box": [1, 1, 10, 10], "label_id": label.pk}, format="json").json()
    updated = client.patch(
        api_path(tenant, f"annotations/{annotation['id']}"),
        data=f'{{"box": {box}, "version": 1}}',
        content_type="application/json",
    )
    assert updated.status_code == 400, updated.content
    assert "finite" in updated.json()["box"][0]
    assert Annotation.objects.get().x2 == 10
