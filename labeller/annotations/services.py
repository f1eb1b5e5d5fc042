"""Writes to the taxonomy and to annotations. Every annotation change appends history."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Iterable

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from labeller.annotations.models import (
    Annotation,
    AnnotationAction,
    AnnotationEvent,
    AnnotationSource,
    AnnotationStatus,
    Label,
)
from labeller.core.concurrency import StaleVersionError, save_if_version
from labeller.core.errors import DomainError, field_error
from labeller.media.models import Frame, FrameStatus
from labeller.projects.models import Project
from labeller.tenants.access import NotFoundInOrganization, RoleRequired, scoped_get
from labeller.training.hooks import learning_after_annotation_change, learning_after_frame_complete
from labeller.training.outcomes import proposal_outcomes_resolve
from labeller.tenants.models import ROLE_RANK, Organization, Role

UNSET = object()


@dataclass(frozen=True)
class Box:
    """Pixel coordinates: (x1, y1) top-left, (x2, y2) bottom-right, x2 > x1 and y2 > y1."""

    x1: float
    y1: float
    x2: float
    y2: float


# --- taxonomy -------------------------------------------------------------------------


def _ancestor_names(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _label_conflict(
    *, project_id: int, name: str | None, hotkey: str, exclude_pk: int | None = None
) -> DomainError | None:
    """The field error for a name or hotkey another label of the project already has, if any."""
    others = Label.objects.filter(project_id=project_id)
    if exclude_pk is not None:
        others = others.exclude(pk=exclude_pk)
    if name is not None and others.filter(name=name).exists():
        return field_error("name", f"The label {name!r} already exists in this project.", code="duplicate")
    if hotkey and others.filter(hotkey=hotkey).exists():
        return field_error("hotkey", f"The hotkey {hotkey!r} is already used in this project.", code="duplicate")
    return None


def _label_write_unique(write, *, project_id: int, name: str | None, hotkey: str, exclude_pk: int | None = None):
    """Run ``write`` (a label INSERT or UPDATE) in a savepoint.

    The checks before a write cannot see a label a concurrent request is adding; the unique
    constraints on (project, name) and (project, hotkey) can. Their IntegrityError becomes the
    same 400 the checks give, and the savepoint keeps the caller's transaction usable.
    """
    try:
        with transaction.atomic():
            return write()
    except IntegrityError:
        conflict = _label_conflict(project_id=project_id, name=name, hotkey=hotkey, exclude_pk=exclude_pk)
        if conflict is None:
            raise
        raise conflict from None


@transaction.atomic
def label_create(*, project: Project, name: str, color: str = "#3b82f6", hotkey: str = "") -> Label:
    """Create ``name`` and any missing ancestors (``food.dish.dessert`` implies ``food`` and ``food.dish``)."""
    name = name.strip().lower()
    conflict = _label_conflict(project_id=project.pk, name=name, hotkey=hotkey)
    if conflict is not None:
        raise conflict
    # Lock the ancestors that exist, in id order as every reshaping does: a merge, rename or
    # move of one of them holds it until it commits, and a label added under it meanwhile
    # would be left under a name that no longer exists. Waiting here, the loop below sees the
    # taxonomy as that change left it and recreates any ancestor it took away.
    ancestors = _ancestor_names(name)
    existing = set(
        Label.objects.select_for_update().filter(project=project, name__in=ancestors).order_by("pk").values_list("name", flat=True)
    )
    for ancestor in ancestors:
        if ancestor not in existing:
            Label(project=project, name=ancestor, color=color).full_clean(exclude=["project"])
            try:
                with transaction.atomic():
                    Label.objects.create(project=project, name=ancestor, color=color)
            except IntegrityError:
                # A concurrent request created the same ancestor: it is shared, not a conflict.
                if not Label.objects.filter(project=project, name=ancestor).exists():
                    raise
    label = Label(project=project, name=name, color=color, hotkey=hotkey)
    label.full_clean(exclude=["project"])
    _label_write_unique(label.save, project_id=project.pk, name=name, hotkey=hotkey)
    return label


@transaction.atomic
def label_update(*, label: Label, expected_version: int, **changes) -> Label:
    allowed = {"color", "hotkey", "deprecated"}
    unknown = set(changes) - allowed
    if unknown:
        raise DomainError(
            f"These fields cannot be changed: {', '.join(sorted(unknown))}. "
            "Renaming a label would silently relabel confirmed boxes; deprecate it and create a new one."
        )
    hotkey = changes.get("hotkey", "")
    conflict = _label_conflict(project_id=label.project_id, name=None, hotkey=hotkey, exclude_pk=label.pk)
    if conflict is not None:
        raise conflict
    candidate = Label(project_id=label.project_id, name=label.name, **{**_label_fields(label), **changes})
    candidate.full_clean(exclude=["project"], validate_unique=False, validate_constraints=False)
    return _label_write_unique(
        lambda: save_if_version(label, expected_version=expected_version, fields=changes),
        project_id=label.project_id,
        name=None,
        hotkey=hotkey,
        exclude_pk=label.pk,
    )


def _label_fields(label: Label) -> dict:
    return {"color": label.color, "hotkey": label.hotkey, "deprecated": label.deprecated}


@transaction.atomic
def label_delete(*, label: Label) -> None:
    if Annotation.objects.filter(label=label).exists() or Label.objects.filter(
        project=label.project_id, name__startswith=label.name + "."
    ).exists():
        raise DomainError(
            f"The label {label.name!r} is in use (boxes or child labels); deprecate it instead.",
            code="label_in_use",
            http_status=409,
        )
    label.delete()


# --- annotations ----------------------------------------------------------------------


def annotation_snapshot(annotation: Annotation) -> dict:
    """The state recorded in history: enough to show or restore the box."""
    return {
        "frame_id": annotation.frame_id,
        "label_id": annotation.label_id,
        "box": [annotation.x1, annotation.y1, annotation.x2, annotation.y2],
        "status": annotation.status,
        "source": annotation.source,
        "score": annotation.score,
        "version": annotation.version,
    }


def _record(annotation: Annotation, *, actor, action: AnnotationAction, before: dict | None, after: dict | None) -> None:
    AnnotationEvent.objects.create(
        project_id=annotation.project_id,
        annotation_id=annotation.pk,
        frame_id=annotation.frame_id,
        actor=actor,
        action=action,
        before=before,
        after=after,
    )


def _validate_box(frame: Frame, box: Box) -> None:
    if not (box.x2 > box.x1):
        raise field_error("box", f"x2 ({box.x2}) must be greater than x1 ({box.x1}): a box needs a positive width.")
    if not (box.y2 > box.y1):
        raise field_error("box", f"y2 ({box.y2}) must be greater than y1 ({box.y1}): a box needs a positive height.")
    if box.x1 < 0 or box.y1 < 0 or box.x2 > frame.width or box.y2 > frame.height:
        raise field_error(
            "box",
            f"[{box.x1}, {box.y1}, {box.x2}, {box.y2}] lies outside the {frame.width}x{frame.height} frame.",
        )


def _validate_label(frame: Frame, label: Label | None) -> None:
    if label is None:
        return
    if label.project_id != frame.project_id:
        raise field_error("label_id", f"The label {label.name!r} belongs to another project.")
    if label.deprecated:
        raise field_error("label_id", f"The label {label.name!r} is deprecated; pick another.")
    if label.pk not in labels_locked_for_use([label.pk]):
        raise DomainError(
            f"The label {label.name!r} was merged or deleted meanwhile; pick another.", code="label_gone", http_status=409
        )


def labels_locked_for_use(label_ids: Iterable[int]) -> set[int]:
    """Hold the labels a box write is about to use until it commits, and say which still exist.

    A label merged (or deleted) at the same moment is otherwise gone by the time the box's
    foreign key is checked, at commit, and the request fails there with no clean answer. On
    PostgreSQL the lock is FOR KEY SHARE: it waits for a merge holding the label, yet boxes
    that use one label still go in side by side. Locks are taken in id order, as
    ``label_merge`` takes the two subtrees it reshapes, so a write using several labels never
    deadlocks with it.
    """
    ids = sorted(set(label_ids))
    if not ids:
        return set()
    if connection.vendor != "postgresql":  # SQLite runs one writer at a time: nothing to race
        return set(Label.objects.filter(pk__in=ids).values_list("pk", flat=True))
    table = connection.ops.quote_name(Label._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {table} WHERE id = ANY(%s) ORDER BY id FOR KEY SHARE", [ids])
        return {row[0] for row in cursor.fetchall()}


def _lock_open_frame(frame_id: int) -> Frame:
    """Lock the frame's row and refuse a complete frame.

    A complete frame says every object on it is boxed, and its leftover proposals already
    became hard negatives: a box added or changed afterwards would contradict that silently.
    The lock orders a box write against ``frame_complete`` (which also locks the frame first):
    either the box lands before the frame is completed, or the write sees it complete.
    """
    frame = Frame.objects.select_for_update().get(pk=frame_id)
    if frame.status == FrameStatus.COMPLETE:
        raise DomainError(
            f"Frame {frame.pk} is complete, so its boxes cannot change: a reviewer reopens it first "
            f"(POST frames/{frame.pk}/reopen).",
            code="frame_complete",
            http_status=409,
        )
    return frame


def _check_may_edit(annotation: Annotation, *, actor, actor_role: Role) -> None:
    """Annotators change model proposals and their own boxes; others' work needs a reviewer."""
    others_work = annotation.source in (AnnotationSource.HUMAN, AnnotationSource.IMPORT) and annotation.author_id not in (
        None,
        actor.pk,
    )
    if others_work and ROLE_RANK[Role(actor_role)] < ROLE_RANK[Role.REVIEWER]:
        raise RoleRequired(Role.REVIEWER)


