"""Two admins giving one hotkey to two labels at the same moment: one wins, the other gets a 400."""

import threading
from unittest import mock

import pytest
from django.db import connection

from labeller.annotations.models import Label
from tests.concurrency import in_parallel
from tests.conftest import api_path, client_for
from tests.factories import LabelFactory

_full_clean = Label.full_clean

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent writers (PostgreSQL)"),
]


def test_concurrent_edits_giving_one_hotkey_to_two_labels_give_it_to_one(tenant):
    labels = [LabelFactory(project=tenant.project, name=name) for name in ("rbc", "wbc")]
    # Both requests pass the service's duplicate check before either writes.
    barrier = threading.Barrier(2, timeout=20)

    def full_clean(self, *args, **kwargs):
        barrier.wait()
        return _full_clean(self, *args, **kwargs)

    def patch(label):
        url = api_path(tenant, f"labels/{label.pk}")
        return lambda: client_for(tenant.admin).patch(url, {"version": 1, "hotkey": "c"}, format="json")

    with mock.patch.object(Label, "full_clean", full_clean):
        outcomes = in_parallel([patch(label) for label in labels])

    assert sorted(getattr(o, "status_code", repr(o)) for o in outcomes) == [200, 400], outcomes
    loser = next(o for o in outcomes if o.status_code == 400)
    assert "already used" in loser.json()["errors"]["hotkey"][0]
    assert Label.objects.filter(project=tenant.project, hotkey="c").count() == 1
