"""The project page's Export section: an admin starts a COCO export, a real worker writes it,
the page shows its progress and a download, and the downloaded file loads in pycocotools."""

import contextlib
import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from labeller.annotations.services import label_create
from labeller.exports.models import DatasetExport, ExportState
from tests.browser.conftest import admin_and_annotator_organization, scene_jpeg
from tests.browser.workspace import log_in
from tests.celery_worker import filesystem_broker_options, publishing_to, running_worker, wait_for, worker_env
from tests.factories import (
    AnnotationFactory,
    FrameFactory,
    ProjectFactory,
    ShotFactory,
    VideoFactory,
)

pytestmark = pytest.mark.browser

READY = "#project-page[data-ready]"


@pytest.fixture
def labelled_project(transactional_db):
    organization = admin_and_annotator_organization()
    project = ProjectFactory(organization=organization, name="Kitchen")
    labels = [label_create(project=project, name=name) for name in ("food.dish.dessert", "food.drink", "vehicle")]
    video = VideoFactory(project=project, width=320, height=180)
    shot = ShotFactory(video=video, start_frame=0, end_frame=3)
    for index in range(3):
        frame = FrameFactory(
            project=project, video=video, shot=shot, index=index, width=320, height=180,
            image=ContentFile(scene_jpeg(index, 320, 180), name="frame.jpg"),
        )
        for number, label in enumerate(labels):
            x = 10 + 60 * number + index
            AnnotationFactory(frame=frame, label=label, x1=x, y1=20.0, x2=x + 40.5, y2=90.25)
    return project


@pytest.fixture
def worker(tmp_path, settings, live_server):
    """A real Celery worker on the embedded filesystem broker, sharing the live server's database."""
    log = tmp_path / "worker.log"
    env = worker_env(tmp_path, "filesystem://", settings)
    with publishing_to("filesystem://", filesystem_broker_options(tmp_path)), running_worker(env, log, queues="bulk"):
        yield log


def project_path(project) -> str:
    return f"/o/{project.organization.slug}/p/{project.pk}/"


def test_an_admin_exports_coco_and_the_download_loads_in_pycocotools(
    strict_page, labelled_project, worker, tmp_path, shots
):
    page = strict_page
    log_in(page, "boss", project_path(labelled_project), ready=READY)
    section = page.get_by_role("region", name="Export")
    assert section.is_visible()
    section.get_by_label("Export as").select_option("coco")
    section.get_by_label("Only confirmed boxes").check()
    section.get_by_role("button", name="Start export").click()

    row = page.locator(".export").first
    row.wait_for()
    wait_for(lambda: DatasetExport.objects.get().state in (ExportState.DONE, ExportState.FAILED), timeout=90,
             log=worker, what="export")
    assert DatasetExport.objects.get().error == ""
    done = page.locator(".export[data-state=done]")
    done.wait_for(timeout=15_000)
    assert "3 images · 9 boxes" in done.inner_text()
    shots(page, "project-export-done", keep=True)

    with page.expect_download() as download_info:
        done.get_by_role("link", name="Download").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".json")
    path = tmp_path / download.suggested_filename
    download.save_as(path)

    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(path))
        detections = truth.loadRes([
            {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
            for a in truth.dataset["annotations"]
        ])
        evaluation = COCOeval(truth, detections, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert len(truth.getImgIds()) == 3 and len(truth.getAnnIds()) == 9
    assert {c["supercategory"] for c in truth.loadCats(truth.getCatIds())} >= {"food.dish", "food"}
    assert evaluation.stats[1] == pytest.approx(1.0)

    # An old export is deleted from the same list, its file with it.
    stored = DatasetExport.objects.get().file
    done.get_by_role("button", name=f"Delete export {DatasetExport.objects.get().pk}").click()
    page.get_by_text("No exports yet.").wait_for()
    assert not DatasetExport.objects.exists() and not default_storage.exists(stored)


def test_an_annotator_sees_no_export_section(page, labelled_project):
    log_in(page, "ann", project_path(labelled_project), ready=READY)
    assert page.locator("#export-form").is_hidden()
