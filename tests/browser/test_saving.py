"""Saving never loses work and never overwrites someone else's silently."""

import json

import pytest

from labeller.annotations import services
from labeller.annotations.models import Annotation, AnnotationEvent, AnnotationSource, AnnotationStatus
from labeller.tenants.models import Role
from tests.browser.workspace import click_image, drag_box, log_in, open_next_frame, pick_label, selection_text, wait_until_saved, wait_until_synced
from tests.factories import AnnotationFactory

pytestmark = pytest.mark.browser


def test_a_conflicting_edit_is_shown_and_the_annotator_chooses(page, labelling_project, shots):
    frame = labelling_project.frames[0]
    labels = labelling_project.labels
    box = AnnotationFactory(
        frame=frame, label=labels["food.dish.dessert"], x1=100, y1=100, x2=200, y2=200, author=labelling_project.annotator
    )
    reviewer = labelling_project.reviewer
    log_in(page, "ann", labelling_project.workspace_path)
    open_next_frame(page, expected_boxes=1)
    wait_until_synced(page, frame.pk)
    click_image(page, 150, 150)

    # Meanwhile a reviewer moves the box in another session.
    box = services.annotation_update(
        annotation=box, actor=reviewer, actor_role=Role.REVIEWER, expected_version=1, box=services.Box(120, 110, 230, 210)
    )
    page.keyboard.press("ArrowRight")
    dialog = page.get_by_role("dialog", name="Someone else changed this box")
    dialog.wait_for()
    assert "[120, 110, 230, 210]" in dialog.locator(".theirs").inner_text()
    assert "[101, 100, 201, 200]" in dialog.locator(".mine").inner_text()
    assert "waiting for your choice" in page.locator("#save-status").inner_text()
    shots(page, "workspace-conflict", keep=True)
    dialog.get_by_role("button", name="Keep theirs").click()
    wait_until_saved(page)
    assert "[120, 110, 230, 210]" in selection_text(page)
    box.refresh_from_db()
    assert (box.version, box.x1, box.y1) == (2, 120, 110)

    # Again, and this time the annotator keeps theirs... of the label, and their own move.
    box = services.annotation_update(
        annotation=box, actor=reviewer, actor_role=Role.REVIEWER, expected_version=2, label=labels["food.dish.soup"]
    )
    page.keyboard.press("ArrowDown")
    dialog.wait_for()
    dialog.get_by_role("button", name="Keep mine").click()
    wait_until_saved(page)
    box.refresh_from_db()
    assert (box.version, box.x1, box.y1, box.x2, box.y2, box.label) == (4, 120, 111, 230, 211, labels["food.dish.soup"])
    actors = list(AnnotationEvent.objects.filter(annotation_id=box.pk).values_list("actor__username", "action"))
    assert actors == [("rev", "updated"), ("rev", "updated"), ("ann", "updated")]


def test_a_save_while_the_server_is_down_is_retried_and_saved_once(page, labelling_project, shots):
    frame = labelling_project.frames[0]
    failures = {"left": 2}

    def flaky(route):
        # The first two creates fail: one never reaches the server, one meets a 503.
        if route.request.method == "POST" and failures["left"]:
            failures["left"] -= 1
            if failures["left"] == 1:
                route.abort("connectionfailed")
            else:
                route.fulfill(status=503, content_type="application/json", body=json.dumps({"detail": "down"}))
            return
        route.continue_()

    log_in(page, "ann", labelling_project.workspace_path)
    open_next_frame(page, expected_boxes=0)
    page.route("**/api/v1/orgs/*/frames/*/annotations/*", flaky)
    drag_box(page, 200, 100, 320, 220)
    pick_label(page, "soup")

    page.wait_for_function("document.querySelector('#save-status').textContent.includes('retrying')")
    assert "Unsaved changes" in page.locator("#save-status").inner_text()
    kept = page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('labeller:unsaved')).map(k => localStorage[k])")
    assert len(kept) == 1 and json.loads(kept[0])["ops"][0]["type"] == "create"
    shots(page, "workspace-retrying", keep=True)

    wait_until_saved(page)
    assert failures["left"] == 0
    saved = Annotation.objects.get(frame=frame)
    assert (saved.x1, saved.y1, saved.x2, saved.y2, saved.label.name) == (200, 100, 320, 220, "food.dish.soup")
    assert (saved.status, saved.source, saved.author.username) == (AnnotationStatus.CONFIRMED, AnnotationSource.HUMAN, "ann")
    assert list(AnnotationEvent.objects.filter(frame_id=frame.pk).values_list("action", flat=True)) == ["created"]
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('labeller:unsaved')).length") == 0


def test_a_create_whose_answer_is_lost_is_retried_with_its_key_and_saved_once(page, labelling_project):
    frame = labelling_project.frames[0]
    sent_keys = []

    def answer_lost(route):
        # The first create reaches the server and is saved, then the connection breaks before
        # the answer arrives; the retry must carry the same key and get that box back.
        if route.request.method == "POST":
            sent_keys.append(route.request.headers.get("idempotency-key"))
            if len(sent_keys) == 1:
                route.fetch()
                route.abort("connectionfailed")
                return
        route.continue_()

    log_in(page, "ann", labelling_project.workspace_path)
    open_next_frame(page, expected_boxes=0)
    page.route("**/api/v1/orgs/*/frames/*/annotations/", answer_lost)
    drag_box(page, 200, 100, 320, 220)
    pick_label(page, "soup")
    wait_until_saved(page)

    assert len(sent_keys) == 2 and sent_keys[0] and sent_keys[0] == sent_keys[1]
    saved = Annotation.objects.get(frame=frame)
    assert saved.label.name == "food.dish.soup"
    assert list(AnnotationEvent.objects.filter(frame_id=frame.pk).values_list("action", flat=True)) == ["created"]

    # The box the retry got back is the one on the server: a later change reaches it.
    page.keyboard.press("Delete")
    wait_until_saved(page)
    assert not Annotation.objects.filter(frame=frame).exists()
