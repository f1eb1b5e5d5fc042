"""The annotator's queue and frame media, through the API."""

import pytest

from labeller.media.models import Frame, FrameStatus
from tests.conftest import api_path, client_for
from tests.factories import FrameFactory, ShotFactory, VideoFactory, jpeg_bytes

pytestmark = pytest.mark.django_db


def take_next(tenant, role="annotator"):
    return tenant.client(role).post(api_path(tenant, f"projects/{tenant.project.pk}/queue/next"))


def test_the_queue_gives_keyframes_first_then_priority_then_video_order(tenant):
    plain = FrameFactory(project=tenant.project, index=1, is_keyframe=False)
    uncertain = FrameFactory(project=tenant.project, index=70, is_keyframe=False, priority=0.8)
    late_key = FrameFactory(project=tenant.project, index=9, is_keyframe=True)
    urgent_key = FrameFactory(project=tenant.project, index=50, is_keyframe=True, priority=5)
    order = [take_next(tenant, role).json()["id"] for role in ("annotator", "reviewer", "admin")]
    order.append(tenant.client("annotator").get(api_path(tenant, f"projects/{tenant.project.pk}/queue/peek?limit=9")).json()[-1]["id"])
    assert order == [urgent_key.pk, late_key.pk, uncertain.pk, plain.pk]


def test_the_queue_opens_every_shot_before_the_other_keyframes_and_frames(tenant):
    video = VideoFactory(project=tenant.project)
    first_shot, second_shot = ShotFactory(video=video, index=0), ShotFactory(video=video, index=1)

    def frame(shot, index, is_keyframe, priority=0.0):
        return FrameFactory(project=tenant.project, video=video, shot=shot, index=index, is_keyframe=is_keyframe,
                            priority=priority)

    between = frame(first_shot, 15, False, priority=0.9)
    later_key = frame(first_shot, 20, True)
    opens_first = frame(first_shot, 10, True)
    before_key = frame(second_shot, 55, False)
    opens_second = frame(second_shot, 60, True)
    peek = tenant.client("annotator").get(api_path(tenant, f"projects/{tenant.project.pk}/queue/peek?limit=9")).json()
    assert [f["id"] for f in peek] == [opens_first.pk, opens_second.pk, later_key.pk, between.pk, before_key.pk]


def test_two_annotators_never_get_the_same_frame_and_one_resumes_theirs(tenant):
    first, second = FrameFactory(project=tenant.project), FrameFactory(project=tenant.project)
    mine = take_next(tenant, "annotator").json()["id"]
    theirs = take_next(tenant, "reviewer").json()["id"]
    assert {mine, theirs} == {first.pk, second.pk}
    assert take_next(tenant, "annotator").json()["id"] == mine  # resume, not a new one
    assert Frame.objects.get(pk=mine).status == FrameStatus.IN_PROGRESS


def test_an_empty_queue_answers_204(tenant):
    FrameFactory(project=tenant.project, status=FrameStatus.COMPLETE)
    assert take_next(tenant).status_code == 204


def test_peek_lists_upcoming_frames_without_taking_them(tenant):
    frames = [FrameFactory(project=tenant.project) for _ in range(4)]
    peek = tenant.client("annotator").get(api_path(tenant, f"projects/{tenant.project.pk}/queue/peek?limit=2")).json()
    assert [f["id"] for f in peek] == [frames[0].pk, frames[1].pk]
    assert not Frame.objects.filter(assigned_to__isnull=False).exists()
    bad = tenant.client("annotator").get(api_path(tenant, f"projects/{tenant.project.pk}/queue/peek?limit=abc"))
    assert bad.status_code == 400


def test_frame_images_are_served_to_members_with_cache_headers(tenant):
    frame = FrameFactory(project=tenant.project)
    response = tenant.client("annotator").get(api_path(tenant, f"frames/{frame.pk}/image"))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == jpeg_bytes()
    assert response["Content-Type"] == "image/jpeg"
    assert "private" in response["Cache-Control"]


def test_frame_images_are_not_served_to_other_organisations_or_anonymous(tenant, other_tenant):
    frame = FrameFactory(project=tenant.project)
    assert client_for(other_tenant.admin).get(api_path(tenant, f"frames/{frame.pk}/image")).status_code == 404
    assert client_for(other_tenant.admin).get(api_path(other_tenant, f"frames/{frame.pk}/image")).status_code == 404
    assert client_for(None).get(api_path(tenant, f"frames/{frame.pk}/image")).status_code in (401, 403)


def test_frame_list_filters(tenant):
    FrameFactory(project=tenant.project, is_keyframe=False)
    key = FrameFactory(project=tenant.project, is_keyframe=True)
    body = tenant.client("annotator").get(api_path(tenant, f"projects/{tenant.project.pk}/frames/?is_keyframe=true")).json()
    assert [f["id"] for f in body["results"]] == [key.pk]


def test_skipping_a_frame_hands_out_the_next_one(tenant):
    first, second = FrameFactory(project=tenant.project), FrameFactory(project=tenant.project)
    taken = take_next(tenant).json()["id"]
    assert taken == first.pk
    released = tenant.client("annotator").post(api_path(tenant, f"frames/{taken}/release"), {"skip": True}, format="json")
    assert released.status_code == 200 and released.json()["status"] == "new"
    assert take_next(tenant).json()["id"] == second.pk


def test_only_the_holder_can_release_a_frame(tenant):
    frame = FrameFactory(project=tenant.project)
    take_next(tenant, "reviewer")
    response = tenant.client("annotator").post(api_path(tenant, f"frames/{frame.pk}/release"), {}, format="json")
    assert response.status_code == 409
    assert Frame.objects.get(pk=frame.pk).assigned_to == tenant.reviewer


def test_skipping_the_last_keyframe_hands_out_a_plain_frame(tenant):
    key = FrameFactory(project=tenant.project, is_keyframe=True)
    plain = FrameFactory(project=tenant.project, is_keyframe=False)
    assert take_next(tenant).json()["id"] == key.pk
    tenant.client("annotator").post(api_path(tenant, f"frames/{key.pk}/release"), {"skip": True}, format="json")
    assert take_next(tenant).json()["id"] == plain.pk