@transaction.atomic
def annotation_create(
    *,
    frame: Frame,
    actor,
    box: Box,
    label: Label | None,
    status: AnnotationStatus = AnnotationStatus.CONFIRMED,
    source: AnnotationSource = AnnotationSource.HUMAN,
    score: float | None = None,
    suggestions: Iterable[dict] = (),
    model_version: str = "",
) -> Annotation:
    frame = _lock_open_frame(frame.pk)
    _validate_box(frame, box)
    _validate_label(frame, label)
    if status == AnnotationStatus.CONFIRMED and label is None:
        raise field_error("label_id", "A confirmed box needs a label.")
    annotation = Annotation.objects.create(
        project_id=frame.project_id,
        frame=frame,
        label=label,
        x1=box.x1,
        y1=box.y1,
        x2=box.x2,
        y2=box.y2,
        status=status,
        source=source,
        score=score,
        suggestions=list(suggestions),
        model_version=model_version,
        author=actor,
    )
    _record(annotation, actor=actor, action=AnnotationAction.CREATED, before=None, after=annotation_snapshot(annotation))
    if status == AnnotationStatus.CONFIRMED:
        learning_after_annotation_change(project_id=annotation.project_id)
    return annotation


def _change(
    annotation: Annotation, *, actor, expected_version: int, action: AnnotationAction, fields: dict, learn: bool = True
) -> Annotation:
    before = annotation_snapshot(annotation)
    annotation = save_if_version(annotation, expected_version=expected_version, fields=fields)
    _record(annotation, actor=actor, action=action, before=before, after=annotation_snapshot(annotation))
    if learn:
        learning_after_annotation_change(project_id=annotation.project_id)
    return annotation


