"""The project's progress in numbers: frames complete per video, boxes per label, proposals kept per day."""

import pytest
from django.utils import timezone

from labeller.annotations.models import AnnotationAction, AnnotationEvent, AnnotationStatus
from labeller.media.models import FrameStatus
from tests.conftest import api_path
from tests.factories import AnnotationFactory, FrameFactory, LabelFactory, VideoFactory

pytestmark = pytest.mark.django_db


def test_progress_counts_frames_boxes_and_proposals(tenant, other_tenant):
    video = VideoFactory(project=tenant.project, original_name="street.mp4")
    frames = [FrameFactory(project=tenant.project, video=video) for _ in range(4)]
    FrameFactory(project=tenant.project, status=FrameStatus.COMPLETE)  # a still image
    for frame in frames[:3]:
        frame.status = FrameStatus.COMPLETE
        frame.save()
    car, bike, unused = (LabelFactory(project=tenant.project, name=n) for n in ("car", "bike", "zebra"))
    for _ in range(3):
        AnnotationFactory(frame=frames[0], label=car)
    AnnotationFactory(frame=frames[0], label=bike)
    AnnotationFactory(frame=frames[0], label=bike, status=AnnotationStatus.PROPOSED)
    AnnotationFactory(
        frame=FrameFactory(project=other_tenant.project), label=LabelFactory(project=other_tenant.project)
    )
    proposed = {"status": "proposed"}
    for action, after in [("confirmed", "confirmed"), ("confirmed", "confirmed"), ("rejected", "rejected")]:
        AnnotationEvent.objects.create(
            project=tenant.project,
            annotation_id=1,
            frame_id=frames[0].pk,
            action=action,
            before=proposed,
            after={"status": after},
        )
    AnnotationEvent.objects.create(
        project=tenant.project, annotation_id=2, frame_id=frames[0].pk, action=AnnotationAction.CREATED
    )

    response = tenant.client("annotator").get(api_path(tenant, f"projects/{tenant.project.pk}/progress?days=7"))

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["complete"], body["total"]) == (4, 5)
    assert body["videos"] == [
        {"video_id": video.pk, "name": "street.mp4", "complete": 3, "total": 4},
        {"video_id": None, "name": "Still images", "complete": 1, "total": 1},
    ]
    assert [(row["name"], row["confirmed"]) for row in body["labels"]] == [("car", 3), ("bike", 1), ("zebra", 0)]
    assert len(body["proposals"]) == 7
    assert body["proposals"][-1] == {"day": timezone.localdate().isoformat(), "accepted": 2, "rejected": 1}


def test_another_organisation_sees_nothing(tenant, other_tenant):
    response = other_tenant.client("admin").get(api_path(other_tenant, f"projects/{tenant.project.pk}/progress"))
    assert response.status_code == 404
