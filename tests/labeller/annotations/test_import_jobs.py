"""Imports run as bulk-worker jobs: 202 and a status row, the task, idempotency, files kept
as they came, failures recorded with nothing written, tenancy and roles, beat's recovery."""

import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from labeller.annotations import import_jobs, imports
from labeller.annotations.import_jobs import import_run, imports_overdue, imports_recover_stalled
from labeller.annotations.models import Annotation, ImportJob, ImportState, Label
from labeller.media import images
from labeller.media.models import Frame
from tests.celery_worker import publishing_to
from tests.conftest import api_path, client_for, make_tenant
from tests.factories import jpeg_bytes
from tests.import_jobs import run_import, status_path
from tests.pipeline import stored_files

pytestmark = pytest.mark.django_db


def zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def png_bytes(width: int = 30, height: int = 20) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (0, 128, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def coco_dataset() -> bytes:
    document = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
            {"id": 2, "file_name": "b.jpg", "width": 32, "height": 32},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 10, 10]},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [20, 20, 10, 10]},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5]},
        ],
        "categories": [{"id": 1, "name": "cup"}, {"id": 2, "name": "plate"}],
    }
    return zip_of({"d/a.json": json.dumps(document).encode(), "d/a.jpg": jpeg_bytes(64, 48), "d/b.jpg": jpeg_bytes(32, 32)})


def post_dataset(tenant, archive: bytes, role: str = "admin", org: str | None = None):
    org = org or tenant.organization.slug
    return tenant.client(role).post(
        f"/api/v1/orgs/{org}/projects/{tenant.project.pk}/imports/",
        {"format": "coco", "archive": SimpleUploadedFile("set.zip", archive)},
        format="multipart",
    )


def post_images(tenant, archive: bytes):
    return tenant.client("admin").post(
        api_path(tenant, f"projects/{tenant.project.pk}/images/"),
        {"archive": SimpleUploadedFile("shots.zip", archive)},
        format="multipart",
    )


def counts(project) -> tuple[int, int, int]:
    return (
        Frame.objects.filter(project=project).count(),
        Annotation.objects.filter(project=project).count(),
        Label.objects.filter(project=project).count(),
    )


def test_an_import_answers_202_with_a_queued_status_row_and_writes_nothing_yet(tenant):
    response = post_dataset(tenant, coco_dataset())

    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["kind"], body["format"], body["state"], body["progress"]) == ("dataset", "coco", "queued", 0)
    assert (body["archive_name"], body["error"], body["errors"]) == ("set.zip", "", [])
    assert counts(tenant.project) == (0, 0, 0)
    status = tenant.client("admin").get(status_path(body))
    assert status.status_code == 200 and status.json() == body


def test_the_task_imports_and_records_counts_and_progress(tenant):
    job = post_dataset(tenant, coco_dataset()).json()
    archive = ImportJob.objects.get(pk=job["id"]).archive

    status = run_import(tenant.client("admin"), job)

    assert status["state"] == "done" and status["progress"] == 100
    assert (status["images_done"], status["images_total"]) == (2, 2)
    assert (status["frames_created"], status["frames_skipped"], status["boxes_created"], status["labels_created"]) == (
        2, 0, 3, 2,
    )
    assert status["finished_at"] is not None
    assert counts(tenant.project) == (2, 3, 2)
    # Thumbnails are made in the task; the stored upload is gone once done.
    assert all(frame.thumbnail for frame in Frame.objects.all())
    assert archive not in stored_files()


def test_importing_the_same_dataset_twice_creates_nothing_new(tenant):
    run_import(tenant.client("admin"), post_dataset(tenant, coco_dataset()).json())
    before = counts(tenant.project)

    again = run_import(tenant.client("admin"), post_dataset(tenant, coco_dataset()).json())

    assert again["state"] == "done"
    assert (again["frames_created"], again["frames_skipped"], again["boxes_created"]) == (0, 2, 0)
    assert counts(tenant.project) == before


def test_the_same_zip_of_images_twice_adds_each_image_once(tenant):
    archive = zip_of({"a.jpg": jpeg_bytes(16, 16), "b.png": png_bytes()})
    first = run_import(tenant.client("admin"), post_images(tenant, archive).json())
    second = run_import(tenant.client("admin"), post_images(tenant, archive).json())

    assert (first["frames_created"], first["frames_skipped"]) == (2, 0)
    assert (second["frames_created"], second["frames_skipped"]) == (0, 2)
    assert Frame.objects.count() == 2