@transaction.atomic
def annotation_update(
    *, annotation: Annotation, actor, actor_role: Role, expected_version: int, box: Box | None = None, label=UNSET
) -> Annotation:
    _check_may_edit(annotation, actor=actor, actor_role=actor_role)
    _lock_open_frame(annotation.frame_id)
    fields: dict = {}
    if box is not None:
        _validate_box(annotation.frame, box)
        fields.update(x1=box.x1, y1=box.y1, x2=box.x2, y2=box.y2)
    if label is not UNSET:
        _validate_label(annotation.frame, label)
        if label is None and annotation.status == AnnotationStatus.CONFIRMED:
            raise field_error("label_id", "A confirmed box needs a label.")
        fields["label"] = label
    if not fields:
        raise DomainError("Nothing to change: send box and/or label_id.")
    if annotation.source != AnnotationSource.HUMAN and annotation.status == AnnotationStatus.PROPOSED:
        # A person fixing a proposal makes it their box: it now counts as human work.
        fields.update(status=AnnotationStatus.CONFIRMED, source=AnnotationSource.HUMAN, author=actor)
        if fields.get("label", annotation.label) is None:
            raise field_error("label_id", "Pick a label for the box you fixed.")
    return _change(annotation, actor=actor, expected_version=expected_version, action=AnnotationAction.UPDATED, fields=fields)


