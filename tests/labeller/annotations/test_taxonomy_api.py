import pytest

from labeller.annotations.models import Label
from tests.conftest import api_path
from tests.factories import AnnotationFactory, FrameFactory, LabelFactory

pytestmark = pytest.mark.django_db


def labels_url(tenant):
    return api_path(tenant, f"projects/{tenant.project.pk}/labels/")


def test_creating_a_dotted_label_creates_its_ancestors(tenant):
    response = tenant.client("admin").post(labels_url(tenant), {"name": "food.dish.dessert", "color": "#ff8800", "hotkey": "d"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["parent_name"] == "food.dish"
    assert sorted(Label.objects.filter(project=tenant.project).values_list("name", flat=True)) == [
        "food",
        "food.dish",
        "food.dish.dessert",
    ]


@pytest.mark.parametrize("name", ["Food Dish", "food..dish", ".food", "food/dish"])
def test_bad_label_names_are_explained(tenant, name):
    response = tenant.client("admin").post(labels_url(tenant), {"name": name}, format="json")
    assert response.status_code == 400
    assert "dotted" in str(response.json())


def test_annotators_cannot_edit_the_taxonomy(tenant):
    response = tenant.client("annotator").post(labels_url(tenant), {"name": "body.hand"}, format="json")
    assert response.status_code == 403
    assert not Label.objects.exists()


def test_a_label_in_use_cannot_be_deleted_only_deprecated(tenant):
    label = LabelFactory(project=tenant.project, name="body.hand")
    AnnotationFactory(frame=FrameFactory(project=tenant.project), label=label)
    url = api_path(tenant, f"labels/{label.pk}")
    assert tenant.client("admin").delete(url).status_code == 409
    response = tenant.client("admin").patch(url, {"version": 1, "deprecated": True}, format="json")
    assert response.status_code == 200 and response.json()["deprecated"] is True
    assert tenant.client("admin").patch(url, {"version": 1, "color": "#000000"}, format="json").status_code == 409
