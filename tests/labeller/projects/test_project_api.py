import pytest

from labeller.projects.models import Project
from tests.conftest import api_path

pytestmark = pytest.mark.django_db


def test_admin_creates_and_edits_a_project_with_optimistic_concurrency(tenant):
    created = tenant.client("admin").post(api_path(tenant, "projects/"), {"name": "Checkout", "every_nth_frame": 10}, format="json")
    assert created.status_code == 201, created.content
    url = api_path(tenant, f"projects/{created.json()['id']}")
    renamed = tenant.client("admin").patch(url, {"version": 1, "name": "Checkout v2"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["version"] == 2
    stale = tenant.client("admin").patch(url, {"version": 1, "name": "Lost update"}, format="json")
    assert stale.status_code == 409
    assert stale.json()["current"]["name"] == "Checkout v2"
    assert Project.objects.get(pk=created.json()["id"]).name == "Checkout v2"


def test_an_edit_without_a_version_is_refused(tenant):
    response = tenant.client("admin").patch(api_path(tenant, f"projects/{tenant.project.pk}"), {"name": "x"}, format="json")
    assert response.status_code == 400
    assert "version" in response.json()


def test_keyframe_bounds_are_checked(tenant):
    response = tenant.client("admin").post(
        api_path(tenant, "projects/"), {"name": "Bad", "keyframes_min_per_shot": 5, "keyframes_max_per_shot": 2}, format="json"
    )
    assert response.status_code == 400
    assert "keyframes_min_per_shot" in response.json()["errors"]


@pytest.mark.parametrize("role", ["annotator", "reviewer"])
def test_only_admins_manage_projects(tenant, role):
    response = tenant.client(role).post(api_path(tenant, "projects/"), {"name": "Nope"}, format="json")
    assert response.status_code == 403
    assert not Project.objects.filter(name="Nope").exists()