def test_a_repeated_run_of_one_job_creates_nothing_twice(tenant):
    job = post_dataset(tenant, coco_dataset()).json()
    stored = ImportJob.objects.get(pk=job["id"]).archive
    with default_storage.open(stored, "rb") as handle:
        archive = handle.read()
    run_import(tenant.client("admin"), job)
    # As if beat had requeued it after its worker died just after the commit, and the message came again.
    restored = default_storage.save(stored, ContentFile(archive))
    ImportJob.objects.filter(pk=job["id"]).update(state=ImportState.QUEUED, archive=restored)

    again = run_import(tenant.client("admin"), job)

    assert (again["state"], again["frames_created"], again["frames_skipped"]) == ("done", 0, 2)
    assert counts(tenant.project) == (2, 3, 2)
    import_run(import_id=job["id"])  # a duplicate message for a finished job: nothing at all
    assert counts(tenant.project) == (2, 3, 2)


def test_a_run_whose_job_was_taken_from_it_writes_nothing(tenant, monkeypatch):
    job = post_dataset(tenant, coco_dataset()).json()
    files_before = stored_files()

    def taken(import_id, token, counts):
        ImportJob.objects.filter(pk=import_id).update(state=ImportState.FAILED, error="beat failed it")
        raise import_jobs.ImportAbandoned(import_id)

    monkeypatch.setattr(import_jobs, "_finish_done", taken)
    import_run(import_id=job["id"])

    assert counts(tenant.project) == (0, 0, 0)
    assert stored_files() == files_before  # the frames' files went with the rolled-back rows


def test_jpeg_and_png_files_are_stored_byte_for_byte_and_served_as_probed(tenant):
    jpeg, png = jpeg_bytes(40, 30), png_bytes(30, 20)
    run_import(tenant.client("admin"), post_images(tenant, zip_of({"p.jpg": jpeg, "q.png": png})).json())

    for name, data, content_type in (("p.jpg", jpeg, "image/jpeg"), ("q.png", png, "image/png")):
        frame = Frame.objects.get(original_name=name)
        with frame.image.open("rb") as handle:
            assert handle.read() == data
        response = tenant.client("annotator").get(api_path(tenant, f"frames/{frame.pk}/image"))
        assert response.status_code == 200 and response["Content-Type"] == content_type
        assert b"".join(response.streaming_content) == data
        with frame.thumbnail.open("rb") as handle:
            assert Image.open(handle).format == "JPEG"


def test_a_malformed_dataset_fails_the_row_in_plain_words_and_writes_nothing(tenant):
    files_before = stored_files()
    archive = zip_of({"a.json": b"{not json", "a.jpg": jpeg_bytes()})

    status = run_import(tenant.client("admin"), post_dataset(tenant, archive).json())

    assert (status["state"], status["error_code"]) == ("failed", "invalid_dataset")
    assert status["error"].startswith("set.zip: ") and "not a valid JSON file" in status["error"]
    assert counts(tenant.project) == (0, 0, 0)
    assert stored_files() == files_before


def test_not_a_zip_is_refused_at_once_with_no_row_and_no_file(tenant):
    files_before = stored_files()

    response = post_dataset(tenant, b"these are words")

    assert response.status_code == 400 and response.json()["code"] == "invalid_dataset"
    assert not ImportJob.objects.exists()
    assert stored_files() == files_before


def test_a_broker_that_is_down_keeps_the_row_queued_for_beat_to_send_again(tenant, django_capture_on_commit_callbacks):
    with publishing_to("redis://127.0.0.1:1/0", {"socket_connect_timeout": 1}):
        with django_capture_on_commit_callbacks(execute=True):
            response = post_dataset(tenant, coco_dataset())

    assert response.status_code == 202
    job = ImportJob.objects.get(pk=response.json()["id"])
    assert job.state == ImportState.QUEUED and job.archive  # the record beat drains
    ImportJob.objects.filter(pk=job.pk).update(enqueued_at=timezone.now() - timedelta(minutes=11))
    assert imports_overdue(waited=timedelta(minutes=10)) == [job.pk]
    assert imports_overdue(waited=timedelta(minutes=10)) == []  # marked as sent again


def test_beat_requeues_a_silent_import_once_then_fails_it_with_a_reason(tenant):
    job = post_dataset(tenant, coco_dataset()).json()
    long_ago = timezone.now() - timedelta(minutes=10)
    ImportJob.objects.filter(pk=job["id"]).update(state=ImportState.RUNNING, token=None, heartbeat_at=long_ago)

    assert imports_recover_stalled(silent_for=timedelta(minutes=5)) == ([job["id"]], [])
    assert ImportJob.objects.get(pk=job["id"]).state == ImportState.QUEUED
    ImportJob.objects.filter(pk=job["id"]).update(state=ImportState.RUNNING, heartbeat_at=long_ago)
    assert imports_recover_stalled(silent_for=timedelta(minutes=5)) == ([], [job["id"]])
    failed = ImportJob.objects.get(pk=job["id"])
    assert failed.state == ImportState.FAILED and "went silent" in failed.error


