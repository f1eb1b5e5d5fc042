"""The learning loop, Django side: keep each project's index in step with what people
confirmed and rejected, and refresh proposals from it.

Tasks call these by id. ``index_sync`` is idempotent: it compares the annotations that
belong in the index (confirmed with a label, or rejected as hard negatives) with the
(id, version) pairs the stored index was built from, embeds only the difference, and
saves a new index version with an optimistic check, so concurrent syncs cannot lose
each other's work.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from labeller import ml
from labeller.annotations.models import Annotation, AnnotationStatus
from labeller.core.tasks import enqueue
from labeller.media.files import read_frame_rgb
from labeller.projects.models import Project
from labeller.training.models import ProjectIndex

logger = logging.getLogger(__name__)


class IndexConflict(Exception):
    """Another process saved the index meanwhile; retrying recomputes from the newer one."""


@dataclass(frozen=True)
class SyncResult:
    added: int
    removed: int
    size: int
    version: int


# --- the index ----------------------------------------------------------------------------

_cache_lock = threading.Lock()
_cache: dict[int, tuple[int, ml.StoredIndex]] = {}


def index_state(project: Project) -> ProjectIndex:
    """The project's index row for the configured feature model, created on first use."""
    state = index_state_peek(project)
    if state.pk is None:
        try:
            with transaction.atomic():
                state.save()
        except IntegrityError:  # created meanwhile by another process
            state = ProjectIndex.objects.get(project=project, feature_key=state.feature_key)
    return state


def index_state_peek(project: Project) -> ProjectIndex:
    """The index row if it exists, else an unsaved empty one: for reads that must not write."""
    key = ml.feature_key()
    state = ProjectIndex.objects.filter(project=project, feature_key=key).first()
    if state is None:
        extractor = ml.feature_extractor()
        state = ProjectIndex(
            project=project, feature_key=key, weights_description=extractor.weights_description, is_random=extractor.is_random
        )
    return state


def index_load(state: ProjectIndex) -> ml.StoredIndex:
    """The stored index at ``state.version``, cached per process until the version moves."""
    with _cache_lock:
        cached = _cache.get(state.pk)
        if cached and cached[0] == state.version:
            return cached[1]
    if not state.file:
        stored = ml.stored_index_new()
    else:
        with default_storage.open(state.file, "rb") as handle:
            stored = ml.stored_index_from_bytes(handle.read())
    with _cache_lock:
        _cache[state.pk] = (state.version, stored)
    return stored


def _index_members(project_id: int) -> dict[int, tuple[int, int]]:
    """annotation id -> (version, label id or BACKGROUND) for what belongs in the index."""
    rows = Annotation.objects.filter(project_id=project_id).filter(
        Q(status=AnnotationStatus.CONFIRMED, label__isnull=False) | Q(status=AnnotationStatus.REJECTED)
    )
    return {
        pk: (version, label_id if status == AnnotationStatus.CONFIRMED else ml.BACKGROUND)
        for pk, version, label_id, status in rows.values_list("pk", "version", "label_id", "status")
    }


