from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from labeller.annotations.models import (
    Annotation,
    AnnotationAction,
    AnnotationEvent,
    AnnotationStatus,
    ImportJob,
    Label,
    LabelEvent,
)
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


# --- activity and progress: what the admin's console charts ------------------------------


def _accepted_proposals(events: QuerySet[AnnotationEvent]) -> QuerySet[AnnotationEvent]:
    """Proposals a person kept: confirmed as they were, or fixed (which confirms them)."""
    return events.filter(
        action__in=[AnnotationAction.CONFIRMED, AnnotationAction.UPDATED],
        before__status=AnnotationStatus.PROPOSED,
        after__status=AnnotationStatus.CONFIRMED,
    )


def _rejected_proposals(events: QuerySet[AnnotationEvent]) -> QuerySet[AnnotationEvent]:
    """Proposals rejected by hand, or left over when their frame was completed."""
    return events.filter(action=AnnotationAction.REJECTED, before__status=AnnotationStatus.PROPOSED)


def _days(since: date, until: date) -> list[date]:
    return [since + timedelta(days=n) for n in range((until - since).days + 1)]


@dataclass(frozen=True)
class ActivityDay:
    day: date
    boxes: int
    frames: int


@dataclass(frozen=True)
class MemberActivity:
    user_id: int
    days: list[ActivityDay]  # oldest first, one per day of the window, today last
    proposals_accepted: int
    proposals_rejected: int

    @property
    def acceptance_rate(self) -> float | None:
        decided = self.proposals_accepted + self.proposals_rejected
        return self.proposals_accepted / decided if decided else None


def member_activity(*, organization: Organization, user_ids: list[int], days: int = 14) -> dict[int, MemberActivity]:
    """Per member, over the last ``days`` days (server time) in all the organisation's projects:
    boxes drawn or accepted and frames completed per day, and proposals kept against rejected."""
    from labeller.media.models import Frame

    today = timezone.localdate()
    since = today - timedelta(days=days - 1)
    start = timezone.make_aware(datetime.combine(since, time.min))
    events = scoped(AnnotationEvent, organization).filter(actor_id__in=user_ids, created_at__gte=start)
    boxes = Counter(
        {
            (row["actor_id"], row["day"]): row["n"]
            for row in events.filter(action__in=[AnnotationAction.CREATED, AnnotationAction.CONFIRMED])
            .annotate(day=TruncDate("created_at"))
            .values("actor_id", "day")
            .annotate(n=Count("id"))
        }
    )
    frames = Counter(
        {
            (row["completed_by_id"], row["day"]): row["n"]
            for row in scoped(Frame, organization)
            .filter(completed_by_id__in=user_ids, completed_at__gte=start)
            .annotate(day=TruncDate("completed_at"))
            .values("completed_by_id", "day")
            .annotate(n=Count("id"))
        }
    )
    accepted = Counter(dict(_accepted_proposals(events).values_list("actor_id").annotate(n=Count("id"))))
    rejected = Counter(dict(_rejected_proposals(events).values_list("actor_id").annotate(n=Count("id"))))
    return {
        user_id: MemberActivity(
            user_id=user_id,
            days=[ActivityDay(day=d, boxes=boxes[user_id, d], frames=frames[user_id, d]) for d in _days(since, today)],
            proposals_accepted=accepted[user_id],
            proposals_rejected=rejected[user_id],
        )
        for user_id in user_ids
    }


def taxonomy_document(*, organization: Organization, project: Project) -> dict:
    """The project's taxonomy as the file ``taxonomy_import`` reads back."""
    labels = label_list(organization=organization, project=project).order_by("name")
    return {
        "format": "labeller-taxonomy",
        "labels": [
            {"name": label.name, "color": label.color, "hotkey": label.hotkey, "deprecated": label.deprecated}
            for label in labels
        ],
    }


def label_history(*, organization: Organization, project: Project) -> QuerySet[LabelEvent]:
    return scoped(LabelEvent, organization).filter(project=project).select_related("actor")


@dataclass(frozen=True)
class FrameProgress:
    video_id: int | None  # None: the project's still images
    name: str
    complete: int
    total: int


@dataclass(frozen=True)
class LabelCount:
    label_id: int
    name: str
    confirmed: int


@dataclass(frozen=True)
class ProposalDay:
    day: date
    accepted: int
    rejected: int


@dataclass(frozen=True)
class ProjectProgress:
    complete: int
    total: int
    videos: list[FrameProgress]
    labels: list[LabelCount]  # most confirmed boxes first, unused labels last: the long tail
    proposals: list[ProposalDay]  # oldest first, one per day of the window


def project_progress(*, organization: Organization, project: Project, days: int = 30) -> ProjectProgress:
    from labeller.media.models import Frame, FrameStatus, Video

    frames = scoped(Frame, organization).filter(project=project)
    counts = frames.values("video_id").annotate(
        total=Count("id"), complete=Count("id", filter=Q(status=FrameStatus.COMPLETE))
    )
    per_video = {row["video_id"]: row for row in counts}
    none = {"complete": 0, "total": 0}
    videos = []
    for video in scoped(Video, organization).filter(project=project).order_by("pk"):
        row = per_video.get(video.pk, none)
        videos.append(FrameProgress(video.pk, video.original_name, row["complete"], row["total"]))
    if None in per_video:
        videos.append(FrameProgress(None, "Still images", per_video[None]["complete"], per_video[None]["total"]))
    confirmed = dict(
        scoped(Annotation, organization)
        .filter(project=project, status=AnnotationStatus.CONFIRMED)
        .values_list("label_id")
        .annotate(n=Count("id"))
    )
    labels = sorted(
        (
            LabelCount(label.pk, label.name, confirmed.get(label.pk, 0))
            for label in label_list(organization=organization, project=project)
        ),
        key=lambda count: (-count.confirmed, count.name),
    )
    today = timezone.localdate()
    since = today - timedelta(days=days - 1)
    events = scoped(AnnotationEvent, organization).filter(
        project=project, created_at__gte=timezone.make_aware(datetime.combine(since, time.min))
    )
    per_day = {"day": TruncDate("created_at")}
    accepted = dict(_accepted_proposals(events).annotate(**per_day).values_list("day").annotate(n=Count("id")))
    rejected = dict(_rejected_proposals(events).annotate(**per_day).values_list("day").annotate(n=Count("id")))
    return ProjectProgress(
        complete=sum(row["complete"] for row in per_video.values()),
        total=sum(row["total"] for row in per_video.values()),
        videos=videos,
        labels=labels,
        proposals=[ProposalDay(d, accepted.get(d, 0), rejected.get(d, 0)) for d in _days(since, today)],
    )


def import_job_get(*, organization: Organization, import_id: int) -> ImportJob:
    return scoped_get(ImportJob, organization, pk=import_id)