def test_the_archive_of_an_import_beat_fails_is_deleted(tenant, django_capture_on_commit_callbacks):
    job = post_dataset(tenant, coco_dataset()).json()
    archive = ImportJob.objects.get(pk=job["id"]).archive
    long_ago = timezone.now() - timedelta(minutes=10)
    ImportJob.objects.filter(pk=job["id"]).update(state=ImportState.RUNNING, recoveries=1, heartbeat_at=long_ago)

    with django_capture_on_commit_callbacks(execute=True):
        assert imports_recover_stalled(silent_for=timedelta(minutes=5)) == ([], [job["id"]])

    assert archive not in stored_files()


@pytest.mark.parametrize(
    "post, archive, probing",
    [
        pytest.param(post_images, zip_of({f"{n}.jpg": jpeg_bytes(16, 16) for n in range(3)}), images, id="images"),
        pytest.param(post_dataset, coco_dataset(), imports, id="dataset"),
    ],
)
def test_the_row_beats_while_the_images_are_decoded_before_any_is_stored(tenant, monkeypatch, post, archive, probing):
    # Decoding 20,000 images takes longer than beat waits for a silent worker.
    monkeypatch.setattr(import_jobs, "HEARTBEAT_EVERY_S", 0)
    job = post(tenant, archive).json()
    long_ago = timezone.now() - timedelta(hours=1)
    beats_seen = []
    image_probe = probing.image_probe

    def probe_then_fall_silent(path):
        beats_seen.append(ImportJob.objects.get(pk=job["id"]).heartbeat_at)
        ImportJob.objects.filter(pk=job["id"]).update(heartbeat_at=long_ago)
        return image_probe(path)

    monkeypatch.setattr(probing, "image_probe", probe_then_fall_silent)
    status = run_import(tenant.client("admin"), job)

    assert status["state"] == "done" and len(beats_seen) >= 2
    assert all(beat > long_ago for beat in beats_seen[1:])  # beaten again before each next image


def test_boxes_of_images_already_in_the_project_are_reported_not_lost_silently(tenant):
    run_import(tenant.client("admin"), post_dataset(tenant, coco_dataset()).json())

    again = run_import(tenant.client("admin"), post_dataset(tenant, coco_dataset()).json())

    assert (again["frames_skipped"], again["boxes_created"]) == (2, 0)
    assert {(warning["record"], warning["message"]) for warning in again["warnings"]} >= {
        ("a.jpg", "already in the project; 2 boxes not imported"),
        ("b.jpg", "already in the project; 1 box not imported"),
    }


def test_boxes_of_an_image_another_import_wrote_meanwhile_are_reported(tenant, monkeypatch):
    job = post_dataset(tenant, coco_dataset()).json()
    drop_known = imports.frames_drop_known

    def another_import_wrote_a_jpg_first(frames, project):
        late = next(frame for frame in frames if frame.original_name == "a.jpg")
        Frame.objects.create(
            project=project, video=None, index=0, original_name="a.jpg", width=64, height=48,
            content_sha256=late.content_sha256,
        )
        return drop_known(frames, project)

    monkeypatch.setattr(imports, "frames_drop_known", another_import_wrote_a_jpg_first)
    status = run_import(tenant.client("admin"), job)

    assert (status["frames_created"], status["frames_skipped"], status["boxes_created"]) == (1, 1, 1)
    assert {"record": "a.jpg", "message": "already in the project; 2 boxes not imported"} in [
        {key: warning[key] for key in ("record", "message")} for warning in status["warnings"]
    ]


def test_another_organisation_gets_404_for_the_status_and_the_upload(tenant):
    job = post_dataset(tenant, coco_dataset()).json()
    intruder = make_tenant("intruder")
    before = (counts(tenant.project), ImportJob.objects.count(), stored_files())

    for org in ("acme", "intruder"):
        assert client_for(intruder.admin).get(f"/api/v1/orgs/{org}/imports/{job['id']}").status_code == 404
        response = client_for(intruder.admin).post(
            f"/api/v1/orgs/{org}/projects/{tenant.project.pk}/images/",
            {"archive": SimpleUploadedFile("x.zip", zip_of({"a.jpg": jpeg_bytes()}))},
            format="multipart",
        )
        assert response.status_code == 404
    assert (counts(tenant.project), ImportJob.objects.count(), stored_files()) == before


@pytest.mark.parametrize("role", ["reviewer", "annotator"])
def test_only_admins_import_or_follow_an_import(tenant, role):
    job = post_dataset(tenant, coco_dataset()).json()
    before = (ImportJob.objects.count(), stored_files())

    assert tenant.client(role).get(status_path(job)).status_code == 403
    assert post_dataset(tenant, coco_dataset(), role=role).status_code == 403
    assert (ImportJob.objects.count(), stored_files()) == before
