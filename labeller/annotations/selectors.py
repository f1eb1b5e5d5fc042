from django.db.models import QuerySet

from labeller.annotations.models import Annotation, AnnotationEvent, Label
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
