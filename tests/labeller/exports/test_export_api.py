"""The export routes: admins only (others get 403 and change nothing), a download served
like every media file, and a task enqueued after commit."""

import json
from unittest import mock

import pytest
from django.core.files.storage import default_storage

from labeller.exports import services
from labeller.exports.models import DatasetExport, ExportState
from labeller.exports.services import export_run
from tests.conftest import api_path
from tests.factories import AnnotationFactory, FrameFactory, LabelFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def labelled(tenant):
    label = LabelFactory(project=tenant.project, name="vehicle")
    AnnotationFactory(frame=FrameFactory(project=tenant.project, original_name="road.jpg"), label=label)
    return tenant


def start(client, tenant, body=None):
    return client.post(api_path(tenant, f"projects/{tenant.project.pk}/exports/"), body or {}, format="json")


def test_an_admin_starts_an_export_and_the_task_is_sent_after_commit(labelled, django_capture_on_commit_callbacks):
    with mock.patch("labeller.core.tasks.current_app.send_task") as send, django_capture_on_commit_callbacks(
        execute=True
    ):
        response = start(labelled.client("admin"), labelled, {"format": "coco", "val_share": 0.2})
    assert response.status_code == 202, response.json()
    body = response.json()
    assert (body["state"], body["format"], body["val_share"], body["download_url"]) == ("queued", "coco", 0.2, None)
    send.assert_called_once()
    assert send.call_args.args == ("workers.exports.run_export",) and send.call_args.kwargs["args"] == (body["id"],)


def test_a_finished_export_is_downloaded_as_an_attachment(labelled):
    admin = labelled.client("admin")
    export_id = start(admin, labelled).json()["id"]
    export_run(export_id=export_id)
    detail = admin.get(api_path(labelled, f"exports/{export_id}")).json()
    counts = (detail["state"], detail["progress"], detail["image_count"], detail["annotation_count"])
    assert counts == ("done", 100, 1, 1)
    assert detail["download_url"] == f"/api/v1/orgs/acme/exports/{export_id}/file"

    response = admin.get(detail["download_url"])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith("attachment;")
    assert f"-coco-{export_id}.json" in response["Content-Disposition"]
    assert response["X-Content-Type-Options"] == "nosniff"
    coco = json.loads(b"".join(response.streaming_content))
    assert [image["file_name"] for image in coco["images"]] == ["road.jpg"]

    listed = admin.get(api_path(labelled, f"projects/{labelled.project.pk}/exports/")).json()["results"]
    assert [item["id"] for item in listed] == [export_id]


def test_an_admin_deletes_an_export_and_its_file_goes_after_commit(labelled, django_capture_on_commit_callbacks):
    admin = labelled.client("admin")
    export_id = start(admin, labelled).json()["id"]
    export_run(export_id=export_id)
    stored = DatasetExport.objects.get(pk=export_id).file
    assert default_storage.exists(stored)

    with django_capture_on_commit_callbacks(execute=True):
        assert admin.delete(api_path(labelled, f"exports/{export_id}")).status_code == 204
    assert not DatasetExport.objects.filter(pk=export_id).exists() and not default_storage.exists(stored)
    assert admin.get(api_path(labelled, f"exports/{export_id}")).status_code == 404


def test_a_worker_writing_a_deleted_export_stops_and_keeps_no_file(labelled, monkeypatch):
    admin = labelled.client("admin")
    export_id = start(admin, labelled).json()["id"]
    written = []

    def write_then_lose_the_row(*, export, workdir, report_progress):
        DatasetExport.objects.filter(pk=export.pk).delete()  # an admin deletes it meanwhile
        report_progress(50)
        written.append(export.pk)

    monkeypatch.setattr(services, "export_file_write", write_then_lose_the_row)
    export_run(export_id=export_id)
    assert written == []  # its heartbeat found the row gone and stopped before storing anything
    assert not DatasetExport.objects.exists()


def test_no_file_before_the_export_is_done(labelled):
    admin = labelled.client("admin")
    export_id = start(admin, labelled).json()["id"]
    assert admin.get(api_path(labelled, f"exports/{export_id}/file")).status_code == 404


@pytest.mark.parametrize("body,field", [({"format": "pdf"}, "format"), ({"val_share": 1.5}, "val_share"),
                                        ({"label_ids": [999999]}, "label_ids")])
def test_invalid_requests_name_the_field_and_start_nothing(labelled, body, field):
    response = start(labelled.client("admin"), labelled, body)
    assert response.status_code == 400
    assert field in json.dumps(response.json())
    assert not DatasetExport.objects.exists()


@pytest.mark.parametrize("role", ["reviewer", "annotator"])
def test_members_who_are_not_admins_get_403_and_change_nothing(labelled, role):
    admin = labelled.client("admin")
    done_id = start(admin, labelled).json()["id"]
    export_run(export_id=done_id)
    before = list(DatasetExport.objects.order_by("pk").values())

    client = labelled.client(role)
    answers = [
        start(client, labelled, {"format": "coco"}),
        client.get(api_path(labelled, f"projects/{labelled.project.pk}/exports/")),
        client.get(api_path(labelled, f"exports/{done_id}")),
        client.get(api_path(labelled, f"exports/{done_id}/file")),
        client.delete(api_path(labelled, f"exports/{done_id}")),
    ]
    assert [answer.status_code for answer in answers] == [403, 403, 403, 403, 403]
    assert list(DatasetExport.objects.order_by("pk").values()) == before
    assert DatasetExport.objects.get(pk=done_id).state == ExportState.DONE
