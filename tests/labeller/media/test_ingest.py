"""Video ingestion end to end through the API and the stage services (no broker: the
stages are called as the worker would call them; the worker itself is tested apart)."""

from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.test import override_settings

from labeller.media import ingest
from labeller.media.models import Frame, IngestStage, Shot, Upload, Video
from tests.conftest import api_path
from tests.pipeline import make_synthetic, run_pipeline, stored_files

pytestmark = pytest.mark.django_db

SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


@pytest.fixture(scope="module")
def synthetic_video(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("videos"))


def upload(tenant, path: Path, name: str | None = None):
    with path.open("rb") as handle:
        return tenant.client("admin").post(
            api_path(tenant, f"projects/{tenant.project.pk}/videos/"),
            {"file": handle} if name is None else {"file": (name, handle)},
            format="multipart",
        )


def test_an_uploaded_video_becomes_shots_keyframes_and_frames(tenant, synthetic_video, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = upload(tenant, synthetic_video.path)
    assert response.status_code == 201, response.content
    assert len(callbacks) == 1  # the first stage is enqueued after commit
    video = run_pipeline(Video.objects.get(pk=response.json()["id"]))
    assert (video.stage, video.progress, video.error) == (IngestStage.READY, 100, "")
    shots = list(Shot.objects.filter(video=video).order_by("index"))
    assert [s.start_frame for s in shots[1:]] == pytest.approx(synthetic_video.cuts, abs=1)
    frames = Frame.objects.filter(video=video)
    for shot in shots:
        keyframes = frames.filter(shot=shot, is_keyframe=True)
        assert 1 <= keyframes.count() <= tenant.project.keyframes_max_per_shot
        assert all(shot.start_frame <= f.index < shot.end_frame for f in keyframes)
    frame = frames.first()
    assert (frame.width, frame.height) == (320, 192)
    assert default_storage.exists(frame.image.name) and default_storage.exists(frame.thumbnail.name)
    detail = tenant.client("annotator").get(api_path(tenant, f"videos/{video.pk}")).json()
    assert (detail["stage"], detail["progress"]) == ("ready", 100)


def test_rerunning_replaces_frames_without_duplicates_or_orphans(tenant, synthetic_video, django_capture_on_commit_callbacks):
    response = upload(tenant, synthetic_video.path)
    video = run_pipeline(Video.objects.get(pk=response.json()["id"]))
    first_frames = Frame.objects.filter(video=video).count()
    files_after_first = stored_files()
    # A retried last stage is a no-op in effect...
    ingest.ingest_frames(video_id=video.pk, token=str(video.ingest_token))
    assert Frame.objects.filter(video=video).count() == first_frames
    # ...and a whole new run replaces rows and files atomically.
    with django_capture_on_commit_callbacks(execute=True):  # stale files go after commit
        video = run_pipeline(ingest.video_ingest_restart(video=video))
    assert Frame.objects.filter(video=video).count() == first_frames
    assert Shot.objects.filter(video=video).count() == len(synthetic_video.cuts) + 1
    assert len(stored_files()) == len(files_after_first)
    assert all(f.image.name in stored_files() for f in Frame.objects.filter(video=video))


def test_a_stage_of_an_old_run_does_nothing(tenant, synthetic_video):
    response = upload(tenant, synthetic_video.path)
    video = Video.objects.get(pk=response.json()["id"])
    old_token = str(video.ingest_token)
    ingest.video_ingest_restart(video=video)
    ingest.ingest_probe(video_id=video.pk, token=old_token)
    video.refresh_from_db()
    assert video.stage == IngestStage.PROBING and video.progress == 0


def truncated_bikes(tmp_path):
    data = (SHARED_DATA / "bikes-shots" / "bikes.mp4").read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) * 3 // 10])
    return path


@pytest.mark.parametrize(
    "make_file,expected_code",
    [
        pytest.param(lambda tmp: (tmp / "empty.mp4", b""), "empty_file", id="empty"),
        pytest.param(lambda tmp: (tmp / "notes.mp4", b"just some text, not a video\n" * 50), "not_media", id="text-as-mp4"),
        pytest.param(lambda tmp: (tmp / "noise.mkv", bytes(range(256)) * 400), "not_media", id="random-bytes"),
    ],
)
def test_bad_uploads_get_a_clear_400_and_leave_nothing(tenant, tmp_path, make_file, expected_code):
    path, data = make_file(tmp_path)
    path.write_bytes(data)
    before = stored_files()
    response = upload(tenant, path)
    assert response.status_code == 400
    assert response.json()["code"] == expected_code
    assert response.json()["detail"]
    assert not Video.objects.exists()
    assert stored_files() == before


