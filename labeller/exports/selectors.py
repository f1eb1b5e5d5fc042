"""Reads for exports: the export rows, and the frames and boxes an export selects.

The row queries return plain tuples (``values_list``) ordered by frame id, for
``QuerySet.iterator``: PostgreSQL streams them through a server-side cursor, so a million
boxes never sit in memory at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from labeller.annotations.models import Annotation, AnnotationStatus, Label
from labeller.exports.models import DatasetExport
from labeller.media.models import Frame, FrameStatus
from labeller.projects.models import Project
from labeller.tenants.access import scoped, scoped_get
from labeller.tenants.models import Organization


def export_list(*, organization: Organization, project: Project) -> QuerySet[DatasetExport]:
    return scoped(DatasetExport, organization).filter(project=project)


def export_get(*, organization: Organization, export_id: int) -> DatasetExport:
    return scoped_get(DatasetExport, organization, pk=export_id)


@dataclass(frozen=True)
class Selection:
    """What an export takes from its project. Empty tuples mean everything; ``label_ids``
    are already expanded to whole subtrees (see ``labels_in_subtrees``)."""

    project_id: int
    video_ids: tuple[int, ...] = ()
    shot_ids: tuple[int, ...] = ()
    label_ids: tuple[int, ...] = ()
    complete_frames_only: bool = False
    confirmed_only: bool = True


def selection_of(export: DatasetExport) -> Selection:
    return Selection(
        project_id=export.project_id,
        video_ids=tuple(export.video_ids),
        shot_ids=tuple(export.shot_ids),
        label_ids=tuple(
            label.pk for label in labels_in_subtrees(project_id=export.project_id, label_ids=export.label_ids)
        ),
        complete_frames_only=export.complete_frames_only,
        confirmed_only=export.confirmed_only,
    )


def labels_in_subtrees(*, project_id: int, label_ids: Iterable[int]) -> list[Label]:
    """The project's labels, sorted by name; with ``label_ids``, only those and their descendants."""
    labels = list(Label.objects.filter(project_id=project_id).order_by("name"))
    wanted = set(label_ids)
    chosen = {label.name for label in labels if label.pk in wanted}
    if not chosen:
        return labels
    return [
        label for label in labels if any(label.name == name or label.name.startswith(name + ".") for name in chosen)
    ]


# Frame row: (id, video_id, shot_id, index, original_name, width, height, status, image name)
FRAME_FIELDS = ("id", "video_id", "shot_id", "index", "original_name", "width", "height", "status", "image")
# Box row: (frame_id, id, label_id, x1, y1, x2, y2)
BOX_FIELDS = ("frame_id", "id", "label_id", "x1", "y1", "x2", "y2")


def _frame_filter(selection: Selection, prefix: str = "") -> Q:
    where = Q()
    if selection.video_ids or selection.shot_ids:
        where &= Q(**{f"{prefix}video_id__in": selection.video_ids}) | Q(**{f"{prefix}shot_id__in": selection.shot_ids})
    if selection.complete_frames_only:
        where &= Q(**{f"{prefix}status": FrameStatus.COMPLETE})
    return where


def selected_frames(selection: Selection) -> QuerySet:
    """Frame rows (``FRAME_FIELDS``) of the selection, by id."""
    return (
        Frame.objects.filter(_frame_filter(selection), project_id=selection.project_id)
        .order_by("id")
        .values_list(*FRAME_FIELDS)
    )


def selected_boxes(selection: Selection) -> QuerySet:
    """Box rows (``BOX_FIELDS``) of the selection, by frame then id. Rejected boxes never;
    proposals only when the selection takes more than confirmed boxes; unlabelled never."""
    statuses = [AnnotationStatus.CONFIRMED]
    if not selection.confirmed_only:
        statuses.append(AnnotationStatus.PROPOSED)
    boxes = Annotation.objects.filter(
        _frame_filter(selection, "frame__"),
        project_id=selection.project_id,
        status__in=statuses,
        label__isnull=False,
    )
    if selection.label_ids:
        boxes = boxes.filter(label_id__in=selection.label_ids)
    return boxes.order_by("frame_id", "id").values_list(*BOX_FIELDS)


def duplicate_still_names(selection: Selection) -> set[str]:
    """Names shared by more than one still image of the selection (each needs its own file name)."""
    return set(
        Frame.objects.filter(_frame_filter(selection), project_id=selection.project_id, video__isnull=True)
        .values("original_name")
        .annotate(uses=Count("id"))
        .filter(uses__gt=1)
        .values_list("original_name", flat=True)
    )


def frames_with_boxes(frames: Iterable[tuple], boxes: Iterable[tuple]) -> Iterator[tuple[tuple, list[tuple]]]:
    """Merge the two id-ordered row streams: ``(frame row, its box rows)`` for every frame row.

    A merge join in Python keeps one frame's boxes in memory at a time, where a database
    join would repeat each frame's columns on every box row.
    """
    box_iter = iter(boxes)
    pending = next(box_iter, None)
    for frame in frames:
        frame_id = frame[0]
        while pending is not None and pending[0] < frame_id:
            pending = next(box_iter, None)  # a box of a frame outside the selection: cannot happen, skipped
        own = []
        while pending is not None and pending[0] == frame_id:
            own.append(pending)
            pending = next(box_iter, None)
        yield frame, own
