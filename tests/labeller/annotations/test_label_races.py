"""Two admins adding the same label or hotkey at once: one wins, the other gets a 400, never a 500."""

import threading
from unittest import mock

import pytest
from django.db import IntegrityError, connection, transaction

from labeller.annotations.models import Label
from tests.concurrency import in_parallel
from tests.conftest import api_path, client_for
from tests.factories import LabelFactory

pytestmark = pytest.mark.django_db

_full_clean = Label.full_clean


def labels_url(tenant):
    return api_path(tenant, f"projects/{tenant.project.pk}/labels/")


def just_before_saving(action):
    """Run ``action`` once, after the service's own duplicate checks and before its write.

    That is the window a concurrent request hits: the check passed, the row is not there yet.
    Names in these tests have no dots, so the only full_clean is the label's own.
    """
    done = []

    def full_clean(self, *args, **kwargs):
        if not done:
            done.append(True)
            action()
        return _full_clean(self, *args, **kwargs)

    return mock.patch.object(Label, "full_clean", full_clean)


# --- losing the race, one connection (SQLite and PostgreSQL) ----------------------------


def test_a_name_taken_between_check_and_insert_is_a_400(tenant):
    with just_before_saving(lambda: Label.objects.create(project=tenant.project, name="cell")):
        response = tenant.client("admin").post(labels_url(tenant), {"name": "cell"}, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["code"] == "duplicate"
    assert "already exists" in response.json()["errors"]["name"][0]


def test_a_hotkey_taken_between_check_and_insert_is_a_400(tenant):
    with just_before_saving(lambda: Label.objects.create(project=tenant.project, name="rbc", hotkey="r")):
        response = tenant.client("admin").post(labels_url(tenant), {"name": "wbc", "hotkey": "r"}, format="json")

    assert response.status_code == 400, response.content
    assert "already used" in response.json()["errors"]["hotkey"][0]
    assert not Label.objects.filter(name="wbc").exists()


def test_a_hotkey_taken_between_check_and_update_is_a_400(tenant):
    label = LabelFactory(project=tenant.project, name="wbc")

    with just_before_saving(lambda: Label.objects.create(project=tenant.project, name="rbc", hotkey="r")):
        response = tenant.client("admin").patch(
            api_path(tenant, f"labels/{label.pk}"), {"version": 1, "hotkey": "r"}, format="json"
        )

    assert response.status_code == 400, response.content
    assert "already used" in response.json()["errors"]["hotkey"][0]
    label.refresh_from_db()
    assert (label.hotkey, label.version) == ("", 1)


def test_the_database_refuses_a_second_label_with_the_same_hotkey(tenant):
    Label.objects.create(project=tenant.project, name="rbc", hotkey="r")
    Label.objects.create(project=tenant.project, name="plain")
    Label.objects.create(project=tenant.project, name="also-plain")  # many labels may have no hotkey
    with pytest.raises(IntegrityError), transaction.atomic():
        Label.objects.create(project=tenant.project, name="wbc", hotkey="r")


# --- real concurrency (PostgreSQL: SQLite serialises writers before the check) ------------


def race(tenant, bodies: list[dict]) -> list:
    """POST each body from its own thread and connection, all released together past the checks.

    Each thread waits at its first full_clean (an ancestor's, if the name has dots): every
    request has then checked for duplicates and none has written yet.
    """
    barrier = threading.Barrier(len(bodies), timeout=20)
    waited = threading.local()

    def full_clean(self, *args, **kwargs):
        if not getattr(waited, "done", False):
            waited.done = True
            barrier.wait()
        return _full_clean(self, *args, **kwargs)

    def post(body):
        return lambda: client_for(tenant.admin).post(labels_url(tenant), body, format="json")

    with mock.patch.object(Label, "full_clean", full_clean):
        return in_parallel([post(body) for body in bodies])


def postgres_only(test):
    test = pytest.mark.django_db(transaction=True)(test)
    test = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent writers (PostgreSQL)")(test)
    return pytest.mark.postgres(test)


def statuses(outcomes) -> list:
    return sorted(getattr(outcome, "status_code", repr(outcome)) for outcome in outcomes)


@postgres_only
def test_concurrent_creates_of_one_name_make_one_label_and_a_400(tenant):
    outcomes = race(tenant, [{"name": "cell"}, {"name": "cell"}])

    assert statuses(outcomes) == [201, 400], outcomes
    loser = next(outcome for outcome in outcomes if outcome.status_code == 400)
    assert "already exists" in loser.json()["errors"]["name"][0]
    assert Label.objects.filter(project=tenant.project, name="cell").count() == 1


@postgres_only
def test_concurrent_creates_with_one_hotkey_give_it_to_one_label(tenant):
    outcomes = race(tenant, [{"name": "rbc", "hotkey": "c"}, {"name": "wbc", "hotkey": "c"}])

    assert statuses(outcomes) == [201, 400], outcomes
    loser = next(outcome for outcome in outcomes if outcome.status_code == 400)
    assert "already used" in loser.json()["errors"]["hotkey"][0]
    assert Label.objects.filter(project=tenant.project, hotkey="c").count() == 1


@postgres_only
def test_concurrent_creates_under_one_new_parent_share_it(tenant):
    outcomes = race(tenant, [{"name": "food.cake"}, {"name": "food.pie"}])

    assert statuses(outcomes) == [201, 201], outcomes
    assert sorted(Label.objects.filter(project=tenant.project).values_list("name", flat=True)) == [
        "food",
        "food.cake",
        "food.pie",
    ]
