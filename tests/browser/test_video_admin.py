"""Videos on the project page (admins): delete after a confirmation, files included; re-run
the ingest with other keyframe settings."""

from pathlib import Path

import pytest
from django.conf import settings

from labeller.media.models import Frame, IngestStage, Video
from labeller.projects.models import Project
from labeller.tenants.models import Role
from tests.browser.workspace import log_in
from tests.factories import (
    FrameFactory,
    MembershipFactory,
    OrganizationFactory,
    ProjectFactory,
    ShotFactory,
    UserFactory,
    VideoFactory,
)

pytestmark = pytest.mark.browser

READY = "#project-page[data-ready]"


@pytest.fixture
def project(transactional_db):
    organization = OrganizationFactory(slug="acme", name="Acme")
    MembershipFactory(user=UserFactory(username="boss"), organization=organization, role=Role.ADMIN)
    project = ProjectFactory(organization=organization, name="Street")
    for name in ("keep.mp4", "drop.mp4"):
        video = VideoFactory(project=project, original_name=name)
        shot = ShotFactory(video=video)
        FrameFactory(project=project, video=video, shot=shot, is_keyframe=True)
    return project


def stored(name: str) -> bool:
    return (Path(settings.MEDIA_ROOT) / name).exists()


def test_delete_a_video_after_confirming_and_its_files_go(strict_page, project):
    page = strict_page
    drop = Video.objects.get(original_name="drop.mp4")
    files = [drop.file.name] + [name for f in Frame.objects.filter(video=drop) for name in (f.image.name, f.thumbnail.name)]
    assert all(stored(name) for name in files)
    log_in(page, "boss", f"/o/acme/p/{project.pk}/", ready=READY)

    # Dismissing the confirmation deletes nothing.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Delete drop.mp4").click()
    assert Video.objects.filter(pk=drop.pk).exists()

    questions = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Delete drop.mp4").click()
    page.locator("#page-notice", has_text="Deleted drop.mp4").wait_for()
    assert "cannot be undone" in questions[0]
    assert page.locator(".video", has_text="drop.mp4").count() == 0
    assert page.locator(".video", has_text="keep.mp4").is_visible()
    assert not Video.objects.filter(pk=drop.pk).exists() and not Frame.objects.filter(video_id=drop.pk).exists()
    assert not any(stored(name) for name in files)


def test_re_run_the_ingest_with_other_keyframe_settings(strict_page, project):
    page = strict_page
    log_in(page, "boss", f"/o/acme/p/{project.pk}/", ready=READY)
    row = page.locator(".video", has_text="keep.mp4")
    row.get_by_role("button", name="Keyframe settings…").click()
    row.get_by_label("Every Nth frame instead (0: off) (keep.mp4)").fill("5")
    row.get_by_label("at most (keep.mp4)").fill("3")
    row.get_by_role("button", name="Ingest again with these settings").click()
    page.locator(".video[data-stage=probing]", has_text="keep.mp4").wait_for()

    project.refresh_from_db()
    assert (project.every_nth_frame, project.keyframes_max_per_shot) == (5, 3)
    assert Video.objects.get(original_name="keep.mp4").stage == IngestStage.PROBING
    assert Project.objects.get(pk=project.pk).version == 2
