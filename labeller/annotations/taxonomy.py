"""Reshaping a project's taxonomy: rename, move, merge, and the taxonomy as a JSON file.

Boxes point at labels by id, so a rename or a move carries every box along by itself: the
dotted names of the label and of its sub-labels change, ids stay. A merge moves the boxes
of one label onto another; each moved box gets a new version and an ``updated`` history
row, so the index sync (which compares ids and versions) re-reads exactly those boxes.
Every change here is one transaction, is recorded in LabelEvent, and asks for an index sync.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
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


def _check_name_lengths(names, field: str) -> None:
    """A subtree renamed under a longer name must still fit the name column: say so as a 400
    rather than let the database refuse the update (a 500)."""
    longest = Label._meta.get_field("name").max_length
    for name in names:
        if len(name) > longest:
            raise field_error(field, f"{name[:60]}… would be {len(name)} characters long; a label name has at most {longest}.")


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
    _check_name_lengths(renamed.values(), "name")
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
        _rename_one(row, renamed[row.pk], actor)
    index_sync_soon(project_id=label.project_id)
    return subtree[0]


def _rename_one(row: Label, name: str, actor) -> None:
    """Give one label (locked by the caller) its new name, a new version and a history row."""
    before = _label_state(row)
    Label.objects.filter(pk=row.pk).update(name=name, version=F("version") + 1, updated_at=timezone.now())
    row.refresh_from_db()
    _record(row, actor=actor, action=LabelAction.RENAMED, before=before, after=_label_state(row))


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
class MovedLabel:
    """A sub-label of the merged label that went under the target as it was (same id)."""

    id: int
    name_before: str
    name: str


@dataclass(frozen=True)
class MergedLabel:
    """A sub-label of the merged label whose boxes went to the target's sub-label of that name."""

    name_before: str
    into_id: int
    into: str
    moved_annotations: int


@dataclass(frozen=True)
class MergeResult:
    target: Label
    # Boxes whose label changed: those of the merged label and of the sub-labels merged away.
    moved_annotations: int
    moved_labels: list[MovedLabel] = field(default_factory=list)
    merged_labels: list[MergedLabel] = field(default_factory=list)


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


def _rewrite_suggestions(project_id: int, into: dict[int, int]) -> None:
    """Open proposals that suggest a label of ``into``'s keys suggest its value instead (once,
    best score kept)."""
    proposals = Annotation.objects.filter(project_id=project_id, status=AnnotationStatus.PROPOSED).exclude(
        suggestions=[]
    )
    changed = []
    for proposal in proposals.only("pk", "suggestions").iterator(chunk_size=EVENT_BATCH):
        if not any(s.get("label_id") in into for s in proposal.suggestions):
            continue
        best: dict[int, dict] = {}
        for suggestion in proposal.suggestions:
            label_id = into.get(suggestion.get("label_id"), suggestion.get("label_id"))
            if label_id not in best or suggestion.get("score", 0) > best[label_id].get("score", 0):
                best[label_id] = {**suggestion, "label_id": label_id}
        proposal.suggestions = sorted(best.values(), key=lambda s: -s.get("score", 0))
        changed.append(proposal)
    Annotation.objects.bulk_update(changed, ["suggestions"], batch_size=EVENT_BATCH)


def _merge_one(source: Label, target: Label, actor) -> int:
    """Move the boxes of ``source`` onto ``target``, record it and delete ``source`` (caller holds
    both labels' locks and rewrites the suggestions); returns how many boxes moved."""
    moved = _moved_annotation_events(source, target, actor)
    Annotation.objects.filter(label=source).update(label=target, version=F("version") + 1, updated_at=timezone.now())
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
    return moved


