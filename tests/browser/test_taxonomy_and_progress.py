"""The project page's taxonomy and progress: an admin renames, moves and merges labels and
sees the boxes follow in the chart of confirmed boxes per label."""

import pytest
from django.utils import timezone

from labeller.annotations.models import Annotation, AnnotationEvent, Label
from labeller.media.models import FrameStatus
from labeller.tenants.models import Role
from tests.browser.workspace import log_in
from tests.factories import (
    AnnotationFactory,
    FrameFactory,
    LabelFactory,
    MembershipFactory,
    OrganizationFactory,
    ProjectFactory,
    UserFactory,
    VideoFactory,
)

pytestmark = pytest.mark.browser

READY = "#project-page[data-ready]"


@pytest.fixture
def project(transactional_db):
    organization = OrganizationFactory(slug="acme", name="Acme")
    MembershipFactory(user=UserFactory(username="boss"), organization=organization, role=Role.ADMIN)
    project = ProjectFactory(organization=organization, name="Pets")
    video = VideoFactory(project=project, original_name="garden.mp4")
    frames = [FrameFactory(project=project, video=video, index=n) for n in range(4)]
    for frame in frames[:3]:
        frame.status, frame.completed_at = FrameStatus.COMPLETE, timezone.now()
        frame.save()
    labels = {
        name: LabelFactory(project=project, name=name)
        for name in ["animal", "animal.cat", "animal.kitty", "animal.kitty.tabby", "animal.dog", "pet"]
    }
    for name, count in [("animal.cat", 3), ("animal.kitty", 2), ("animal.dog", 1)]:
        for n in range(count):
            AnnotationFactory(frame=frames[n % 3], label=labels[name])
    return project


def bar(page, name: str):
    return page.locator(f"#progress-panel .label-chart g[data-label='{name}']")


def wait_for_count(page, name: str, count: int) -> None:
    page.locator(f"#progress-panel .label-chart g[data-label='{name}'][data-count='{count}']").wait_for()


def open_editor(page, name: str):
    page.get_by_role("button", name=f"Edit {name}", exact=True).click()
    return page.locator("tr.label-editor")


def test_rename_move_and_merge_and_the_boxes_follow(strict_page, project, shots):
    page = strict_page
    log_in(page, "boss", f"/o/acme/p/{project.pk}/", ready=READY)
    page.locator("#progress-panel[data-loads]").wait_for()
    assert page.locator("[data-progress=project] .progress-figure").inner_text() == "3 of 4 frames · 75 %"
    wait_for_count(page, "animal.kitty", 2)
    names = page.locator("#progress-panel .label-chart g").evaluate_all("gs => gs.map(g => g.dataset.label)")
    assert names[:3] == ["animal.cat", "animal.kitty", "animal.dog"]  # most boxes first, then the tail

    # Rename: the label keeps its boxes under its new name.
    editor = open_editor(page, "animal.kitty")
    editor.get_by_label("New name of animal.kitty").fill("kitten")
    editor.get_by_role("button", name="Save").click()
    page.locator("#label-status", has_text="Renamed animal.kitty to animal.kitten").wait_for()
    wait_for_count(page, "animal.kitten", 2)
    assert bar(page, "animal.kitty").count() == 0

    # Move: under another parent.
    editor = open_editor(page, "animal.dog")
    editor.get_by_label("Parent of animal.dog").select_option(label="pet")
    editor.get_by_role("button", name="Save").click()
    page.locator("#label-status", has_text="Moved animal.dog to pet.dog").wait_for()
    wait_for_count(page, "pet.dog", 1)

    # Merge, after a confirmation: the boxes of one label become the other's.
    editor = open_editor(page, "animal.kitten")
    editor.get_by_label("Merge animal.kitten into").select_option(label="animal.cat")
    editor.locator(".merge-preview", has_text="moves 1 sub-label under animal.cat").wait_for()
    dialogs = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    editor.get_by_role("button", name="Merge").click()
    merged = "Merged animal.kitten into animal.cat: 2 boxes moved; 1 sub-label moved"
    page.locator("#label-status", has_text=merged).wait_for()
    assert "Every box of animal.kitten becomes animal.cat" in dialogs[0]
    assert "moves 1 sub-label under animal.cat" in dialogs[0]
    wait_for_count(page, "animal.cat", 5)
    assert bar(page, "animal.kitten").count() == 0
    assert page.locator("#label-table tr[data-label='animal.kitten']").count() == 0
    shots(page, "taxonomy-merged", keep=True)

    cat = Label.objects.get(project=project, name="animal.cat")
    assert Annotation.objects.filter(project=project, label=cat).count() == 5
    assert sorted(Label.objects.filter(project=project).values_list("name", flat=True)) == [
        "animal",
        "animal.cat",
        "animal.cat.tabby",
        "pet",
        "pet.dog",
    ]
    assert AnnotationEvent.objects.filter(project=project, action="updated", after__label_id=cat.pk).count() == 2

    # A label in use is not deleted: the server's reason is shown.
    editor = open_editor(page, "animal.cat")
    page.once("dialog", lambda dialog: dialog.accept())
    editor.get_by_role("button", name="Delete").click()
    page.locator("#label-status", has_text="is in use").wait_for()
    assert Label.objects.filter(pk=cat.pk).exists()
