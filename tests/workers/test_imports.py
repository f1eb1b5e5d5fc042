"""A real bulk worker runs an import the API queued, and a second run of it creates nothing."""

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from labeller.annotations.models import ImportJob, ImportState
from labeller.core.tasks import publish
from labeller.media.models import Frame
from tests.celery_worker import filesystem_broker_options, publishing_to, running_worker, wait_for, worker_env
from tests.conftest import api_path
from tests.factories import jpeg_bytes

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


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


def test_a_real_worker_imports_a_zip_and_a_repeated_message_changes_nothing(tenant, tmp_path, settings):
    env = worker_env(tmp_path, "filesystem://", settings)
    log = tmp_path / "worker.log"
    with publishing_to("filesystem://", filesystem_broker_options(tmp_path)), running_worker(env, log, "bulk"):
        response = tenant.client("admin").post(
            api_path(tenant, f"projects/{tenant.project.pk}/images/"),
            {"archive": SimpleUploadedFile("shots.zip", images_zip())},
            format="multipart",
        )
        assert response.status_code == 202, response.content
        job_id = response.json()["id"]
        wait_for(lambda: finished(job_id), timeout=120, log=log, what="the import")
        job = ImportJob.objects.get(pk=job_id)
        assert (job.state, job.frames_created, job.progress) == (ImportState.DONE, 2, 100), job.error
        assert sorted(Frame.objects.values_list("original_name", flat=True)) == ["a.jpg", "b.jpg"]

        publish("workers.imports.run_import", job_id)  # delivered again: the row is done, nothing runs
        wait_for(lambda: runs_done(log) == 2, timeout=60, log=log, what="the second delivery")
    assert Frame.objects.count() == 2
    assert ImportJob.objects.get(pk=job_id).finished_at == job.finished_at
