"""A box drawn with a label at the moment an admin merges that label away: never a 500.

Either the merge goes first and the box is refused with a clear 409 (pick another label),
or the box goes first and the merge carries it to the surviving label.
"""

import threading
import time
from unittest import mock

import pytest
from django.db import connection

from labeller.annotations import services, taxonomy
from labeller.annotations.models import Annotation, Label
from tests.concurrency import in_parallel
from tests.conftest import api_path, client_for
from tests.factories import FrameFactory, LabelFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent writers (PostgreSQL)"),
]

_validate_box = services._validate_box
_moved_annotation_events = taxonomy._moved_annotation_events
_record = services._record


@pytest.fixture
def labels(tenant):
    return LabelFactory(project=tenant.project, name="animal.cat"), LabelFactory(project=tenant.project, name="animal.kitty")


def draw(tenant, frame, label):
    url = api_path(tenant, f"frames/{frame.pk}/annotations/")
    return lambda: client_for(tenant.annotator).post(url, {"box": [10, 10, 60, 60], "label_id": label.pk}, format="json")


def merge(tenant, source, target):
    url = api_path(tenant, f"labels/{source.pk}/merge")
    return lambda: client_for(tenant.admin).post(url, {"version": source.version, "into_id": target.pk}, format="json")


def merge_waiting_on_a_lock(deadline_s: float = 10.0) -> None:
    """Return once another connection of this database waits on a lock (the merge, blocked
    by this transaction's hold on the label); after ``deadline_s`` return anyway and let the
    test's assertions judge what happened."""
    give_up = time.monotonic() + deadline_s
    with connection.cursor() as cursor:
        while time.monotonic() < give_up:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.02)


def test_a_box_drawn_while_its_label_is_merged_away_gets_a_409(tenant, labels):
    cat, kitty = labels
    frame = FrameFactory(project=tenant.project, width=640, height=360)
    # The merge holds both labels when the box's request reaches its label check.
    barrier = threading.Barrier(2, timeout=20)

    def merge_holding_the_labels(source, target, actor):
        barrier.wait()
        return _moved_annotation_events(source, target, actor)

    def box_checked_after_the_merge_locked(frame, box):
        barrier.wait()
        return _validate_box(frame, box)

    with mock.patch.object(taxonomy, "_moved_annotation_events", merge_holding_the_labels), mock.patch.object(
        services, "_validate_box", box_checked_after_the_merge_locked
    ):
        merged, drawn = in_parallel([merge(tenant, kitty, cat), draw(tenant, frame, kitty)])

    assert getattr(merged, "status_code", merged) == 200, merged
    assert getattr(drawn, "status_code", drawn) == 409, getattr(drawn, "content", drawn)
    assert drawn.json()["code"] == "label_gone" and "merged or deleted" in drawn.json()["detail"]
    assert not Label.objects.filter(pk=kitty.pk).exists() and not Annotation.objects.filter(frame=frame).exists()


def test_a_box_drawn_just_before_the_merge_is_carried_to_the_surviving_label(tenant, labels):
    cat, kitty = labels
    frame = FrameFactory(project=tenant.project, width=640, height=360)
    barrier = threading.Barrier(2, timeout=20)

    def record_then_wait_for_the_merge_to_block(annotation, **kwargs):
        result = _record(annotation, **kwargs)
        barrier.wait()
        merge_waiting_on_a_lock()  # so the merge has started, and waits, before the box commits
        return result

    def merge_once_the_box_is_written():
        barrier.wait()
        return merge(tenant, kitty, cat)()

    with mock.patch.object(services, "_record", record_then_wait_for_the_merge_to_block):
        drawn, merged = in_parallel([draw(tenant, frame, kitty), merge_once_the_box_is_written])

    assert getattr(drawn, "status_code", drawn) == 201, getattr(drawn, "content", drawn)
    assert getattr(merged, "status_code", merged) == 200, merged
    assert merged.json()["moved_annotations"] == 1
    assert list(Annotation.objects.filter(frame=frame).values_list("label_id", flat=True)) == [cat.pk]


def test_boxes_drawn_while_a_subtree_is_merged_follow_a_moved_sub_label_and_409_on_a_merged_one(tenant):
    soup = LabelFactory(project=tenant.project, name="food.soup")
    clear = LabelFactory(project=tenant.project, name="food.soup.clear")  # merged into food.broth.clear
    thick = LabelFactory(project=tenant.project, name="food.soup.thick")  # moved: becomes food.broth.thick
    broth = LabelFactory(project=tenant.project, name="food.broth")
    LabelFactory(project=tenant.project, name="food.broth.clear")
    # Two frames: a box write locks its frame first, and the two must not wait on each other.
    frames = [FrameFactory(project=tenant.project, width=640, height=360) for _ in range(2)]
    # The merge holds every label of both subtrees when the boxes' requests reach their label check.
    barrier = threading.Barrier(3, timeout=20)
    waited = threading.Event()

    def merge_holding_the_labels(source, target, actor):
        if not waited.is_set():
            waited.set()
            barrier.wait()
        return _moved_annotation_events(source, target, actor)

    def box_checked_after_the_merge_locked(frame, box):
        barrier.wait()
        return _validate_box(frame, box)

    with mock.patch.object(taxonomy, "_moved_annotation_events", merge_holding_the_labels), mock.patch.object(
        services, "_validate_box", box_checked_after_the_merge_locked
    ):
        merged, on_merged, on_moved = in_parallel(
            [merge(tenant, soup, broth), draw(tenant, frames[0], clear), draw(tenant, frames[1], thick)]
        )

    assert getattr(merged, "status_code", merged) == 200, merged
    assert [m["id"] for m in merged.json()["moved_labels"]] == [thick.pk]
    assert getattr(on_merged, "status_code", on_merged) == 409, getattr(on_merged, "content", on_merged)
    assert on_merged.json()["code"] == "label_gone"
    assert getattr(on_moved, "status_code", on_moved) == 201, getattr(on_moved, "content", on_moved)
    box = Annotation.objects.get(frame=frames[1])
    assert (box.label_id, box.label.name) == (thick.pk, "food.broth.thick")
    assert not Annotation.objects.filter(frame=frames[0]).exists()


def test_a_label_created_under_a_label_being_merged_away_is_not_orphaned(tenant):
    dish = LabelFactory(project=tenant.project, name="food.dish")
    meal = LabelFactory(project=tenant.project, name="meal")
    barrier = threading.Barrier(2, timeout=20)

    def merge_holding_the_labels(source, target, actor):
        barrier.wait()
        merge_waiting_on_a_lock()  # the new label's request waits on the merge's locks (or gives up)
        return _moved_annotation_events(source, target, actor)

    def create_once_the_merge_holds_the_labels():
        barrier.wait()
        url = api_path(tenant, f"projects/{tenant.project.pk}/labels/")
        return client_for(tenant.admin).post(url, {"name": "food.dish.dessert"}, format="json")

    with mock.patch.object(taxonomy, "_moved_annotation_events", merge_holding_the_labels):
        merged, created = in_parallel([merge(tenant, dish, meal), create_once_the_merge_holds_the_labels])

    assert getattr(merged, "status_code", merged) == 200, merged
    assert getattr(created, "status_code", created) == 201, getattr(created, "content", created)
    names = set(Label.objects.filter(project=tenant.project).values_list("name", flat=True))
    orphans = {name for name in names if name.rpartition(".")[0] and name.rpartition(".")[0] not in names}
    assert not orphans, f"labels whose parent is gone: {orphans}"
    assert "food.dish.dessert" in names