def _embed_annotations(annotation_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of the annotations' crops, reading each frame once. Returns (ids, vectors)."""
    by_frame: dict[int, list[Annotation]] = defaultdict(list)
    for annotation in Annotation.objects.filter(pk__in=annotation_ids).select_related("frame"):
        by_frame[annotation.frame_id].append(annotation)
    ids, vectors = [], []
    for on_frame in by_frame.values():
        rgb = read_frame_rgb(on_frame[0].frame)
        boxes = np.array([[a.x1, a.y1, a.x2, a.y2] for a in on_frame], dtype=np.float32)
        vectors.append(ml.embed_crops(rgb, boxes))
        ids.extend(a.pk for a in on_frame)
    if not ids:
        return np.zeros(0, np.int64), np.zeros((0, ml.feature_extractor().dim), np.float32)
    return np.array(ids, dtype=np.int64), np.concatenate(vectors)


def index_sync(*, project_id: int) -> SyncResult:
    project = Project.objects.get(pk=project_id)
    state = index_state(project)
    stored = index_load(state)
    wanted = _index_members(project_id)
    have = stored.member_versions
    stale = [pk for pk, version in have.items() if pk not in wanted or wanted[pk][0] != version]
    missing = [pk for pk, (version, _) in wanted.items() if have.get(pk) != version]
    if not stale and not missing:
        return SyncResult(added=0, removed=0, size=len(stored.labels), version=state.version)

    # Work on a copy: the cached index may be in use by other threads of this process.
    updated = ml.stored_index_from_bytes(ml.stored_index_to_bytes(stored))
    if stale:
        updated.labels.remove(np.array(stale, dtype=np.int64))
        for pk in stale:
            updated.member_versions.pop(pk, None)
    ids, vectors = _embed_annotations(missing)
    if len(ids):
        updated.labels.add(ids, vectors, np.array([wanted[pk][1] for pk in ids.tolist()], dtype=np.int64))
        updated.member_versions.update({pk: wanted[pk][0] for pk in ids.tolist()})
    if _crossed_power_of_two(len(stored.labels), len(updated.labels)):
        updated.labels.calibrate()  # refit the confidence temperature as the data doubles

    name = default_storage.save(
        f"orgs/{project.organization_id}/projects/{project.pk}/index/{state.pk}-{uuid.uuid4().hex}.npz",
        ContentFile(ml.stored_index_to_bytes(updated)),
    )
    saved = ProjectIndex.objects.filter(pk=state.pk, version=state.version).update(
        file=name,
        version=state.version + 1,
        size=len(updated.labels),
        label_counts={str(k): v for k, v in updated.labels.label_counts().items()},
    )
    if not saved:
        default_storage.delete(name)
        raise IndexConflict(f"index {state.pk} moved past version {state.version}")
    if state.file:
        default_storage.delete(state.file)
    with _cache_lock:
        _cache[state.pk] = (state.version + 1, updated)
    logger.info("project %s index v%d: +%d -%d = %d", project.pk, state.version + 1, len(ids), len(stale), len(updated.labels))
    return SyncResult(added=len(ids), removed=len(stale), size=len(updated.labels), version=state.version + 1)


def _crossed_power_of_two(before: int, after: int) -> bool:
    return after >= 2 and (before < 2 or int(np.log2(after)) > int(np.log2(max(before, 1))))


# --- one pending sync per project ---------------------------------------------------------


def index_sync_request(*, project_id: int) -> bool:
    """Mark the project's index as behind its annotations. True when no sync was pending:
    the caller enqueues one; False: the pending one will see this change too.

    Call inside the transaction that made the change. The project's index rows stay locked
    until it commits, so a sync claiming the mark (``index_sync_claim``) waits for the commit
    and then reads the change, and one that claimed earlier finds the mark set again.
    """
    now = timezone.now()
    with transaction.atomic():
        marks = list(
            ProjectIndex.objects.select_for_update().filter(project_id=project_id).values_list("sync_requested_at", flat=True)
        )
        if marks:
            ProjectIndex.objects.filter(project_id=project_id, sync_requested_at__isnull=True).update(sync_requested_at=now)
            return all(mark is None for mark in marks)
    try:
        with transaction.atomic():
            # The first change of a project: its index row is born pending. The feature model's
            # description is filled in by the first sync, in a worker.
            ProjectIndex.objects.create(project_id=project_id, feature_key=ml.feature_key(), sync_requested_at=now)
    except IntegrityError:  # a concurrent first change created it: mark it like any other
        return index_sync_request(project_id=project_id)
    return True


def index_sync_claim(*, project_id: int) -> bool:
    """Take the project's pending mark, before reading the annotations: changes committed
    after this mark it again (and enqueue the next sync). False: nothing was pending, a
    sync that ran meanwhile took it. Call outside a transaction, so the claim commits first."""
    return bool(
        ProjectIndex.objects.filter(project_id=project_id, sync_requested_at__isnull=False).update(sync_requested_at=None)
    )


def index_sync_mark_pending(*, project_id: int) -> None:
    """Record that a sync is still owed without enqueueing one (after a failed sync): beat
    re-sends it once it has waited ``index_syncs_overdue``'s delay, not in a tight loop."""
    ProjectIndex.objects.filter(project_id=project_id, sync_requested_at__isnull=True).update(sync_requested_at=timezone.now())


def index_syncs_overdue(*, waited: timedelta) -> list[int]:
    """Projects whose sync has been pending longer than ``waited`` (its message was lost, the
    broker was down, or the sync failed). Their marks restart the wait, so each is re-sent
    once per ``waited``; the caller sends one sync for each."""
    now = timezone.now()
    overdue = ProjectIndex.objects.filter(sync_requested_at__lt=now - waited)
    project_ids = sorted(set(overdue.values_list("project_id", flat=True)))
    ProjectIndex.objects.filter(project_id__in=project_ids, sync_requested_at__lt=now - waited).update(sync_requested_at=now)
    return project_ids


def embedding_report_request(*, project: Project) -> None:
    enqueue("workers.training.evaluate_embeddings", project.pk)
