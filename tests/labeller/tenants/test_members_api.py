import pytest

from labeller.tenants.models import Membership
from tests.conftest import api_path
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_admin_adds_and_promotes_a_member(tenant):
    UserFactory(username="newcomer")
    added = tenant.client("admin").post(api_path(tenant, "members/"), {"username": "newcomer", "role": "annotator"}, format="json")
    assert added.status_code == 201
    promoted = tenant.client("admin").patch(api_path(tenant, f"members/{added.json()['id']}"), {"role": "reviewer"}, format="json")
    assert promoted.json()["role"] == "reviewer"


@pytest.mark.parametrize("role", ["annotator", "reviewer"])
def test_non_admins_cannot_manage_members(tenant, role):
    UserFactory(username="newcomer")
    response = tenant.client(role).post(api_path(tenant, "members/"), {"username": "newcomer", "role": "admin"}, format="json")
    assert response.status_code == 403
    assert not Membership.objects.filter(user__username="newcomer").exists()


def test_the_last_admin_cannot_leave(tenant):
    membership = Membership.objects.get(user=tenant.admin)
    response = tenant.client("admin").delete(api_path(tenant, f"members/{membership.pk}"))
    assert response.status_code == 409
    assert "at least one admin" in response.json()["detail"]


def test_unknown_user_is_a_clear_400(tenant):
    response = tenant.client("admin").post(api_path(tenant, "members/"), {"username": "ghost", "role": "annotator"}, format="json")
    assert response.status_code == 400
    assert "ghost" in response.json()["detail"]


def test_token_auth_for_scripts(tenant):
    token = tenant.client("annotator").post("/api/v1/token").json()["token"]
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get(api_path(tenant, "projects/")).status_code == 200
