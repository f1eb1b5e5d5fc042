"""The index side of the learning loop: one pending sync per project whatever the rate of
edits, a broker outage that loses nothing, and a stored index whose cost follows the change
(delta segments after a base, merged and compacted; a bounded per-process cache)."""

from datetime import timedelta

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from kombu.exceptions import OperationalError

from labeller import ml
from labeller.annotations.models import Annotation, AnnotationEvent
from labeller.annotations.services import Box, annotation_create, annotation_delete, annotation_reject
from labeller.tenants.models import Role
from labeller.training import services
from labeller.training.models import ProjectIndex
from tests.conftest import api_path
from tests.factories import FrameFactory, LabelFactory, ProjectFactory
from workers.celery import BULK, INTERACTIVE, app
from workers.maintenance import enqueue_overdue_index_syncs

pytestmark = pytest.mark.django_db


def queued(queue: str) -> list[str]:
    """Task names waiting on ``queue`` of the test broker (memory://), oldest first; drains it."""
    names = []
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            names.append(message.headers["task"])
    return names


@pytest.fixture(autouse=True)
def empty_broker():
    queued(INTERACTIVE), queued(BULK)


@pytest.fixture
def fake_embeddings(monkeypatch):
    """Deterministic vectors per annotation id, so syncs need no pixels and no model."""
    dim = ml.feature_extractor().dim

    def embed(annotation_ids, weights=None):
        ids = np.array(sorted(Annotation.objects.filter(pk__in=annotation_ids).values_list("pk", flat=True)), np.int64)
        vectors = np.stack([np.random.default_rng(int(pk)).standard_normal(dim) for pk in ids]) if len(ids) else np.zeros((0, dim))
        return ids, vectors.astype(np.float32)

    monkeypatch.setattr(services, "_embed_annotations", embed)
    return embed


@pytest.fixture
def fresh_cache(monkeypatch):
    """Each test starts with an empty per-process cache of indexes."""
    monkeypatch.setattr(services, "_cache", type(services._cache)())


def add_boxes(tenant, count: int, frame=None) -> list[Annotation]:
    frame = frame or FrameFactory(project=tenant.project, width=640, height=480)
    label = LabelFactory(project=tenant.project)
    return [
        annotation_create(frame=frame, actor=tenant.annotator, box=Box(i % 600, 0, i % 600 + 10, 10), label=label)
        for i in range(count)
    ]


def load_from_storage(state: ProjectIndex) -> ml.StoredIndex:
    """What another process, with nothing cached, reads."""
    saved = services._cache.copy()
    services._cache.clear()
    try:
        return services.index_load(state)
    finally:
        services._cache.clear()
        services._cache.update(saved)


def assert_same_index(a: ml.StoredIndex, b: ml.StoredIndex):
    assert a.member_versions == b.member_versions
    assert sorted(a.labels.index.ids.tolist()) == sorted(b.labels.index.ids.tolist())
    assert a.labels.label_counts() == b.labels.label_counts()
    assert a.labels.temperature == b.labels.temperature
    if len(a.labels):
        queries = a.labels.index.vectors_for(a.labels.index.ids[:5])
        assert [s.label_id for s in ml.suggest_labels(a, queries)[0]] == [s.label_id for s in ml.suggest_labels(b, queries)[0]]


# --- one pending sync per project -----------------------------------------------------------