def _lock_for_merge(source: Label, target: Label) -> dict[int, Label]:
    """Lock both labels and every sub-label of each, in one statement in id order (as box writes
    take theirs), so a merge never deadlocks with them or with another reshaping."""
    project = Q(project_id=source.project_id)
    rows = (
        Label.objects.select_for_update()
        .filter(
            Q(pk__in=[source.pk, target.pk])
            | project & Q(name__startswith=source.name + ".")
            | project & Q(name__startswith=target.name + ".")
        )
        .order_by("pk")
    )
    locked = {row.pk: row for row in rows}
    if source.pk not in locked or target.pk not in locked:
        raise DomainError("A label of this merge was merged or deleted meanwhile.", code="label_gone", http_status=409)
    if (locked[source.pk].name, locked[target.pk].name) != (source.name, target.name):
        # The sub-labels were chosen by the names read before locking: they may be others now.
        raise DomainError(
            "A label of this merge was renamed meanwhile; reload and merge again.",
            code="label_changed",
            http_status=409,
        )
    return locked


@transaction.atomic
def label_merge(*, source: Label, target: Label, expected_version: int, actor) -> MergeResult:
    """Merge ``source`` and its sub-labels into ``target``, in one transaction.

    The boxes of ``source`` go to ``target`` and ``source`` is deleted. Each sub-label
    ``source.X`` goes under the target as ``target.X``: merged the same way (recursively) into
    the target's sub-label of that name when there is one, otherwise renamed, keeping its id,
    colour, hotkey and boxes.
    """
    if target.project_id != source.project_id:
        raise field_error("into_id", f"The label {target.name!r} belongs to another project.")
    if target.pk == source.pk:
        raise field_error("into_id", "A label cannot be merged into itself.")
    locked = _lock_for_merge(source, target)
    source, target = locked[source.pk], locked[target.pk]
    if source.version != expected_version:
        raise StaleVersionError(current=source, expected_version=expected_version)
    if target.name.startswith(source.name + "."):
        raise field_error("into_id", f"{source.name!r} cannot be merged into its own sub-label {target.name!r}.")
    if target.deprecated:
        raise field_error("into_id", f"{target.name!r} is deprecated; restore it before merging into it.")

    prefix = source.name + "."
    children = sorted(
        (row for row in locked.values() if row.name.startswith(prefix)), key=lambda row: (row.depth, row.name)
    )
    by_name = {row.name: row for row in locked.values() if not row.name.startswith(prefix) and row.pk != source.pk}
    plan: list[tuple[Label, str, Label | None]] = []  # (sub-label, its new name, the label it merges into)
    for child in children:
        name = target.name + child.name[len(source.name) :]
        if name == source.name or name.startswith(prefix):
            # Merging into an ancestor: ``a.b`` into ``a`` would put ``a.b.b`` in the place of ``a.b``.
            raise field_error("into_id", f"{child.name!r} would become {name!r}, under the label being merged away.")
        into = by_name.get(name)
        if into is not None and into.deprecated:
            raise field_error(
                "into_id", f"{child.name!r} would merge into {name!r}, which is deprecated; restore it first."
            )
        plan.append((child, name, into))
    _check_name_lengths((name for _, name, _ in plan), "into_id")

    # Taken now: a deleted label's instance forgets its id.
    merged_into = {source.pk: target.pk} | {child.pk: into.pk for child, _, into in plan if into is not None}
    moved_labels: list[MovedLabel] = []
    merged_labels: list[MergedLabel] = []
    moved = 0
    # Parents first: a sub-label's new parent is then in place, renamed or merged into.
    for child, name, into in plan:
        if into is None:
            name_before = child.name
            try:
                with transaction.atomic():
                    _rename_one(child, name, actor)
            except IntegrityError:  # the name was taken after the locks were taken
                raise DomainError(
                    f"The label {name!r} was created meanwhile; reload and merge again.",
                    code="label_changed",
                    http_status=409,
                ) from None
            moved_labels.append(MovedLabel(id=child.pk, name_before=name_before, name=name))
        else:
            name_before = child.name
            count = _merge_one(child, into, actor)
            moved += count
            merged_labels.append(
                MergedLabel(name_before=name_before, into_id=into.pk, into=into.name, moved_annotations=count)
            )
    moved += _merge_one(source, target, actor)
    _rewrite_suggestions(source.project_id, merged_into)
    index_sync_soon(project_id=target.project_id)
    return MergeResult(target=target, moved_annotations=moved, moved_labels=moved_labels, merged_labels=merged_labels)


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
