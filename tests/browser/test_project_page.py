"""The project page: an admin adds videos (resumable upload, ingest by a real worker),
images and datasets, and keeps the taxonomy; other members see what is there."""

import base64
import io
import re
import zipfile
from pathlib import Path

import pytest

from labeller.annotations.import_jobs import import_run
from labeller.annotations.models import ImportJob, Label
from labeller.media.models import Frame, Upload, UploadStatus, Video
from proposals.calibration import MIN_PER_BIN
from tests.browser.conftest import admin_and_annotator_organization, scene_jpeg
from tests.browser.workspace import log_in
from tests.celery_worker import filesystem_broker_options, publishing_to, running_worker, wait_for, worker_env
from tests.factories import LabelFactory, ProjectFactory, VideoFactory

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
BIKES = REPO.parent / "shared" / "data" / "bikes-shots" / "bikes.mp4"
BIKES_SHOTS = 6  # cuts at frames 30, 76, 137, 187, 242 (bikes-shots/shots.json)
READY = "#project-page[data-ready]"
UNDECODABLE = "The video contains no decodable frames."


@pytest.fixture
def project(transactional_db):
    organization = admin_and_annotator_organization()
    return ProjectFactory(organization=organization, name="Street scenes", description="Bikes, cars and people.")


def project_path(project) -> str:
    return f"/o/{project.organization.slug}/p/{project.pk}/"


@pytest.fixture
def worker(tmp_path, settings, live_server):
    """A real Celery worker on the embedded filesystem broker, sharing the live server's database."""
    log = tmp_path / "worker.log"
    env = worker_env(tmp_path, "filesystem://", settings)
    with publishing_to("filesystem://", filesystem_broker_options(tmp_path)), running_worker(env, log):
        yield log


def test_an_uploaded_video_is_ingested_by_a_worker_and_shows_its_shots(page, project, worker, shots):
    log_in(page, "boss", project_path(project), ready=READY)
    page.get_by_label("Add videos").set_input_files(BIKES)

    row = page.locator(".video", has_text="bikes.mp4")
    row.wait_for()
    # The first answer after the upload: ingest under way, with its stage and percent.
    assert re.search(r"· \d+%", row.locator(".ingest-status").inner_text())
    assert row.locator("progress").is_visible()
    shots(page, "project-ingesting", keep=True)

    wait_for(lambda: Video.objects.get().stage in ("ready", "failed"), timeout=90, log=worker, what="ingest")
    page.wait_for_selector(".video[data-stage=ready] .keyframe-strip img", timeout=15_000)
    assert Video.objects.get().error == ""
    assert row.locator(".ingest-status").inner_text() == "Ready"
    assert row.locator(".video-summary").inner_text().startswith(f"{BIKES_SHOTS} shots · ")
    keyframes = Frame.objects.filter(video=Video.objects.get(), is_keyframe=True).count()
    assert keyframes >= BIKES_SHOTS and row.locator(".video-summary").inner_text().endswith(f"{keyframes} keyframes")
    page.wait_for_function(
        "n => [...document.querySelectorAll('.keyframe-strip img')].filter(i => i.complete && i.naturalWidth).length === n",
        arg=keyframes,
    )
    assert row.locator(".keyframe-strip li.shot-start").count() == BIKES_SHOTS - 1
    assert "10.0 s · 250 frames · 640×272" in row.inner_text()
    shots(page, "project-ready", keep=True)


def test_a_corrupt_video_shows_the_servers_reason_and_leaves_nothing(page, project, shots):
    log_in(page, "boss", project_path(project), ready=READY)
    page.get_by_label("Add videos").set_input_files(
        {"name": "holiday.mp4", "mimeType": "video/mp4", "buffer": b"This is a shopping list, not a video.\n" * 50}
    )
    failed = page.locator(".upload[data-state=failed]", has_text="holiday.mp4")
    failed.wait_for()
    assert "not a video or image we can read" in failed.inner_text()
    assert failed.get_by_role("button", name="Try again").count() == 0  # refused for good: nothing to resume
    assert Video.objects.count() == 0 and Upload.objects.count() == 0
    assert page.locator("#video-list").inner_text() == "No videos yet: add one above."
    shots(page, "project-refused", keep=True)
    failed.get_by_role("button", name="Dismiss").click()
    failed.wait_for(state="detached")


def prepare_upload(page, project, data: bytes, **options) -> None:
    """Make ``window.upload``, a ResumableUpload of ``data`` with ``options`` (chunkBytes,
    retryDelaysMs), which records each offset the server reports in ``window.offsets``."""
    page.evaluate(
        """async ([data, projectId, options]) => {
            const { ResumableUpload } = await import('/static/frontend/project/upload.js');
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const file = new File([bytes], 'bikes.mp4', { type: 'video/mp4' });
            window.offsets = [];
            const onProgress = (offset) => window.offsets.push(offset);
            window.upload = new ResumableUpload(file, { orgPath: 'orgs/acme', projectId, onProgress, ...options });
        }""",
        [base64.b64encode(data).decode(), project.pk, options],
    )


