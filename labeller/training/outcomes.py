"""What became of each proposal: decided when its frame is completed.

Kept apart from the proposing side so the annotation services can call it without
importing the ML.
"""

from __future__ import annotations

import numpy as np
from django.utils import timezone

from labeller.annotations.models import Annotation, AnnotationStatus
from labeller.media.models import Frame
from labeller.training.models import ProposalOutcome
from proposals.boxes import iou_matrix

# A proposal is useful at IoU 0.5 with the person's box, and its box is right at 0.7.
MATCH_IOU = 0.5
BOX_RIGHT_IOU = 0.7


def box_of(annotation: Annotation) -> np.ndarray:
    """float32 [1, 4] xyxy."""
    return np.array([[annotation.x1, annotation.y1, annotation.x2, annotation.y2]], dtype=np.float32)


def proposal_outcomes_resolve(*, frame: Frame) -> int:
    """Decide the frame's pending outcomes from its final boxes; call when it is completed,
    before leftover proposals are rejected. Returns how many were decided."""
    pending = list(ProposalOutcome.objects.filter(frame_id=frame.pk, decided_at__isnull=True))
    if not pending:
        return 0
    annotations = {a.pk: a for a in Annotation.objects.filter(frame_id=frame.pk)}
    confirmed = [a for a in annotations.values() if a.status == AnnotationStatus.CONFIRMED]
    claimed: set[int] = set()
    for outcome in (o for o in pending if o.shown):
        annotation = annotations.get(outcome.annotation_id)
        outcome.useful = annotation is not None and annotation.status == AnnotationStatus.CONFIRMED
        if outcome.useful:
            claimed.add(annotation.pk)
            outcome.label_right = annotation.label_id == outcome.label_id
            outcome.box_right = float(iou_matrix(np.array([outcome.box], np.float32), box_of(annotation))[0, 0]) >= BOX_RIGHT_IOU
    # A hidden proposal would have been useful if it finds a confirmed box nobody else took
    # (one to one, best score first: a duplicate would have been rejected).
    hidden = sorted((o for o in pending if not o.shown), key=lambda o: -o.score)
    free = [a for a in confirmed if a.pk not in claimed]
    for outcome in hidden:
        outcome.useful = False
        if free:
            overlaps = iou_matrix(np.array([outcome.box], np.float32), np.concatenate([box_of(a) for a in free]))[0]
            best = int(overlaps.argmax())
            if overlaps[best] >= MATCH_IOU:
                match = free.pop(best)
                outcome.useful = True
                outcome.label_right = match.label_id == outcome.label_id
                outcome.box_right = float(overlaps[best]) >= BOX_RIGHT_IOU
    now = timezone.now()
    for outcome in pending:
        outcome.decided_at = now
    ProposalOutcome.objects.bulk_update(pending, ["useful", "label_right", "box_right", "decided_at"])
    return len(pending)
