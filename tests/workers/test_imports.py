"""A real bulk worker runs an import the API queued, and a second run of it creates nothing;
the task retries an unexpected error, fails the row in plain words on the last try, and never
touches a row that a newer run holds."""

import io
import logging
import uuid
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from labeller.annotations import import_jobs
from labeller.annotations.models import ImportJob, ImportState
from labeller.core.tasks import publish
from labeller.media.models import Frame
from tests.celery_worker import filesystem_broker_options, publishing_to, running_worker, wait_for, worker_env
from tests.conftest import api_path
from tests.factories import jpeg_bytes
from workers.imports import run_import

LAST_TRY = run_import.max_retries


def images_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.jpg", jpeg_bytes(64, 48))
        archive.writestr("b.jpg", jpeg_bytes(32, 32))
    return buffer.getvalue()


def runs_done(log) -> int:
    return sum("workers.imports.run_import[" in line and " succeeded in " in line for line in log.read_text().splitlines())


def finished(job_id: int) -> bool:
    return ImportJob.objects.get(pk=job_id).state in (ImportState.DONE, ImportState.FAILED)


def post_images(tenant) -> int:
    response = tenant.client("admin").post(
        api_path(tenant, f"projects/{tenant.project.pk}/images/"),
        {"archive": SimpleUploadedFile("shots.zip", images_zip())},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    return response.json()["id"]


@pytest.mark.django_db
@pytest.mark.parametrize("retries", [0, LAST_TRY], ids=["a-retry-left", "the-last-try"])
def test_a_run_whose_row_went_to_a_newer_run_leaves_that_run_alone_when_it_errors(tenant, monkeypatch, retries):
    job_id = post_images(tenant)
    newer = uuid.uuid4()

    def taken_then_broken(**kwargs):
        # Beat requeued the row (this worker looked dead) and another worker claimed it; then this run broke.
        ImportJob.objects.filter(pk=job_id).update(token=newer, heartbeat_at=timezone.now())
        raise OSError("storage went away")

    monkeypatch.setattr(import_jobs, "frames_create_from_zip", taken_then_broken)
    run_import.apply(args=[job_id], retries=retries)

    job = ImportJob.objects.get(pk=job_id)
    assert (job.state, job.token, job.error) == (ImportState.RUNNING, newer, "")


@pytest.mark.django_db
def test_an_unexpected_error_is_retried_then_fails_the_row_in_plain_words(tenant, monkeypatch, caplog):
    job_id = post_images(tenant)
    tries = []

    def broken(**kwargs):
        tries.append(ImportJob.objects.get(pk=job_id).state)
        raise OSError("/srv/media/secret-mount: disk full")

    monkeypatch.setattr(import_jobs, "frames_create_from_zip", broken)
    with caplog.at_level(logging.ERROR, logger="labeller.annotations.import_jobs"):
        run_import.apply(args=[job_id])

    job = ImportJob.objects.get(pk=job_id)
    assert tries == [ImportState.RUNNING] * (LAST_TRY + 1)  # each retry claimed the row queued again
    assert (job.state, job.error_code) == (ImportState.FAILED, "unexpected_error")
    assert job.error == import_jobs.UNEXPECTED_FAILURE and "secret-mount" not in job.error
    assert "secret-mount: disk full" in caplog.text  # the error goes to the log


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_imports_a_zip_and_a_repeated_message_changes_nothing(tenant, tmp_path, settings):
    env = worker_env(tmp_path, "filesystem://", settings)
    log = tmp_path / "worker.log"
    with publishing_to("filesystem://", filesystem_broker_options(tmp_path)), running_worker(env, log, "bulk"):
        job_id = post_images(tenant)
        wait_for(lambda: finished(job_id), timeout=120, log=log, what="the import")
        job = ImportJob.objects.get(pk=job_id)
        assert (job.state, job.frames_created, job.progress) == (ImportState.DONE, 2, 100), job.error
        assert sorted(Frame.objects.values_list("original_name", flat=True)) == ["a.jpg", "b.jpg"]

        publish("workers.imports.run_import", job_id)  # delivered again: the row is done, nothing runs
        wait_for(lambda: runs_done(log) == 2, timeout=60, log=log, what="the second delivery")
    assert Frame.objects.count() == 2
    assert ImportJob.objects.get(pk=job_id).finished_at == job.finished_at