@transaction.atomic
def annotation_confirm(
    *, annotation: Annotation, actor, actor_role: Role, expected_version: int, label=UNSET
) -> Annotation:
    _check_may_edit(annotation, actor=actor, actor_role=actor_role)
    _lock_open_frame(annotation.frame_id)
    fields: dict = {"status": AnnotationStatus.CONFIRMED}
    if label is not UNSET:
        _validate_label(annotation.frame, label)
        fields["label"] = label
    if fields.get("label", annotation.label) is None:
        raise field_error("label_id", "A confirmed box needs a label: pick one of the suggestions.")
    return _change(annotation, actor=actor, expected_version=expected_version, action=AnnotationAction.CONFIRMED, fields=fields)


@transaction.atomic
def annotation_reject(*, annotation: Annotation, actor, actor_role: Role, expected_version: int) -> Annotation:
    """A rejected proposal stays as a hard negative for the learning loop."""
    _check_may_edit(annotation, actor=actor, actor_role=actor_role)
    return _change(
        annotation,
        actor=actor,
        expected_version=expected_version,
        action=AnnotationAction.REJECTED,
        fields={"status": AnnotationStatus.REJECTED},
    )


@transaction.atomic
def annotation_delete(*, annotation: Annotation, actor, actor_role: Role, expected_version: int) -> None:
    _check_may_edit(annotation, actor=actor, actor_role=actor_role)
    locked = Annotation.objects.select_for_update().get(pk=annotation.pk)
    if locked.version != expected_version:
        raise StaleVersionError(current=locked, expected_version=expected_version)
    _record(locked, actor=actor, action=AnnotationAction.DELETED, before=annotation_snapshot(locked), after=None)
    locked.delete()
    learning_after_annotation_change(project_id=annotation.project_id)


# --- many boxes of one frame in one request --------------------------------------------


class BoxAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    CONFIRM = "confirm"


@dataclass(frozen=True)
class BoxChange:
    """One box of a bulk request: a new box, or a change to one of the frame's boxes at ``version``."""

    action: BoxAction
    annotation_id: int | None = None
    version: int | None = None
    box: Box | None = None
    label: object = UNSET  # a Label, None (no label) or UNSET (leave as it is)


@dataclass(frozen=True)
class BoxOutcome:
    """What became of one box: ``status`` 201/200 with ``annotation``, or a 4xx with the reason."""

    status: int
    annotation: Annotation | None = None
    code: str = ""
    detail: str = ""
    errors: dict | None = None
    current: Annotation | None = None  # with a 409: the box as it is now

    @property
    def saved(self) -> bool:
        return self.status < 400


NOT_SAVED = BoxOutcome(
    status=424, code="rolled_back", detail="Not saved: another box of this all-or-nothing request was refused."
)


def _box_change_apply(
    *, organization: Organization, frame: Frame, actor, actor_role: Role, change: BoxChange
) -> BoxOutcome:
    if change.action == BoxAction.CREATE:
        label = None if change.label is UNSET else change.label
        annotation = annotation_create(
            frame=frame,
            actor=actor,
            box=change.box,
            label=label,
            status=AnnotationStatus.CONFIRMED if label is not None else AnnotationStatus.PROPOSED,
        )
        return BoxOutcome(status=201, annotation=annotation)
    # Only the frame's own boxes: another frame's (or organisation's) id reads as missing.
    annotation = scoped_get(
        Annotation.objects.select_related("frame"), organization, pk=change.annotation_id, frame_id=frame.pk
    )
    if change.action == BoxAction.UPDATE:
        annotation = annotation_update(
            annotation=annotation,
            actor=actor,
            actor_role=actor_role,
            expected_version=change.version,
            box=change.box,
            label=change.label,
        )
    else:
        annotation = annotation_confirm(
            annotation=annotation,
            actor=actor,
            actor_role=actor_role,
            expected_version=change.version,
            label=change.label,
        )
    return BoxOutcome(status=200, annotation=annotation)