def on_chunks(page, handle) -> list[str]:
    """Route every chunk (PUT) through ``handle(route, sent)``; returns ``sent``, their Content-Ranges."""
    sent = []

    def route_chunk(route):
        if route.request.method != "PUT":
            route.continue_()
            return
        sent.append(route.request.headers["content-range"])
        handle(route, sent)

    page.route("**/api/v1/orgs/acme/uploads/*", route_chunk)
    return sent


def test_the_chunked_upload_resumes_after_dropped_chunks(page, project):
    original, chunk = BIKES.read_bytes(), 128 * 1024
    log_in(page, "boss", project_path(project), ready=READY)

    def drop_some(route, sent):
        if len(sent) == 2:
            route.abort("connectionreset")  # lost on the way: the server never saw it
        elif len(sent) == 4:
            route.fetch()  # the server stores it, but the answer is lost
            route.abort("connectionreset")
        else:
            route.continue_()

    sent = on_chunks(page, drop_some)
    prepare_upload(page, project, original, chunkBytes=chunk)
    video = page.evaluate("window.upload.run()")

    total = len(original)
    ranges = [f"bytes {start}-{min(start + chunk, total) - 1}/{total}" for start in range(0, total, chunk)]
    # The lost chunk is sent again; the one the server kept is not: the uploader asked first.
    assert sent == [ranges[0], ranges[1], ranges[1], ranges[2], ranges[3]]
    assert page.evaluate("window.offsets") == [0, chunk, chunk, 2 * chunk, 3 * chunk, total]
    assert Video.objects.get(pk=video["id"]).file.read() == original
    assert Upload.objects.get().status == UploadStatus.COMPLETE


def test_an_upload_that_gave_up_resumes_when_run_again(page, project):
    original, chunk = BIKES.read_bytes(), 256 * 1024
    log_in(page, "boss", project_path(project), ready=READY)
    # The first chunk arrives; then the network is gone.
    sent = on_chunks(page, lambda route, sent: route.continue_() if len(sent) == 1 else route.abort("internetdisconnected"))
    prepare_upload(page, project, original, chunkBytes=chunk, retryDelaysMs=[20, 20])

    failure = page.evaluate("window.upload.run().catch((error) => [error.constructor.name, error.message])")
    assert failure == ["UploadInterrupted", "The connection dropped after 256 KB of 498 KB; try again to resume."]
    assert len(sent) == 4 and Upload.objects.get().received_bytes == chunk  # one try and two retries of chunk 2

    page.unroute("**/api/v1/orgs/acme/uploads/*")
    video = page.evaluate("window.upload.run()")
    assert Video.objects.get(pk=video["id"]).file.read() == original


def test_images_and_a_dataset_are_added(page, project, shots):
    log_in(page, "boss", project_path(project), ready=READY)
    page.get_by_label("Images (JPEG, PNG…), or one zip of them").set_input_files(
        [{"name": f"still-{n}.jpg", "mimeType": "image/jpeg", "buffer": scene_jpeg(n)} for n in range(2)]
    )
    page.get_by_role("button", name="Add images").click()
    page.get_by_text("Added 2 images to the project.").wait_for()

    page.get_by_label("Format").select_option("yolo")
    archive = {"name": "street.zip", "mimeType": "application/zip", "buffer": yolo_zip()}
    page.get_by_label("The dataset as a zip").set_input_files(archive)
    page.get_by_role("button", name="Import").click()
    # A bulk worker imports it; meanwhile the page follows the import's status.
    page.get_by_text("Waiting for a worker…").wait_for()
    import_run(import_id=ImportJob.objects.get().pk)
    page.get_by_text("Imported 2 images and 2 boxes; 2 new labels.").wait_for()
    assert "b.txt:2 unknown class id 7" in page.locator("#dataset-import details").inner_text()
    # The labels the dataset brought are in the taxonomy at once.
    page.locator("#label-table tr[data-label=person]").wait_for()
    assert Frame.objects.filter(project=project).count() == 4
    page.locator("#dataset-import").scroll_into_view_if_needed()
    shots(page, "project-import", keep=True)


