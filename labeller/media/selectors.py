from datetime import timedelta

from django.db.models import Case, Count, Exists, F, FloatField, IntegerField, OuterRef, Q, QuerySet, Value, When
from django.utils import timezone

from labeller.media.models import Frame, FrameStatus, Shot, Upload, UploadStatus, Video
from labeller.projects.models import Project
from labeller.tenants.access import scoped, scoped_get
from labeller.tenants.models import Organization

# A frame handed to an annotator stays theirs this long, so two people don't label it twice.
ASSIGNMENT_LEASE = timedelta(minutes=30)
# Best first by rank = priority + a frame's place among keyframes, then video order. First the
# frames that open a shot: a shot's first keyframe (a still image opens its own), in video
# order, so every look is seen before any is labelled twice. Then the shots' other keyframes
# (they span each shot's looks; the frames between them are then followed from both sides).
# Then the other frames, those the models are least sure of first (the learning loop adds its
# uncertainty about a frame, in [0, 1), to the priority of frames that are not keyframes); a
# skip takes SKIP_PENALTY off, which sinks a frame below every frame not skipped.
OPENS_SHOT_RANK = 2.0
KEYFRAME_RANK = 1.0
SKIP_PENALTY = 3.0
QUEUE_ORDER = ("-queue_rank", "video_id", "index", "id")


def _opens_shot() -> Q:
    earlier_keyframe = Frame.objects.filter(shot_id=OuterRef("shot_id"), is_keyframe=True, index__lt=OuterRef("index"))
    return Q(is_keyframe=True) & ~Exists(earlier_keyframe)


def in_queue_order(frames: QuerySet[Frame]) -> QuerySet[Frame]:
    """``frames`` ordered as the queue hands them out (see QUEUE_ORDER)."""
    rank = F("priority") + Case(
        When(_opens_shot(), then=Value(OPENS_SHOT_RANK)),
        When(is_keyframe=True, then=Value(KEYFRAME_RANK)),
        default=Value(0.0),
        output_field=FloatField(),
    )
    return frames.annotate(queue_rank=rank).order_by(*QUEUE_ORDER)


def _with_counts(queryset: QuerySet[Video]) -> QuerySet[Video]:
    return queryset.annotate(
        shot_count=Count("shots", distinct=True),
        keyframe_count=Count("frames", filter=Q(frames__is_keyframe=True), distinct=True),
    )


def video_list(*, organization: Organization, project: Project) -> QuerySet[Video]:
    return _with_counts(scoped(Video, organization).filter(project=project))


def video_get(*, organization: Organization, video_id: int) -> Video:
    return scoped_get(_with_counts(Video.objects.select_related("project")), organization, pk=video_id)


def shot_list(*, organization: Organization, video: Video) -> QuerySet[Shot]:
    return scoped(Shot, organization).filter(video=video)


def frame_list(*, organization: Organization, project: Project) -> QuerySet[Frame]:
    return scoped(Frame, organization).filter(project=project)


def frame_get(*, organization: Organization, frame_id: int) -> Frame:
    return scoped_get(Frame.objects.select_related("project", "video", "shot"), organization, pk=frame_id)


def frame_queue(*, organization: Organization, project: Project, user) -> QuerySet[Frame]:
    """Frames the user should label next, best first.

    Their own unfinished assignment comes first (resume), then QUEUE_ORDER. Frames another
    person holds under a live lease are left out.
    """
    lease_start = timezone.now() - ASSIGNMENT_LEASE
    frames = (
        frame_list(organization=organization, project=project)
        .exclude(status=FrameStatus.COMPLETE)
        .filter(Q(assigned_to__isnull=True) | Q(assigned_to=user) | Q(assigned_at__lt=lease_start))
        .annotate(mine=Case(When(assigned_to=user, then=Value(1)), default=Value(0), output_field=IntegerField()))
    )
    return in_queue_order(frames).order_by("-mine", *QUEUE_ORDER)


def upload_list_open(*, organization: Organization, project: Project) -> QuerySet[Upload]:
    """Uploads still receiving bytes: a client reloaded mid-upload resumes one of these."""
    return scoped(Upload, organization).filter(project=project, status=UploadStatus.OPEN)
