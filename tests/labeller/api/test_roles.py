"""The role walk: every tenant route, called by each role of the same organisation.

Each view states the least role per method (``read_role``, ``write_role``); below it the
answer is 403 and nothing changes, at or above it the role is never the reason for a refusal.
The objects are the caller's own (their box, the frame they hold), so that the rules about
other people's work (a reviewer edits another's box) do not stand in for the route's role.
"""

import pytest

from labeller.annotations.models import Annotation
from labeller.api.base import READ_METHODS
from labeller.media.models import Frame
from labeller.tenants.models import ROLE_RANK, Role
from tests.conftest import client_for, make_tenant
from tests.labeller.api.test_tenancy import (
    ROUTES,
    bodies_naming,
    build_path,
    methods_of,
    tenant_state_digest,
    victim_objects,
)

CASES = [(name, pattern, view_class, role) for name, pattern, view_class in ROUTES for role in Role]


def required_role(view_class, method: str) -> Role:
    return view_class.read_role if method.upper() in READ_METHODS else view_class.write_role


def test_every_route_states_roles_that_exist():
    for name, _, view_class in ROUTES:
        assert Role(view_class.read_role) and Role(view_class.write_role), name


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name,pattern,view_class,role", CASES, ids=[f"{name}-as-{role.value}" for name, _, _, role in CASES]
)
def test_each_role_gets_what_the_route_states(name, pattern, view_class, role):
    tenant = make_tenant("acme")
    caller = getattr(tenant, role.value)
    ids = victim_objects(tenant)
    Annotation.objects.filter(pk=ids["annotation"]).update(author=caller)
    Frame.objects.filter(pk=ids["frame"]).update(assigned_to=caller)
    client = client_for(caller)
    path = build_path(name, pattern, "acme", ids)
    for method in methods_of(view_class):
        required = required_role(view_class, method)
        before = tenant_state_digest()
        response = getattr(client, method)(path, bodies_naming(ids).get(method), format="json")
        where = f"{method.upper()} {path} as {role.value} (needs {required.value})"
        if ROLE_RANK[role] < ROLE_RANK[required]:
            assert response.status_code == 403, f"{where} answered {response.status_code}"
            assert tenant_state_digest() == before, f"{where} was refused but changed something"
        else:
            assert response.status_code != 403, f"{where} was refused: {response.content[:200]!r}"
            assert response.status_code < 500, f"{where} answered {response.status_code}"
