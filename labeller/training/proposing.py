"""The learning loop's proposing side: label suggestions for hand-drawn boxes and the
region proposals of each frame, built from the project's index (see ``services``)."""

from __future__ import annotations

import numpy as np
from django.db import transaction

from labeller import ml
from labeller.annotations.models import Annotation, AnnotationAction, AnnotationEvent, AnnotationSource, AnnotationStatus
from labeller.annotations.services import annotation_snapshot
from labeller.media.files import read_frame_rgb
from labeller.media.models import Frame, FrameStatus
from labeller.media.selectors import QUEUE_ORDER
from labeller.training.services import index_load, index_state, index_state_peek

MODEL_SOURCES = (AnnotationSource.MODEL, AnnotationSource.PROPAGATION)
# Frames whose proposals are refreshed after the index changes, best queue position first.
REFRESH_FRAMES_AFTER_SYNC = 20
# Following frames of a shot re-proposed when a frame is completed (propagation targets).
REFRESH_FRAMES_IN_SHOT = 5
PROPOSALS_PER_FRAME = 20
# Before anything is confirmed, proposals are class-agnostic guesses: show only the few
# best, so an annotator's first frames are not buried under boxes labelled "no label? 5%".
PROPOSALS_PER_FRAME_COLD_START = 5


# --- label suggestions for a box drawn by hand ------------------------------------------


def label_suggestions(*, frame: Frame, box: tuple[float, float, float, float], top: int = 3):
    """The model's top labels for ``box`` on ``frame``: (suggestions, index state)."""
    state = index_state_peek(frame.project)
    if state.pk is None or state.size == 0:
        return [], state
    stored = index_load(state)
    vectors = ml.embed_crops(read_frame_rgb(frame), np.array([box], dtype=np.float32))
    return list(ml.suggest_labels(stored, vectors, top=top)[0]), state


# --- proposals --------------------------------------------------------------------------


def _neighbours(frame: Frame, limit: int = 2) -> list[ml.Neighbour]:
    """The nearest frames of the same shot that have confirmed boxes."""
    if frame.shot_id is None:
        return []
    confirmed = Annotation.objects.filter(status=AnnotationStatus.CONFIRMED, label__isnull=False)
    candidates = (
        Frame.objects.filter(shot_id=frame.shot_id, annotations__in=confirmed)
        .exclude(pk=frame.pk)
        .distinct()
        .only("pk", "index", "image")
    )
    nearest = sorted(candidates, key=lambda f: abs(f.index - frame.index))[:limit]
    neighbours = []
    for other in nearest:
        rows = list(confirmed.filter(frame=other).values_list("x1", "y1", "x2", "y2", "label_id"))
        neighbours.append(
            ml.Neighbour(
                rgb=read_frame_rgb(other),
                boxes=np.array([r[:4] for r in rows], dtype=np.float32),
                label_ids=np.array([r[4] for r in rows], dtype=np.int64),
            )
        )
    return neighbours


def proposals_refresh(*, frame_id: int) -> int:
    """Replace the frame's open model proposals with fresh ones; never touch human work.

    Returns how many proposals the frame now has. A complete frame is left alone.
    """
    frame = Frame.objects.select_related("project").filter(pk=frame_id).first()
    if frame is None or frame.status == FrameStatus.COMPLETE:
        return 0
    state = index_state(frame.project)
    stored = index_load(state)
    kept = Annotation.objects.filter(frame=frame).exclude(status=AnnotationStatus.PROPOSED, source__in=MODEL_SOURCES)
    avoid = np.array(list(kept.values_list("x1", "y1", "x2", "y2")), dtype=np.float32).reshape(-1, 4)
    neighbours = _neighbours(frame)
    top_k = PROPOSALS_PER_FRAME if len(stored.labels) or neighbours else PROPOSALS_PER_FRAME_COLD_START
    proposals = ml.propose(read_frame_rgb(frame), neighbours=neighbours, stored=stored, avoid_boxes=avoid, top_k=top_k)
    model_version = f"{state.feature_key}@{state.version}"
    with transaction.atomic():
        locked = Frame.objects.select_for_update().get(pk=frame.pk)
        if locked.status == FrameStatus.COMPLETE:
            return 0
        old = list(Annotation.objects.filter(frame=locked, status=AnnotationStatus.PROPOSED, source__in=MODEL_SOURCES))
        events = [
            AnnotationEvent(
                project_id=a.project_id, annotation_id=a.pk, frame_id=a.frame_id, action=AnnotationAction.DELETED,
                before=annotation_snapshot(a), after=None,
            )
            for a in old
        ]
        Annotation.objects.filter(pk__in=[a.pk for a in old]).delete()
        created = [
            Annotation.objects.create(
                project_id=locked.project_id,
                frame=locked,
                label_id=proposal.suggestions[0].label_id if proposal.suggestions else None,
                x1=proposal.box[0], y1=proposal.box[1], x2=proposal.box[2], y2=proposal.box[3],
                status=AnnotationStatus.PROPOSED,
                source=AnnotationSource.PROPAGATION if proposal.source == "propagation" else AnnotationSource.MODEL,
                score=proposal.score,
                suggestions=[{"label_id": s.label_id, "score": s.score} for s in proposal.suggestions],
                model_version=model_version,
            )
            for proposal in proposals
            if proposal.box[2] > proposal.box[0] and proposal.box[3] > proposal.box[1]
        ]
        events += [
            AnnotationEvent(
                project_id=a.project_id, annotation_id=a.pk, frame_id=a.frame_id, action=AnnotationAction.CREATED,
                before=None, after=annotation_snapshot(a),
            )
            for a in created
        ]
        AnnotationEvent.objects.bulk_create(events)
    return len(created)


def frames_to_refresh_after_sync(*, project_id: int, limit: int = REFRESH_FRAMES_AFTER_SYNC) -> list[int]:
    """The frames annotators will open next: their proposals should reflect the new index."""
    return list(
        Frame.objects.filter(project_id=project_id)
        .exclude(status=FrameStatus.COMPLETE)
        .order_by(*QUEUE_ORDER)
        .values_list("pk", flat=True)[:limit]
    )


def frames_after_in_shot(*, frame_id: int, limit: int = REFRESH_FRAMES_IN_SHOT) -> list[int]:
    frame = Frame.objects.filter(pk=frame_id).first()
    if frame is None or frame.shot_id is None:
        return []
    following = Frame.objects.filter(shot_id=frame.shot_id).exclude(status=FrameStatus.COMPLETE)
    after = list(following.filter(index__gt=frame.index).order_by("index").values_list("pk", flat=True)[:limit])
    before = list(following.filter(index__lt=frame.index).order_by("-index").values_list("pk", flat=True)[:limit])
    return after + before
