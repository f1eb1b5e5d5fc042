import sys
from dataclasses import dataclass

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from labeller.tenants.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory


@dataclass
class Tenant:
    """An organisation with one member of each role and a project."""

    organization: object
    admin: object
    reviewer: object
    annotator: object
    project: object

    def client(self, role: str) -> APIClient:
        return client_for(getattr(self, role))


def client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def make_tenant(slug: str) -> Tenant:
    organization = OrganizationFactory(slug=slug)
    users = {}
    for role in (Role.ADMIN, Role.REVIEWER, Role.ANNOTATOR):
        users[role.value] = UserFactory(username=f"{slug}-{role.value}")
        MembershipFactory(user=users[role.value], organization=organization, role=role)
    return Tenant(organization=organization, project=ProjectFactory(organization=organization), **users)


@pytest.fixture(autouse=True)
def isolated_media(settings, tmp_path):
    """Each test stores media in its own folder: ids restart per test, paths would collide."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.UPLOAD_DIR = tmp_path / "uploads"


@pytest.fixture(autouse=True)
def fresh_throttle_counts():
    """API throttles count per user id in the cache, and ids restart per test."""
    cache.clear()


@pytest.fixture(autouse=True)
def fresh_proposing_caches():
    """Proposing caches confirmed crops by annotation id and version, and show policies by
    project id and count of decisions, and ids restart per test."""
    proposing = sys.modules.get("labeller.training.proposing")  # not imported: nothing cached
    if proposing is not None:
        proposing.clear_caches()


@pytest.fixture
def tenant(db) -> Tenant:
    return make_tenant("acme")


@pytest.fixture
def other_tenant(db) -> Tenant:
    return make_tenant("rival")


def api_path(tenant: Tenant, suffix: str) -> str:
    return f"/api/v1/orgs/{tenant.organization.slug}/{suffix}"