def test_two_hundred_changes_publish_one_sync(tenant, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        boxes = add_boxes(tenant, 150)
        for box in boxes[:50]:
            annotation_reject(annotation=box, actor=tenant.annotator, actor_role=Role.ANNOTATOR, expected_version=box.version)
    assert queued(INTERACTIVE) == ["workers.proposals.sync_index"]
    assert ProjectIndex.objects.get(project=tenant.project).sync_requested_at is not None


def test_changes_during_a_sync_ask_for_exactly_one_more(tenant, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        add_boxes(tenant, 3)
    assert len(queued(INTERACTIVE)) == 1
    # The worker takes the pending mark before it reads the annotations...
    assert services.index_sync_claim(project_id=tenant.project.pk)
    # ...so what arrives meanwhile asks for one more sync, however much arrives.
    with django_capture_on_commit_callbacks(execute=True):
        add_boxes(tenant, 50)
    assert queued(INTERACTIVE) == ["workers.proposals.sync_index"]
    assert not services.index_sync_claim(project_id=tenant.project.pk + 1000)


def test_a_sync_with_nothing_pending_does_nothing(tenant, fake_embeddings, fresh_cache, django_capture_on_commit_callbacks):
    from workers.proposals import sync_index

    with django_capture_on_commit_callbacks(execute=True):
        add_boxes(tenant, 3)
    sync_index(tenant.project.pk)
    assert ProjectIndex.objects.get(project=tenant.project).size == 3
    sync_index(tenant.project.pk)  # a duplicate message: the mark is gone, so no read, no save
    assert ProjectIndex.objects.get(project=tenant.project).version == 1


def test_a_broker_outage_never_fails_the_write_and_beat_sends_the_sync_later(
    tenant, monkeypatch, django_capture_on_commit_callbacks
):
    frame = FrameFactory(project=tenant.project, width=640, height=480)
    label = LabelFactory(project=tenant.project)

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to redis:6379. Connection refused.")

    monkeypatch.setattr(app, "send_task", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        response = tenant.client("annotator").post(
            api_path(tenant, f"frames/{frame.pk}/annotations/"),
            {"box": [1, 1, 30, 30], "label_id": label.pk}, format="json",
        )
    assert response.status_code == 201, response.content
    assert Annotation.objects.filter(frame=frame).count() == 1
    state = ProjectIndex.objects.get(project=tenant.project)
    assert state.sync_requested_at is not None  # the record that a sync is owed

    monkeypatch.undo()
    assert enqueue_overdue_index_syncs() == 0  # not overdue yet: its message may still come
    ProjectIndex.objects.filter(pk=state.pk).update(sync_requested_at=timezone.now() - timedelta(minutes=5))
    assert enqueue_overdue_index_syncs() == 1
    assert queued(INTERACTIVE) == ["workers.proposals.sync_index"]
    assert enqueue_overdue_index_syncs() == 0  # re-sent once per wait, not every beat tick


def test_a_failed_sync_keeps_its_record(tenant, monkeypatch, django_capture_on_commit_callbacks):
    from workers.proposals import sync_index

    with django_capture_on_commit_callbacks(execute=True):
        add_boxes(tenant, 2)

    def storage_down(annotation_ids, weights=None):
        raise OSError("media volume unavailable")

    monkeypatch.setattr(services, "_embed_annotations", storage_down)
    with pytest.raises(OSError):
        sync_index(tenant.project.pk)
    assert ProjectIndex.objects.get(project=tenant.project).sync_requested_at is not None


def test_a_large_change_is_embedded_over_several_syncs(tenant, fake_embeddings, fresh_cache, monkeypatch):
    monkeypatch.setattr(services, "EMBED_PER_SYNC", 4)
    boxes = add_boxes(tenant, 10)
    first = services.index_sync(project_id=tenant.project.pk)
    assert (first.added, first.remaining) == (4, 6)
    # The newest boxes first: they are what the person is looking at.
    assert set(services.index_load(ProjectIndex.objects.get()).member_versions) == {b.pk for b in boxes[-4:]}
    assert services.index_sync(project_id=tenant.project.pk).remaining == 2
    last = services.index_sync(project_id=tenant.project.pk)
    assert (last.added, last.remaining, last.size) == (2, 0, 10)


# --- the stored index: base plus segments -----------------------------------------------------


def index_files(state: ProjectIndex) -> dict[str, int]:
    folder = state.segments[0]["file"].rsplit("/", 1)[0]
    return {name: default_storage.size(f"{folder}/{name}") for name in default_storage.listdir(folder)[1]}


def test_a_sync_stores_only_the_change_and_another_process_reads_the_same_index(tenant, fake_embeddings, fresh_cache):
    add_boxes(tenant, 40)
    services.index_sync(project_id=tenant.project.pk)
    forty_rows = sum(index_files(ProjectIndex.objects.get()).values())
    for _ in range(6):
        before = index_files(ProjectIndex.objects.get())
        boxes = add_boxes(tenant, 3)
        annotation_reject(annotation=boxes[0], actor=tenant.annotator, actor_role=Role.ANNOTATOR, expected_version=boxes[0].version)
        result = services.index_sync(project_id=tenant.project.pk)
        assert (result.added, result.removed) == (3, 0)
        written = {name: size for name, size in index_files(ProjectIndex.objects.get()).items() if name not in before}
        assert sum(written.values()) < forty_rows / 2  # the change (and a merge of small segments), not the index
    state = ProjectIndex.objects.get()
    assert state.version == 7 and state.size == 58
    assert state.label_counts[str(ml.BACKGROUND)] == 6
    assert state.segments[-1]["to"] == state.version
    # Segments chain from the base to the current version.
    assert [s["from"] for s in state.segments] == [state.base_version] + [s["to"] for s in state.segments[:-1]]
    assert_same_index(services.index_load(state), load_from_storage(state))


def test_a_process_behind_applies_only_the_segments_after_its_version(tenant, fake_embeddings, fresh_cache, monkeypatch):
    monkeypatch.setattr(services, "COMPACT_MIN_ROWS", 16)
    add_boxes(tenant, 18)
    services.index_sync(project_id=tenant.project.pk)
    add_boxes(tenant, 2)
    services.index_sync(project_id=tenant.project.pk)  # compacts: a base at version 1
    assert ProjectIndex.objects.get().base_version == 1
    behind = load_from_storage(ProjectIndex.objects.get())  # another process, at version 2
    key = services._cache_key(ProjectIndex.objects.get())
    other = {key: services._Cached(behind, 2)}
    monkeypatch.setattr(services, "COMPACT_MIN_ROWS", 1024)
    for _ in range(3):
        add_boxes(tenant, 2)
        services.index_sync(project_id=tenant.project.pk)
    reads = []
    monkeypatch.setattr(services, "_read_base", lambda name: reads.append(("base", name)))
    real_read_delta = services._read_delta
    monkeypatch.setattr(services, "_read_delta", lambda name: reads.append(("delta", name)) or real_read_delta(name))
    mine = services._cache.copy()
    services._cache.clear()
    services._cache.update(other)
    state = ProjectIndex.objects.get()
    caught_up = services.index_load(state)
    services._cache.clear()
    services._cache.update(mine)
    assert caught_up is behind and len(behind.labels) == 26
    assert reads and all(kind == "delta" for kind, _ in reads)
    assert len(reads) < len(state.segments) + 1  # not the segment it already had
    assert_same_index(behind, services.index_load(state))


def test_segments_are_merged_and_compacted_into_a_new_base(tenant, fake_embeddings, fresh_cache, monkeypatch):
    monkeypatch.setattr(services, "COMPACT_MIN_ROWS", 64)
    add_boxes(tenant, 60)
    services.index_sync(project_id=tenant.project.pk)
    seen_counts = []
    for _ in range(12):
        add_boxes(tenant, 1)
        services.index_sync(project_id=tenant.project.pk)
        seen_counts.append(len(ProjectIndex.objects.get().segments))
    state = ProjectIndex.objects.get()
    assert state.base_version > 0 and state.file  # compacted at least once
    assert max(seen_counts) <= 5  # merged like a binary counter
    stored_files = {s["file"] for s in state.segments} | {state.file}
    on_disk = set(default_storage.listdir(state.file.rsplit("/", 1)[0])[1])
    assert on_disk == {name.rsplit("/", 1)[1] for name in stored_files}  # superseded files deleted
    assert_same_index(services.index_load(state), load_from_storage(state))


def test_an_edit_and_a_delete_reach_the_index(tenant, fake_embeddings, fresh_cache):
    boxes = add_boxes(tenant, 5)
    services.index_sync(project_id=tenant.project.pk)
    annotation_delete(annotation=boxes[0], actor=tenant.annotator, actor_role=Role.ANNOTATOR, expected_version=boxes[0].version)
    annotation_reject(annotation=boxes[1], actor=tenant.annotator, actor_role=Role.ANNOTATOR, expected_version=boxes[1].version)
    result = services.index_sync(project_id=tenant.project.pk)
    assert (result.added, result.removed, result.size) == (1, 2, 4)
    stored = services.index_load(ProjectIndex.objects.get())
    assert boxes[0].pk not in stored.member_versions and stored.member_versions[boxes[1].pk] == 2
    assert ProjectIndex.objects.get().label_counts == {str(boxes[2].label_id): 3, str(ml.BACKGROUND): 1}


def test_changes_no_event_recorded_are_caught_by_the_periodic_full_comparison(tenant, fake_embeddings, fresh_cache):
    boxes = add_boxes(tenant, 4)
    AnnotationEvent.objects.update(created_at=timezone.now() - timedelta(minutes=10))  # settled events
    services.index_sync(project_id=tenant.project.pk)
    assert ProjectIndex.objects.get().event_watermark == AnnotationEvent.objects.latest("pk").pk
    Annotation.objects.filter(pk=boxes[0].pk).delete()  # as when its frame is deleted: no event
    assert services.index_sync(project_id=tenant.project.pk).removed == 0  # events only: not seen
    ProjectIndex.objects.update(reconciled_at=timezone.now() - services.RECONCILE_EVERY - timedelta(seconds=1))
    assert services.index_sync(project_id=tenant.project.pk).removed == 1


def test_a_concurrent_sync_loses_cleanly(tenant, fake_embeddings, fresh_cache, monkeypatch):
    add_boxes(tenant, 5)
    services.index_sync(project_id=tenant.project.pk)
    add_boxes(tenant, 2)
    real_filter = ProjectIndex.objects.filter

    def another_process_saves_first(*args, **kwargs):
        queryset = real_filter(*args, **kwargs)
        if "version" in kwargs:  # the optimistic save
            real_filter(pk=kwargs["pk"]).update(version=kwargs["version"] + 1)
        return queryset

    before = set(default_storage.listdir(ProjectIndex.objects.get().segments[0]["file"].rsplit("/", 1)[0])[1])
    monkeypatch.setattr(ProjectIndex.objects, "filter", another_process_saves_first)
    with pytest.raises(services.IndexConflict):
        services.index_sync(project_id=tenant.project.pk)
    monkeypatch.undo()
    after = set(default_storage.listdir(ProjectIndex.objects.get().segments[0]["file"].rsplit("/", 1)[0])[1])
    assert after == before  # its files are gone again
    assert len(services.index_load(ProjectIndex.objects.get()).labels) == 5  # its cache was never touched


def test_the_cache_holds_a_bounded_number_of_projects(tenant, fake_embeddings, fresh_cache, monkeypatch):
    monkeypatch.setattr(services, "INDEX_CACHE_ENTRIES", 2)
    projects = [tenant.project, ProjectFactory(organization=tenant.organization), ProjectFactory(organization=tenant.organization)]
    for project in projects:
        frame = FrameFactory(project=project, width=640, height=480)
        annotation_create(frame=frame, actor=tenant.annotator, box=Box(1, 1, 9, 9), label=LabelFactory(project=project))
        services.index_sync(project_id=project.pk)
        services.index_load(ProjectIndex.objects.get(project=project))
    assert [key[0] for key in services._cache] == list(
        ProjectIndex.objects.filter(project__in=projects[1:]).order_by("project_id").values_list("pk", flat=True)
    )


def test_the_watermark_stops_before_events_that_may_still_be_in_flight(tenant, fake_embeddings, fresh_cache):
    settled, recent = add_boxes(tenant, 2)
    AnnotationEvent.objects.filter(annotation_id=settled.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    services.index_sync(project_id=tenant.project.pk)
    # A transaction still open may hold an event id below a recent committed one: the next
    # sync reads the recent events again rather than skipping past them.
    recent_event = AnnotationEvent.objects.get(annotation_id=recent.pk)
    assert ProjectIndex.objects.get().event_watermark == recent_event.pk - 1
