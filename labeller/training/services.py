"""The learning loop, Django side: keep each project's index in step with what people
confirmed and rejected, and refresh proposals from it.

Tasks call these by id. ``index_sync`` is idempotent and costs what changed, not what the
index holds: it reads the annotation events since the last sync, compares the annotations
they touched with the (id, version) pairs the index was built from, embeds only the
difference and saves it as a small delta segment after the base snapshot, with an
optimistic check on the version, so concurrent syncs cannot lose each other's work.
Every so often (and on the first sync of an index) it compares every annotation instead,
which also catches changes no event recorded (rows deleted with their frame).

Stored layout (``ProjectIndex``): a base snapshot at ``base_version`` and segments after
it, each taking the index from version ``from`` to ``to``. Segments of similar size are
merged (like a binary counter: at most ~log2 of them), and once they hold a share of the
base they are compacted into a new base, so a sync writes O(change) bytes amortised.
Each process caches the last few projects' indexes (LRU); one behind applies only the
segments after its version.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import Max, Min, Q
from django.utils import timezone

from labeller import ml
from labeller.annotations.models import Annotation, AnnotationEvent, AnnotationStatus
from labeller.core.tasks import enqueue
from labeller.media.files import read_frame_rgb
from labeller.projects.models import Project
from labeller.training.feature_models import project_feature_weights
from labeller.training.models import ProjectIndex

logger = logging.getLogger(__name__)

# The per-process cache of indexes, least recently used first out.
INDEX_CACHE_ENTRIES = 8
INDEX_CACHE_BYTES = 4 * 2**30
# Segments are compacted into a new base once their rows exceed this share of the index.
COMPACT_SHARE = 0.25
COMPACT_MIN_ROWS = 1024
# One sync embeds at most this many crops (newest first); the rest go to the next sync, so
# a large import never holds the interactive queue for minutes.
EMBED_PER_SYNC = 256
# Events younger than this may belong to transactions that other events' ids overtook:
# each sync reads them again (cheap: the diff against the index makes it a no-op).
EVENT_SETTLE = timedelta(seconds=60)
# How often a sync compares every annotation rather than only those events touched.
RECONCILE_EVERY = timedelta(minutes=15)
# Another process may merge away a segment between reading the row and reading the file.
LOAD_ATTEMPTS = 3


class IndexConflict(Exception):
    """Another process saved the index meanwhile; retrying recomputes from the newer one."""


@dataclass(frozen=True)
class SyncResult:
    added: int
    removed: int
    size: int
    version: int
    remaining: int = 0  # changes left for the next sync (one sync embeds a bounded number)


# --- the index row ------------------------------------------------------------------------


# ``weights`` below: which feature model's index. By default the project's own (see
# ``feature_models``); the embedding's retraining passes a new one to build its index.
PROJECT_FEATURES = "project"


def _weights(project_id: int, weights: str | None) -> str | None:
    return project_feature_weights(project_id) if weights == PROJECT_FEATURES else weights


def index_state(project: Project, weights: str | None = PROJECT_FEATURES) -> ProjectIndex:
    """The project's index row for a feature model, created on first use."""
    weights = _weights(project.pk, weights)
    state = index_state_peek(project, weights)
    if state.pk is None:
        try:
            with transaction.atomic():
                state.save()
        except IntegrityError:  # created meanwhile by another process
            state = ProjectIndex.objects.get(project=project, feature_key=state.feature_key)
    elif not state.weights_description:  # born in a request (index_sync_request), without the model
        extractor = ml.feature_extractor(weights)
        state.weights_description, state.is_random = extractor.weights_description, extractor.is_random
        ProjectIndex.objects.filter(pk=state.pk).update(
            weights_description=state.weights_description, is_random=state.is_random
        )
    return state


def index_state_peek(project: Project, weights: str | None = PROJECT_FEATURES) -> ProjectIndex:
    """The index row if it exists, else an unsaved empty one: for reads that must not write."""
    weights = _weights(project.pk, weights)
    key = ml.feature_key(weights)
    state = ProjectIndex.objects.filter(project=project, feature_key=key).first()
    if state is None:
        extractor = ml.feature_extractor(weights)
        state = ProjectIndex(
            project=project, feature_key=key, weights_description=extractor.weights_description, is_random=extractor.is_random
        )
    return state


