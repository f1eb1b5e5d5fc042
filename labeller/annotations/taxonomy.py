"""Reshaping a project's taxonomy: rename, move, merge, and the taxonomy as a JSON file.

Boxes point at labels by id, so a rename or a move carries every box along by itself: the
dotted names of the label and of its sub-labels change, ids stay. A merge moves the boxes
of one label onto another; each moved box gets a new version and an ``updated`` history
row, so the index sync (which compares ids and versions) re-reads exactly those boxes.
Every change here is one transaction, is recorded in LabelEvent, and asks for an index sync.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from labeller.annotations.models import (
    DOTTED_NAME,
    Annotation,
    AnnotationAction,
    AnnotationEvent,
    AnnotationStatus,
    Label,
    LabelAction,
    LabelEvent,
)
from labeller.annotations.services import _ancestor_names, label_create, label_update
from labeller.core.concurrency import StaleVersionError
from labeller.core.errors import DomainError, field_error
from labeller.projects.models import Project
from labeller.training.hooks import index_sync_soon
from labeller.training.models import ProposalOutcome

EVENT_BATCH = 2000
TAXONOMY_FORMAT = "labeller-taxonomy"


def _label_state(label: Label) -> dict:
    return {"name": label.name, "color": label.color, "hotkey": label.hotkey, "deprecated": label.deprecated}


def _record(label: Label, *, actor, action: LabelAction, before: dict | None, after: dict | None) -> None:
    LabelEvent.objects.create(
        project_id=label.project_id, label_id=label.pk, actor=actor, action=action, before=before, after=after
    )


def _clean_name(name: str, field: str = "name") -> str:
    name = name.strip().lower()
    try:
        DOTTED_NAME(name)
    except ValidationError as exc:
        raise field_error(field, " ".join(exc.messages)) from None
    return name


def _lock_subtree(label: Label, expected_version: int) -> list[Label]:
    """Lock ``label`` and its sub-labels (label first) and check the version the caller saw."""
    subtree = list(
        Label.objects.select_for_update()
        .filter(Q(pk=label.pk) | Q(project_id=label.project_id, name__startswith=label.name + "."))
        .order_by("pk")
    )
    locked = next(row for row in subtree if row.pk == label.pk)
    if locked.version != expected_version:
        raise StaleVersionError(current=locked, expected_version=expected_version)
    return [locked] + [row for row in subtree if row.pk != label.pk]


def _ensure_ancestors(project_id: int, name: str, color: str) -> None:
    for ancestor in _ancestor_names(name):
        if not Label.objects.filter(project_id=project_id, name=ancestor).exists():
            Label.objects.create(project_id=project_id, name=ancestor, color=color)


@transaction.atomic
def label_rename(*, label: Label, name: str, expected_version: int, actor) -> Label:
    """Give ``label`` a new dotted name; its sub-labels follow (``food.dish`` -> ``meal`` makes
    ``food.dish.soup`` ``meal.soup``). A new parent path is created when missing."""
    name = _clean_name(name)
    subtree = _lock_subtree(label, expected_version)
    label = subtree[0]
    if name == label.name:
        raise field_error("name", f"The label is already called {name!r}.", code="unchanged")
    if name.startswith(label.name + "."):
        raise field_error("name", f"{label.name!r} cannot move under itself.")
    renamed = {row.pk: name + row.name[len(label.name) :] for row in subtree}
    taken = (
        Label.objects.filter(project_id=label.project_id, name__in=renamed.values())
        .exclude(pk__in=renamed.keys())
        .values_list("name", flat=True)
        .first()
    )
    if taken is not None:
        raise field_error("name", f"The label {taken!r} already exists; merge into it instead.", code="duplicate")
    _ensure_ancestors(label.project_id, name, label.color)
    for row in subtree:
        before = _label_state(row)
        Label.objects.filter(pk=row.pk).update(
            name=renamed[row.pk], version=F("version") + 1, updated_at=timezone.now()
        )
        row.refresh_from_db()
        _record(row, actor=actor, action=LabelAction.RENAMED, before=before, after=_label_state(row))
    index_sync_soon(project_id=label.project_id)
    return subtree[0]


def label_move(*, label: Label, parent: Label | None, expected_version: int, actor) -> Label:
    """Put ``label`` (with its sub-labels) under ``parent``, or at the top with None."""
    if parent is not None and parent.project_id != label.project_id:
        raise field_error("parent_id", f"The label {parent.name!r} belongs to another project.")
    if parent is not None and (parent.pk == label.pk or parent.name.startswith(label.name + ".")):
        raise field_error("parent_id", f"{label.name!r} cannot move under itself.")
    leaf = label.name.rsplit(".", 1)[-1]
    name = f"{parent.name}.{leaf}" if parent is not None else leaf
    return label_rename(label=label, name=name, expected_version=expected_version, actor=actor)


@dataclass(frozen=True)
class MergeResult:
    target: Label
    moved_annotations: int


def _moved_annotation_events(source: Label, target: Label, actor) -> int:
    """History rows for the boxes about to move from ``source`` to ``target`` (caller holds the
    labels' locks); returns how many boxes there are."""
    moved = 0
    fields = ("pk", "frame_id", "x1", "y1", "x2", "y2", "status", "source", "score", "version")
    rows = Annotation.objects.filter(label=source).order_by("pk").values_list(*fields)
    batch: list[AnnotationEvent] = []
    for pk, frame_id, x1, y1, x2, y2, status, box_source, score, version in rows.iterator(chunk_size=EVENT_BATCH):
        before = {
            "frame_id": frame_id,
            "label_id": source.pk,
            "box": [x1, y1, x2, y2],
            "status": status,
            "source": box_source,
            "score": score,
            "version": version,
        }
        after = {**before, "label_id": target.pk, "version": version + 1}
        batch.append(
            AnnotationEvent(
                project_id=source.project_id,
                annotation_id=pk,
                frame_id=frame_id,
                actor=actor,
                action=AnnotationAction.UPDATED,
                before=before,
                after=after,
            )
        )
        if len(batch) >= EVENT_BATCH:
            AnnotationEvent.objects.bulk_create(batch)
            moved += len(batch)
            batch = []
    AnnotationEvent.objects.bulk_create(batch)
    return moved + len(batch)


def _rewrite_suggestions(source: Label, target: Label) -> None:
    """Open proposals that suggest ``source`` suggest ``target`` instead (once, best score kept)."""
    proposals = Annotation.objects.filter(project_id=source.project_id, status=AnnotationStatus.PROPOSED).exclude(
        suggestions=[]
    )
    changed = []
    for proposal in proposals.only("pk", "suggestions").iterator(chunk_size=EVENT_BATCH):
        if not any(s.get("label_id") == source.pk for s in proposal.suggestions):
            continue
        best: dict[int, dict] = {}
        for suggestion in proposal.suggestions:
            label_id = target.pk if suggestion.get("label_id") == source.pk else suggestion.get("label_id")
            if label_id not in best or suggestion.get("score", 0) > best[label_id].get("score", 0):
                best[label_id] = {**suggestion, "label_id": label_id}
        proposal.suggestions = sorted(best.values(), key=lambda s: -s.get("score", 0))
        changed.append(proposal)
    Annotation.objects.bulk_update(changed, ["suggestions"], batch_size=EVENT_BATCH)


@transaction.atomic
def label_merge(*, source: Label, target: Label, expected_version: int, actor) -> MergeResult:
    """Move every box of ``source`` onto ``target`` and delete ``source``, in one transaction."""
    if target.project_id != source.project_id:
        raise field_error("into_id", f"The label {target.name!r} belongs to another project.")
    if target.pk == source.pk:
        raise field_error("into_id", "A label cannot be merged into itself.")
    locked = {
        row.pk: row for row in Label.objects.select_for_update().filter(pk__in=[source.pk, target.pk]).order_by("pk")
    }
    source, target = locked[source.pk], locked[target.pk]
    if source.version != expected_version:
        raise StaleVersionError(current=source, expected_version=expected_version)
    if target.deprecated:
        raise field_error("into_id", f"{target.name!r} is deprecated; restore it before merging into it.")
    if Label.objects.filter(project_id=source.project_id, name__startswith=source.name + ".").exists():
        raise DomainError(
            f"{source.name!r} has sub-labels: move or merge them first, so none is merged silently.",
            code="label_has_children",
            http_status=409,
        )
    moved = _moved_annotation_events(source, target, actor)
    Annotation.objects.filter(label=source).update(label=target, version=F("version") + 1, updated_at=timezone.now())
    _rewrite_suggestions(source, target)
    # Outcomes not yet decided compare their label with the box's when the frame is completed.
    ProposalOutcome.objects.filter(project_id=source.project_id, label_id=source.pk, useful__isnull=True).update(
        label_id=target.pk
    )
    _record(
        source,
        actor=actor,
        action=LabelAction.MERGED,
        before=_label_state(source),
        after={"into_id": target.pk, "into": target.name, "annotations": moved},
    )
    source.delete()
    index_sync_soon(project_id=target.project_id)
    return MergeResult(target=target, moved_annotations=moved)


# --- the taxonomy as a file ---------------------------------------------------------------


@dataclass(frozen=True)
class TaxonomyEntry:
    name: str
    color: str | None = None
    hotkey: str | None = None
    deprecated: bool | None = None


@dataclass(frozen=True)
class ImportResult:
    created: list[str]
    updated: list[str]
    unchanged: int


def _check_hotkeys(project: Project, entries: list[TaxonomyEntry]) -> None:
    by_key: dict[str, str] = {}
    for index, entry in enumerate(entries):
        if entry.hotkey:
            if entry.hotkey in by_key:
                raise field_error(
                    "labels", f"labels[{index}]: the hotkey {entry.hotkey!r} is also given to {by_key[entry.hotkey]!r}."
                )
            by_key[entry.hotkey] = entry.name
    names = {entry.name for entry in entries}
    kept = Label.objects.filter(project=project, hotkey__in=by_key).exclude(name__in=names)
    for label in kept:
        raise field_error(
            "labels", f"The hotkey {label.hotkey!r} belongs to {label.name!r}, which the file does not change."
        )


@transaction.atomic
def taxonomy_import(*, project: Project, entries: list[TaxonomyEntry], actor) -> ImportResult:
    """Add the file's labels and set their colour, hotkey and deprecation; never renames or
    deletes. All or nothing: any refusal leaves the taxonomy as it was."""
    entries = [TaxonomyEntry(**{**entry.__dict__, "name": _clean_name(entry.name, "labels")}) for entry in entries]
    _check_hotkeys(project, entries)
    existing = {label.name: label for label in Label.objects.select_for_update().filter(project=project)}
    # Hotkeys may move between labels of the file: free them first, set them below.
    moving = [
        existing[e.name].pk
        for e in entries
        if e.name in existing and e.hotkey is not None and e.hotkey != existing[e.name].hotkey
    ]
    Label.objects.filter(pk__in=moving).update(hotkey="")
    created, updated, unchanged = [], [], 0
    for entry in sorted(entries, key=lambda e: e.name):
        label = existing.get(entry.name) or Label.objects.filter(project=project, name=entry.name).first()
        changes = {
            field: value
            for field, value in (("color", entry.color), ("hotkey", entry.hotkey), ("deprecated", entry.deprecated))
            if value is not None
        }
        if label is None:
            label = label_create(
                project=project, name=entry.name, **{k: v for k, v in changes.items() if k != "deprecated"}
            )
            if changes.get("deprecated"):
                label_update(label=label, expected_version=label.version, deprecated=True)
            created.append(entry.name)
            _record(label, actor=actor, action=LabelAction.IMPORTED, before=None, after=_label_state(label))
            continue
        original = existing.get(entry.name)
        before = _label_state(original) if original is not None else _label_state(label)
        label.refresh_from_db()
        changes = {field: value for field, value in changes.items() if getattr(label, field) != value}
        if not changes and before == _label_state(label):
            unchanged += 1
            continue
        if changes:
            label = label_update(label=label, expected_version=label.version, **changes)
        updated.append(entry.name)
        _record(label, actor=actor, action=LabelAction.IMPORTED, before=before, after=_label_state(label))
    return ImportResult(created=created, updated=updated, unchanged=unchanged)