@transaction.atomic
def annotation_bulk_apply(
    *,
    organization: Organization,
    frame: Frame,
    actor,
    actor_role: Role,
    changes: list[BoxChange],
    all_or_nothing: bool = False,
) -> list[BoxOutcome]:
    """Create, update or confirm many boxes of ``frame`` in one transaction, one outcome per box.

    Each box goes in its own savepoint, so a refused box (stale version, box off the frame,
    someone else's work) leaves the others saved; with ``all_or_nothing`` any refusal undoes
    them all and they read as 424. A complete frame refuses the whole request (409).
    """
    _lock_open_frame(frame.pk)
    labels_locked_for_use(change.label.pk for change in changes if isinstance(change.label, Label))
    outcomes: list[BoxOutcome] = []
    for change in changes:
        try:
            with transaction.atomic():
                outcome = _box_change_apply(
                    organization=organization, frame=frame, actor=actor, actor_role=actor_role, change=change
                )
            outcomes.append(outcome)
        except StaleVersionError as exc:
            outcomes.append(BoxOutcome(status=409, code="stale_version", detail=str(exc), current=exc.current))
        except NotFoundInOrganization:
            detail = f"Frame {frame.pk} has no box {change.annotation_id}."
            outcomes.append(BoxOutcome(status=404, code="not_found", detail=detail))
        except RoleRequired as exc:
            outcomes.append(BoxOutcome(status=403, code="permission_denied", detail=str(exc)))
        except DomainError as exc:
            errors = exc.extra.get("errors")
            outcomes.append(BoxOutcome(status=exc.http_status, code=exc.code, detail=exc.message, errors=errors))
    if all_or_nothing and not all(outcome.saved for outcome in outcomes):
        transaction.set_rollback(True)
        outcomes = [outcome if not outcome.saved else NOT_SAVED for outcome in outcomes]
    return outcomes


# --- frames ---------------------------------------------------------------------------


@transaction.atomic
def frame_complete(*, frame: Frame, actor, actor_role: Role) -> Frame:
    """Mark the frame fully labelled.

    A complete frame says every object on it is boxed, so the proposals nobody accepted
    are false positives: they are rejected here and become hard negatives. That judges the
    work of whoever holds the frame, so completing a frame you do not hold needs a reviewer.
    """
    frame = Frame.objects.select_for_update().get(pk=frame.pk)
    if frame.assigned_to_id != actor.pk and ROLE_RANK[Role(actor_role)] < ROLE_RANK[Role.REVIEWER]:
        raise RoleRequired(Role.REVIEWER)
    # What became of each proposal calibrates the next ones: decide it before the leftovers
    # are rejected below.
    proposal_outcomes_resolve(frame=frame)
    for proposal in Annotation.objects.filter(frame=frame, status=AnnotationStatus.PROPOSED):
        _change(
            proposal,
            actor=actor,
            expected_version=proposal.version,
            action=AnnotationAction.REJECTED,
            fields={"status": AnnotationStatus.REJECTED},
            learn=False,  # the completion below syncs the index once for the whole frame
        )
    Frame.objects.filter(pk=frame.pk).update(
        status=FrameStatus.COMPLETE,
        completed_by=actor,
        completed_at=timezone.now(),
        assigned_to=None,
        assigned_at=None,
        version=frame.version + 1,
    )
    frame.refresh_from_db()
    learning_after_frame_complete(project_id=frame.project_id, frame_id=frame.pk)
    return frame



@transaction.atomic
def frame_reopen(*, frame: Frame) -> Frame:
    """Take a complete frame back to work (a reviewer's call): its boxes may change again.

    It goes back to the queue, held by nobody; what completing it decided (rejected
    proposals, calibration outcomes) stays until it is completed again.
    """
    frame = Frame.objects.select_for_update().get(pk=frame.pk)
    if frame.status != FrameStatus.COMPLETE:
        raise DomainError(
            f"Frame {frame.pk} is not complete, so there is nothing to reopen.", code="not_complete", http_status=409
        )
    Frame.objects.filter(pk=frame.pk).update(
        status=FrameStatus.IN_PROGRESS,
        completed_by=None,
        completed_at=None,
        assigned_to=None,
        assigned_at=None,
        version=frame.version + 1,
    )
    frame.refresh_from_db()
    return frame