# --- loading, with a bounded per-process cache ----------------------------------------------


@dataclass
class _Cached:
    stored: ml.StoredIndex
    version: int
    nbytes: int = 0


_cache_lock = threading.Lock()
_cache: OrderedDict[tuple[int, datetime], _Cached] = OrderedDict()


def _cache_key(state: ProjectIndex) -> tuple[int, datetime]:
    # The creation time too: a test database (or a restored backup) reuses primary keys.
    return (state.pk, state.created_at)


def _cache_put(key: tuple[int, datetime], entry: _Cached) -> None:
    entry.nbytes = ml.stored_index_bytes_in_memory(entry.stored)
    with _cache_lock:
        _cache[key] = entry
        _cache.move_to_end(key)
        while len(_cache) > 1 and (
            len(_cache) > INDEX_CACHE_ENTRIES or sum(e.nbytes for e in _cache.values()) > INDEX_CACHE_BYTES
        ):
            _cache.popitem(last=False)


def index_load(state: ProjectIndex) -> ml.StoredIndex:
    """The stored index at ``state.version`` (or newer). Use it through ``ml`` functions,
    which hold its lock."""
    return _load(state).stored


def _load(state: ProjectIndex) -> _Cached:
    if state.pk is None:
        return _Cached(ml.stored_index_new(), state.version)
    key = _cache_key(state)
    for _ in range(LOAD_ATTEMPTS):
        try:
            with _cache_lock:
                entry = _cache.get(key)
                if entry is not None:
                    _cache.move_to_end(key)
            if entry is not None and _catch_up(entry, state):
                return entry
            entry = _Cached(ml.stored_index_new() if not state.file else _read_base(state.file), state.base_version)
            if not _catch_up(entry, state):
                raise FileNotFoundError(f"index {state.pk}: segments do not start at the base")
            _cache_put(key, entry)
            return entry
        except FileNotFoundError:
            # Merged or compacted away since the row was read: read the row again.
            state = ProjectIndex.objects.get(pk=state.pk)
    raise IndexConflict(f"index {state.pk} kept moving while it was being read")


def _catch_up(entry: _Cached, state: ProjectIndex) -> bool:
    """Apply the segments after ``entry.version`` (only those); False when the entry is too
    old for them (compacted since) and must be read from the base."""
    with entry.stored.lock:
        if entry.version >= state.version:
            return True
        if entry.version < state.base_version:
            return False
        for segment in state.segments:
            if segment["to"] <= entry.version:
                continue
            if segment["from"] > entry.version:
                return False
            ml.index_delta_apply(entry.stored, _read_delta(segment["file"]))
            entry.version = segment["to"]
    entry.nbytes = ml.stored_index_bytes_in_memory(entry.stored)
    return True


def _read_base(name: str) -> ml.StoredIndex:
    with default_storage.open(name, "rb") as handle:
        return ml.stored_index_from_bytes(handle.read())


def _read_delta(name: str) -> ml.IndexDelta:
    with default_storage.open(name, "rb") as handle:
        return ml.index_delta_from_bytes(handle.read())


# --- what changed ------------------------------------------------------------------------


def _index_members(project_id: int, ids: set[int] | None = None) -> dict[int, tuple[int, int]]:
    """annotation id -> (version, label id or BACKGROUND) for what belongs in the index,
    among ``ids`` (all the project's annotations when None)."""
    rows = Annotation.objects.filter(project_id=project_id).filter(
        Q(status=AnnotationStatus.CONFIRMED, label__isnull=False) | Q(status=AnnotationStatus.REJECTED)
    )
    fields = ("pk", "version", "label_id", "status")
    if ids is None:
        chunks = [rows.values_list(*fields)]
    else:
        ordered = sorted(ids)
        chunks = [rows.filter(pk__in=ordered[i:i + 5000]).values_list(*fields) for i in range(0, len(ordered), 5000)]
    return {
        pk: (version, label_id if status == AnnotationStatus.CONFIRMED else ml.BACKGROUND)
        for chunk in chunks
        for pk, version, label_id, status in chunk
    }