def yolo_zip() -> bytes:
    """Two images with a box each, and one line that names a class the dataset does not have."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("street/classes.txt", "car\nperson\n")
        archive.writestr("street/images/a.jpg", scene_jpeg(3))
        archive.writestr("street/images/b.jpg", scene_jpeg(4))
        archive.writestr("street/labels/a.txt", "0 0.5 0.5 0.25 0.25\n")
        archive.writestr("street/labels/b.txt", "1 0.3 0.3 0.2 0.4\n7 0.5 0.5 0.1 0.1\n")
    return buffer.getvalue()


def test_an_admin_keeps_the_taxonomy(page, project, shots):
    LabelFactory(project=project, name="vehicle", color="#38bdf8")
    LabelFactory(project=project, name="vehicle.car", color="#38bdf8", hotkey="c")
    log_in(page, "boss", project_path(project), ready=READY)

    # A name the server refuses: its reason appears next to the field.
    page.get_by_label("Name").fill("vehicle.car")
    page.get_by_role("button", name="Create label").click()
    error = page.locator("#label-name-error")
    error.wait_for(state="visible")
    page.wait_for_function("document.querySelector('#label-name-error').textContent.includes('already exists')")
    assert page.get_by_label("Name").get_attribute("aria-invalid") == "true"
    page.locator("#label-table").scroll_into_view_if_needed()
    shots(page, "project-label-error", keep=True)

    page.get_by_label("Name").fill("vehicle.bicycle")
    page.get_by_label("Hotkey").fill("b")
    page.get_by_role("button", name="Create label").click()
    page.locator("#label-table tr[data-label='vehicle.bicycle']").wait_for()
    assert error.inner_text() == "" and page.get_by_label("Name").get_attribute("aria-invalid") is None
    assert Label.objects.get(project=project, name="vehicle.bicycle").hotkey == "b"

    page.get_by_role("button", name="Deprecate vehicle.car").click()
    page.get_by_role("button", name="Restore vehicle.car").wait_for()
    assert "Deprecated" in page.locator("#label-table tr[data-label='vehicle.car']").inner_text()
    assert Label.objects.get(project=project, name="vehicle.car").deprecated
    page.locator("#label-table").scroll_into_view_if_needed()
    shots(page, "project-labels", keep=True)


def test_a_failed_ingest_is_explained_and_can_be_run_again(page, project):
    video = VideoFactory(project=project, original_name="street.mp4", stage="failed", error=UNDECODABLE)
    log_in(page, "boss", project_path(project), ready=READY)
    row = page.locator(".video", has_text="street.mp4")
    assert UNDECODABLE in row.inner_text()
    row.get_by_role("button", name="Re-run ingest").click()
    page.locator(".video[data-stage=probing]").wait_for()
    assert row.locator(".ingest-status").inner_text() == "Reading the file · 0%"
    assert not row.locator(".failure").is_visible()
    video.refresh_from_db()
    assert (video.stage, video.error) == ("probing", "")


def test_an_annotator_sees_the_project_but_cannot_change_it(page, project, shots):
    VideoFactory(project=project, original_name="street.mp4", stage="failed", error=UNDECODABLE)
    LabelFactory(project=project, name="person")
    log_in(page, "ann", project_path(project), ready=READY)
    assert page.get_by_role("heading", name="Street scenes").is_visible()
    assert page.locator(".video[data-stage=failed]").inner_text().count(UNDECODABLE) == 1
    assert page.get_by_role("button", name="Re-run ingest").count() == 0
    assert not page.get_by_label("Add videos").is_visible()
    assert not page.get_by_role("heading", name="Images and datasets").is_visible()
    assert not page.get_by_role("button", name="Create label").is_visible()
    assert page.locator("#label-table tr[data-label=person]").is_visible()
    shots(page, "project-read-only", keep=True)
    page.get_by_role("link", name="Open the workspace").click()
    page.wait_for_selector("#workspace[data-ready]")


def test_the_home_page_links_the_project_page_and_the_workspace(page, project, shots):
    log_in(page, "ann", "/", ready="#projects li")
    shots(page, "project-home-list", keep=True)
    assert page.get_by_role("link", name="Label Street scenes").get_attribute("href") == f"{project_path(project)}label/"
    page.get_by_role("link", name="Street scenes", exact=True).click()
    page.wait_for_selector(READY)


def test_admins_see_how_the_project_decides_which_proposals_to_show(strict_page, project, shots):
    page = strict_page  # the project page runs under its own Content-Security-Policy
    from labeller.training.models import ProposalOutcome
    from tests.factories import FrameFactory

    frame = FrameFactory(project=project)
    # A history where high-scoring candidates were kept and low-scoring ones rejected.
    ProposalOutcome.objects.bulk_create(
        ProposalOutcome(
            project=project, frame=frame, source="candidate", score=score / 80, box=[0, 0, 1, 1], shown=True,
            useful=score > 40, label_right=True, box_right=True, decided_at=frame.created_at, chance=0.5,
        )
        for score in range(80)
    )
    log_in(page, "boss", project_path(project), ready=READY)
    section = page.locator("section", has=page.get_by_role("heading", name="Proposals shown to annotators"))
    chart = section.get_by_role("img", name=re.compile("Found in the pixels"))
    chart.wait_for()
    assert "chance of being kept is above" in section.inner_text()
    assert chart.locator("circle").count() == 80 // MIN_PER_BIN  # one point per score bin
    assert "the policy expected 40 to be kept and 39 were (Brier score 0.25:" in section.inner_text()
    assert "then moved by the box's size and shape, and by how much of it a followed box covers" in (
        section.inner_text()
    )
    shots(page, "project-proposal-policy", keep=True)

    log_in(page, "ann", project_path(project), ready=READY)
    assert not page.get_by_role("heading", name="Proposals shown to annotators").is_visible()
