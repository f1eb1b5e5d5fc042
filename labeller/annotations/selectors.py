from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone

from labeller.annotations.models import Annotation, AnnotationAction, AnnotationEvent, AnnotationStatus, Label
from labeller.projects.models import Project
from labeller.tenants.access import scoped, scoped_get
from labeller.tenants.models import Organization


def label_list(*, organization: Organization, project: Project) -> QuerySet[Label]:
    return scoped(Label, organization).filter(project=project)


def label_get(*, organization: Organization, label_id: int) -> Label:
    return scoped_get(Label, organization, pk=label_id)


def annotation_list(*, organization: Organization, frame_id: int | None = None, project: Project | None = None) -> QuerySet[Annotation]:
    queryset = scoped(Annotation, organization).select_related("label")
    if frame_id is not None:
        queryset = queryset.filter(frame_id=frame_id)
    if project is not None:
        queryset = queryset.filter(project=project)
    return queryset


def annotation_get(*, organization: Organization, annotation_id: int, for_update: bool = False) -> Annotation:
    queryset = Annotation.objects.select_related("frame", "label")
    if for_update:
        queryset = queryset.select_for_update(of=("self",))
    return scoped_get(queryset, organization, pk=annotation_id)


def annotation_history(*, organization: Organization, annotation_id: int) -> QuerySet[AnnotationEvent]:
    return scoped(AnnotationEvent, organization).filter(annotation_id=annotation_id).select_related("actor")


@dataclass(frozen=True)
class AnnotatorDay:
    boxes_today: int
    frames_today: int
    proposals_accepted: int
    proposals_rejected: int

    @property
    def acceptance_rate(self) -> float | None:
        decided = self.proposals_accepted + self.proposals_rejected
        return self.proposals_accepted / decided if decided else None


def annotator_day(*, organization: Organization, project: Project, user) -> AnnotatorDay:
    """What ``user`` did in ``project`` since midnight (server time): the feedback panel."""
    from labeller.media.models import Frame

    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    events = scoped(AnnotationEvent, organization).filter(project=project, actor=user, created_at__gte=midnight)
    return AnnotatorDay(
        boxes_today=events.filter(action=AnnotationAction.CREATED).count()
        + events.filter(action=AnnotationAction.CONFIRMED).count(),
        frames_today=scoped(Frame, organization).filter(project=project, completed_by=user, completed_at__gte=midnight).count(),
        proposals_accepted=events.filter(action=AnnotationAction.CONFIRMED, before__status=AnnotationStatus.PROPOSED).count(),
        proposals_rejected=events.filter(action=AnnotationAction.REJECTED).count(),
    )