def _touched_since(
    project_id: int, state: ProjectIndex, now: datetime, *, everything: bool
) -> tuple[set[int] | None, int]:
    """(annotation ids touched by events after the watermark, or None for ``everything``;
    the new watermark). The watermark stops before the first event younger than
    EVENT_SETTLE: a transaction still open may hold an older id than a committed one."""
    events = AnnotationEvent.objects.filter(project_id=project_id)
    cutoff = now - EVENT_SETTLE
    if everything:
        first_recent = events.filter(created_at__gte=cutoff).aggregate(pk=Min("pk"))["pk"]
        last = events.aggregate(pk=Max("pk"))["pk"] or 0
        touched = None
    else:
        rows = list(events.filter(pk__gt=state.event_watermark).values_list("pk", "annotation_id", "created_at"))
        touched = {annotation_id for _, annotation_id, _ in rows}
        first_recent = min((pk for pk, _, created in rows if created >= cutoff), default=None)
        last = max((pk for pk, _, _ in rows), default=0)
    watermark = first_recent - 1 if first_recent is not None else last
    return touched, max(watermark, state.event_watermark)


def _embed_annotations(annotation_ids: list[int], weights: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of the annotations' crops, reading each frame once. Returns (ids, vectors)."""
    by_frame: dict[int, list[Annotation]] = defaultdict(list)
    for annotation in Annotation.objects.filter(pk__in=annotation_ids).select_related("frame"):
        by_frame[annotation.frame_id].append(annotation)
    ids, vectors = [], []
    for on_frame in by_frame.values():
        rgb = read_frame_rgb(on_frame[0].frame)
        boxes = np.array([[a.x1, a.y1, a.x2, a.y2] for a in on_frame], dtype=np.float32)
        vectors.append(ml.embed_crops(rgb, boxes, weights))
        ids.extend(a.pk for a in on_frame)
    if not ids:
        return np.zeros(0, np.int64), np.zeros((0, ml.feature_extractor(weights).dim), np.float32)
    return np.array(ids, dtype=np.int64), np.concatenate(vectors)


# --- the sync ------------------------------------------------------------------------------


def index_sync(*, project_id: int, weights: str | None = PROJECT_FEATURES) -> SyncResult:
    """Bring the project's index for a feature model (its own by default) up to date."""
    project = Project.objects.get(pk=project_id)
    weights = _weights(project_id, weights)
    state = index_state(project, weights)
    entry = _load(state)
    if entry.version != state.version:
        raise IndexConflict(f"index {state.pk}: this process holds v{entry.version}, the row says v{state.version}")
    stored = entry.stored
    now = timezone.now()
    everything = state.reconciled_at is None or state.reconciled_at < now - RECONCILE_EVERY
    touched, watermark = _touched_since(project_id, state, now, everything=everything)
    wanted = _index_members(project_id, touched)
    with stored.lock:
        members = stored.member_versions
        have = dict(members) if everything else {pk: members[pk] for pk in touched if pk in members}
    if everything:
        touched = set(wanted) | set(have)
    stale = sorted(pk for pk in touched if pk in have and (pk not in wanted or wanted[pk][0] != have[pk]))
    # Newest first: when a sync cannot take everything, people's latest boxes come first.
    missing = sorted((pk for pk in touched if pk in wanted and have.get(pk) != wanted[pk][0]), reverse=True)
    remaining = max(0, len(missing) - EMBED_PER_SYNC)
    if remaining:
        missing = missing[:EMBED_PER_SYNC]
        watermark, everything = state.event_watermark, False  # read these events again next time
    reconciled_at = now if everything else state.reconciled_at
    if not stale and not missing:
        ProjectIndex.objects.filter(pk=state.pk, version=state.version).update(
            event_watermark=watermark, reconciled_at=reconciled_at
        )
        return SyncResult(added=0, removed=0, size=state.size, version=state.version)

    ids, vectors = _embed_annotations(missing, weights)
    delta = ml.IndexDelta(
        removed=np.array(stale, dtype=np.int64), ids=ids, vectors=vectors.astype(np.float32, copy=False),
        labels=np.array([wanted[pk][1] for pk in ids.tolist()], dtype=np.int64),
        versions=np.array([wanted[pk][0] for pk in ids.tolist()], dtype=np.int64),
        temperature=stored.labels.temperature,
    )
    with stored.lock:
        size_before = len(stored.labels)
        removed_labels = stored.labels.labels_for(delta.removed)
        replacement = None
        if _crossed_power_of_two(size_before, size_before - len(stale) + len(ids)):
            # Refit the confidence temperature as the data doubles. Calibration needs the
            # updated index, so it runs on a copy: O(index), but only log2(size) times ever.
            replacement = ml.stored_index_from_bytes(ml.stored_index_to_bytes(stored))
            ml.index_delta_apply(replacement, delta)
            delta = replace(delta, temperature=replacement.labels.calibrate())
    counts = Counter({int(label): count for label, count in state.label_counts.items()})
    counts.subtract(removed_labels.tolist())
    counts.update(delta.labels.tolist())

    written, superseded, layout = _write_segment(project, state, stored, delta)
    saved = ProjectIndex.objects.filter(pk=state.pk, version=state.version).update(
        **layout,
        version=state.version + 1,
        size=size_before - len(stale) + len(ids),
        label_counts={str(label): count for label, count in sorted(counts.items()) if count > 0},
        event_watermark=watermark,
        reconciled_at=reconciled_at,
    )
    if not saved:
        for name in written:
            default_storage.delete(name)
        raise IndexConflict(f"index {state.pk} moved past version {state.version}")
    for name in superseded:
        default_storage.delete(name)
    with stored.lock:
        if entry.version == state.version:  # else another thread caught up from storage already
            if replacement is not None:
                entry.stored = replacement
            else:
                ml.index_delta_apply(stored, delta)
            entry.version = state.version + 1
    entry.nbytes = ml.stored_index_bytes_in_memory(entry.stored)
    size = size_before - len(stale) + len(ids)
    logger.info("project %s index v%d: +%d -%d = %d", project.pk, state.version + 1, len(ids), len(stale), size)
    return SyncResult(added=len(ids), removed=len(stale), size=size, version=state.version + 1, remaining=remaining)


def _write_segment(
    project: Project, state: ProjectIndex, stored: ml.StoredIndex, delta: ml.IndexDelta
) -> tuple[list[str], list[str], dict]:
    """Store ``delta`` as the segment to version + 1, merging or compacting as due.

    Returns (files written, files superseded once the row is saved, the row's new layout
    fields). ``stored`` is the index at ``state.version``; nothing is deleted here.
    """
    version = state.version
    prefix = f"orgs/{project.organization_id}/projects/{project.pk}/index/{state.pk}"

    def save(suffix: str, data: bytes) -> str:
        name = default_storage.save(f"{prefix}-{suffix}-{uuid.uuid4().hex}.npz", ContentFile(data))
        written.append(name)
        return name

    written: list[str] = []
    name = save(f"d{version + 1}", ml.index_delta_to_bytes(delta))
    segment = {"from": version, "to": version + 1, "file": name, "rows": delta.rows}
    segments = [*state.segments, segment]
    if sum(s["rows"] for s in segments) > COMPACT_SHARE * max(len(stored.labels), COMPACT_MIN_ROWS):
        # The index we hold is the one at ``version``: it becomes the base, and only the new
        # segment follows it.
        with stored.lock:
            base = save(f"b{version}", ml.stored_index_to_bytes(stored))
        superseded = [s["file"] for s in state.segments] + ([state.file] if state.file else [])
        return written, superseded, {"file": base, "base_version": version, "segments": [segment]}

    superseded: list[str] = []
    deltas = {segment["file"]: delta}
    # Merge the newest two while the older is no larger (a binary counter): few segments to
    # read for a process catching up, and each row rewritten only ~log2(segments) times.
    while len(segments) >= 2 and segments[-2]["rows"] <= segments[-1]["rows"]:
        older, newer = segments[-2], segments[-1]
        merged = ml.index_delta_merge(
            deltas.get(older["file"]) or _read_delta(older["file"]),
            deltas.get(newer["file"]) or _read_delta(newer["file"]),
        )
        name = save(f"d{older['from'] + 1}-{newer['to']}", ml.index_delta_to_bytes(merged))
        deltas[name] = merged
        superseded += [older["file"], newer["file"]]
        segments[-2:] = [{"from": older["from"], "to": newer["to"], "file": name, "rows": merged.rows}]
    return written, superseded, {"file": state.file, "base_version": state.base_version, "segments": segments}


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
            key = ml.feature_key(project_feature_weights(project_id))
            ProjectIndex.objects.create(project_id=project_id, feature_key=key, sync_requested_at=now)
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