def test_a_truncated_video_is_refused_or_ingests_what_is_there(tenant, tmp_path):
    response = upload(tenant, truncated_bikes(tmp_path))
    if response.status_code == 400:
        assert response.json()["code"] in {"corrupt", "not_media"}
        assert not Video.objects.exists()
    else:  # the readable first 30 %: it must ingest cleanly, not crash
        video = run_pipeline(Video.objects.get(pk=response.json()["id"]))
        assert video.stage == IngestStage.READY


def test_an_oversized_upload_is_413(tenant, synthetic_video):
    with override_settings(LABELLER={**__import__("django.conf").conf.settings.LABELLER, "MAX_UPLOAD_BYTES": 1000}):
        response = upload(tenant, synthetic_video.path)
    assert response.status_code == 413
    assert not Video.objects.exists()


def test_a_resumable_upload_survives_a_broken_connection(tenant, synthetic_video):
    data = synthetic_video.path.read_bytes()
    client = tenant.client("admin")
    start = client.post(
        api_path(tenant, f"projects/{tenant.project.pk}/uploads/"), {"filename": "counter.mp4", "size": len(data)}, format="json"
    )
    assert start.status_code == 201
    url = api_path(tenant, f"uploads/{start.json()['id']}")
    half = len(data) // 2

    def put(chunk: bytes, first: int, claimed_length: int | None = None):
        end = first + (claimed_length or len(chunk)) - 1
        return client.generic(
            "PUT", url, chunk, content_type="application/octet-stream", HTTP_CONTENT_RANGE=f"bytes {first}-{end}/{len(data)}"
        )

    assert put(data[:half], 0).json()["offset"] == half
    # The connection drops mid-chunk: the partial chunk is dropped, the offset stays.
    dropped = put(data[half : half + 100], half, claimed_length=len(data) - half)
    assert dropped.status_code == 400 and dropped.json()["offset"] == half
    # A client that lost track is told where to resume.
    wrong = put(data[10:20], 10)
    assert wrong.status_code == 409 and wrong.json()["offset"] == half
    assert client.get(url).json()["offset"] == half
    early = client.post(url + "/finish")
    assert early.status_code == 409
    assert put(data[half:], half).json()["offset"] == len(data)
    finished = client.post(url + "/finish")
    assert finished.status_code == 201, finished.content
    video = Video.objects.get(pk=finished.json()["id"])
    assert video.size_bytes == len(data)
    with video.file.open("rb") as handle:
        assert handle.read() == data


def test_a_resumable_upload_of_a_non_video_keeps_nothing(tenant, tmp_path):
    data = b"%PDF-1.4 definitely not a video" * 100
    client = tenant.client("admin")
    upload_id = client.post(
        api_path(tenant, f"projects/{tenant.project.pk}/uploads/"), {"filename": "x.mp4", "size": len(data)}, format="json"
    ).json()["id"]
    url = api_path(tenant, f"uploads/{upload_id}")
    client.generic("PUT", url, data, content_type="application/octet-stream", HTTP_CONTENT_RANGE=f"bytes 0-{len(data) - 1}/{len(data)}")
    response = client.post(url + "/finish")
    assert response.status_code == 400
    assert not Upload.objects.exists() and not Video.objects.exists()
    from django.conf import settings

    assert not list(settings.UPLOAD_DIR.glob("upload-*"))


def test_open_uploads_are_listed_for_resuming_and_abandoned_ones_are_deleted(tenant):
    from datetime import timedelta

    from django.utils import timezone

    from labeller.media.uploads import upload_part_path, uploads_delete_abandoned

    client = tenant.client("admin")
    started = client.post(
        api_path(tenant, f"projects/{tenant.project.pk}/uploads/"), {"filename": "big.mp4", "size": 1000}, format="json"
    ).json()
    listed = client.get(api_path(tenant, f"projects/{tenant.project.pk}/uploads/")).json()["results"]
    assert [(u["id"], u["offset"]) for u in listed] == [(started["id"], 0)]
    upload = Upload.objects.get(pk=started["id"])
    assert uploads_delete_abandoned() == 0  # fresh: kept
    Upload.objects.filter(pk=upload.pk).update(updated_at=timezone.now() - timedelta(days=3))
    assert uploads_delete_abandoned() == 1
    assert not Upload.objects.exists() and not upload_part_path(upload).exists()


def test_video_answers_carry_shot_and_keyframe_counts(tenant, synthetic_video):
    video = run_pipeline(Video.objects.get(pk=upload(tenant, synthetic_video.path).json()["id"]))
    body = tenant.client("annotator").get(api_path(tenant, f"videos/{video.pk}")).json()
    assert body["shot_count"] == len(synthetic_video.cuts) + 1
    assert body["keyframe_count"] == Frame.objects.filter(video=video, is_keyframe=True).count() > 0
