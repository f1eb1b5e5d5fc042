"""Two admins stepping down (or removing each other) at the same moment leave one admin.

PostgreSQL only: SQLite runs one writer at a time, so it cannot show the race.
"""

import threading

import pytest
from django.db import connection, connections, transaction

from labeller.tenants import services
from labeller.tenants.models import Membership, Role
from tests.conftest import api_path, client_for
from tests.factories import MembershipFactory, UserFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent writers (PostgreSQL)"),
]


def admin_count(tenant) -> int:
    return Membership.objects.filter(organization=tenant.organization, role=Role.ADMIN, is_active=True).count()


@pytest.mark.parametrize(
    "second_change",
    [
        {"method": "patch", "body": {"role": "annotator"}},
        {"method": "patch", "body": {"is_active": False}},
        {"method": "delete", "body": None},
    ],
    ids=["demote", "deactivate", "remove"],
)
def test_the_second_of_two_simultaneous_admin_departures_is_refused(tenant, second_change):
    other_admin = UserFactory(username="acme-admin-2")
    MembershipFactory(user=other_admin, organization=tenant.organization, role=Role.ADMIN)
    first = Membership.objects.get(user=tenant.admin)
    second = Membership.objects.get(user=other_admin)
    first_holds_its_locks = threading.Event()
    let_first_commit = threading.Event()
    outcome = {}

    def first_admin_demotes_themself():
        try:
            with transaction.atomic():
                services.membership_update(
                    organization=tenant.organization, membership_id=first.pk, role=Role.ANNOTATOR
                )
                first_holds_its_locks.set()
                let_first_commit.wait(timeout=20)
        finally:
            connection.close()

    def second_admin_steps_down_too():
        first_holds_its_locks.wait(timeout=20)
        try:
            url = api_path(tenant, f"members/{second.pk}")
            outcome["response"] = getattr(client_for(other_admin), second_change["method"])(
                url, second_change["body"], format="json"
            )
        finally:
            connection.close()

    threads = [
        threading.Thread(target=first_admin_demotes_themself),
        threading.Thread(target=second_admin_steps_down_too),
    ]
    for thread in threads:
        thread.start()
    threads[1].join(timeout=1.0)
    # The second waits on the first's row locks instead of reading a world where both are admins.
    assert threads[1].is_alive(), f"the second change did not wait: {outcome}"
    let_first_commit.set()
    for thread in threads:
        thread.join(timeout=20)
    connections.close_all()

    assert outcome["response"].status_code == 409, outcome["response"].content
    assert outcome["response"].json()["code"] == "last_admin"
    assert admin_count(tenant) == 1
    assert Membership.objects.get(pk=second.pk).role == Role.ADMIN
