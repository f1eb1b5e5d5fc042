"""The annotator's day in the browser: open, draw, label, decide on proposals, undo, complete."""

import pytest

from labeller.annotations.models import Annotation, AnnotationEvent, AnnotationSource, AnnotationStatus
from labeller.media.models import Frame, FrameStatus
from labeller.media.selectors import SKIP_PENALTY
from tests.browser.workspace import (
    click_image,
    drag_box,
    log_in,
    open_next_frame,
    pick_label,
    selection_text,
    wait_until_saved,
)
from tests.factories import AnnotationFactory

pytestmark = pytest.mark.browser


def proposal(frame, label, box, score, suggestions, source=AnnotationSource.MODEL):
    x1, y1, x2, y2 = box
    return AnnotationFactory(
        frame=frame,
        label=label,
        x1=x1,
        y1=y1,
        x2=x2,
        y2=y2,
        status=AnnotationStatus.PROPOSED,
        source=source,
        score=score,
        suggestions=[{"label_id": label.pk, "score": value} for label, value in suggestions],
        author=None,
    )


def history(annotation_id):
    return [(event.action, event.actor.username) for event in AnnotationEvent.objects.filter(annotation_id=annotation_id)]


def test_annotator_labels_a_frame_from_the_keyboard(page, labelling_project, shots):
    labels = labelling_project.labels
    dessert, soup, coffee, car = (labels[name] for name in ["food.dish.dessert", "food.dish.soup", "food.drink.coffee", "vehicle.car"])
    keyframe, second = labelling_project.frames[:2]
    p1 = proposal(keyframe, dessert, (40, 40, 160, 120), 0.92, [(dessert, 0.92), (soup, 0.05), (coffee, 0.03)])
    p2 = proposal(keyframe, soup, (300, 60, 420, 160), 0.55, [(soup, 0.55), (dessert, 0.30), (coffee, 0.15)])
    p3 = proposal(keyframe, coffee, (460, 200, 600, 320), 0.40, [(coffee, 0.40), (soup, 0.35)], AnnotationSource.PROPAGATION)

    log_in(page, "ann", labelling_project.workspace_path)
    open_next_frame(page, expected_boxes=3)
    shots(page, "workspace-proposals", keep=True)

    # Draw a box; the picker opens at once and finds food.dish.dessert from "des".
    drag_box(page, 60, 200, 200, 320)
    page.get_by_role("combobox").wait_for()
    page.get_by_role("combobox").fill("des")
    shots(page, "workspace-picker", keep=True)
    page.keyboard.press("Enter")
    wait_until_saved(page)

    # Decide on the proposals: accept, relabel with a number key, reject.
    click_image(page, 100, 80)
    assert "food.dish.dessert" in selection_text(page) and "Proposal" in selection_text(page)
    page.keyboard.press("a")
    assert "food.dish.soup" in selection_text(page)  # the next proposal is selected for you
    page.keyboard.press("2")
    assert "food.drink.coffee" in selection_text(page)
    page.keyboard.press("r")
    wait_until_saved(page)
    page.keyboard.press("Control+z")
    assert "cannot be undone" in page.locator("#notice").inner_text()

    # Move the drawn box 3 px with the keyboard, undo, redo.
    click_image(page, 130, 260)
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    wait_until_saved(page)
    page.keyboard.press("Control+z")
    wait_until_saved(page)
    assert "[60, 200, 200, 320]" in selection_text(page)
    page.keyboard.press("Control+Shift+z")
    wait_until_saved(page)
    assert "[63, 200, 203, 320]" in selection_text(page)

    # Draw another box, undo it (deleted on the server), redo it (created again).
    drag_box(page, 450, 30, 600, 140)
    pick_label(page, "car")
    wait_until_saved(page)
    page.keyboard.press("Control+z")
    wait_until_saved(page)
    page.wait_for_function("document.querySelector('#frame-caption').textContent.includes('3 boxes')")
    page.keyboard.press("Control+Shift+z")
    wait_until_saved(page)
    page.wait_for_function("document.querySelector('#frame-caption').textContent.includes('4 boxes')")
    shots(page, "workspace-labelled", keep=True)

    page.keyboard.press("Space")
    page.wait_for_function("document.querySelector('#frame-caption').textContent.includes('frame 1')")
    wait_until_saved(page)
    shots(page, "workspace-next-frame")

    # Step back through the shot with ← (nothing selected): the frame just finished, marked complete.
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("document.querySelector('#frame-caption').textContent.includes('frame 0 · keyframe · complete')")
    assert page.get_by_role("button", name="Frame 0, complete, keyframe").is_visible()

    # What the server has: exactly these boxes, by this annotator, with their history.
    keyframe.refresh_from_db()
    assert keyframe.status == FrameStatus.COMPLETE and keyframe.completed_by == labelling_project.annotator
    second.refresh_from_db()
    assert second.status == FrameStatus.IN_PROGRESS and second.assigned_to == labelling_project.annotator
    boxes = {a.pk: a for a in Annotation.objects.filter(frame=keyframe)}
    drawn = [a for a in boxes.values() if a.source == AnnotationSource.HUMAN]
    assert sorted((a.label.name, a.x1, a.y1, a.x2, a.y2) for a in drawn) == [
        ("food.dish.dessert", 63.0, 200.0, 203.0, 320.0),
        ("vehicle.car", 450.0, 30.0, 600.0, 140.0),
    ]
    assert all(a.status == AnnotationStatus.CONFIRMED and a.author.username == "ann" for a in drawn)
    assert len(boxes) == 5  # three proposals and two drawn boxes; the undone one is gone
    p1.refresh_from_db(), p2.refresh_from_db(), p3.refresh_from_db()
    assert (p1.status, p1.label, p1.source) == (AnnotationStatus.CONFIRMED, dessert, AnnotationSource.MODEL)
    assert (p2.status, p2.label) == (AnnotationStatus.CONFIRMED, dessert)
    assert p3.status == AnnotationStatus.REJECTED

    moved = next(a for a in drawn if a.label == dessert)
    car_box = next(a for a in drawn if a.label == car)
    assert history(moved.pk) == [("created", "ann")] + [("updated", "ann")] * 3
    assert history(p1.pk) == [("confirmed", "ann")]
    assert history(p2.pk) == [("confirmed", "ann")]
    p2_event = AnnotationEvent.objects.get(annotation_id=p2.pk)
    assert (p2_event.before["label_id"], p2_event.after["label_id"]) == (soup.pk, dessert.pk)
    assert history(p3.pk) == [("rejected", "ann")]
    assert history(car_box.pk) == [("created", "ann")]
    undone = AnnotationEvent.objects.filter(frame_id=keyframe.pk).exclude(annotation_id__in=boxes).values_list("annotation_id", flat=True)
    assert len(set(undone)) == 1 and history(undone[0]) == [("created", "ann"), ("deleted", "ann")]
    assert AnnotationEvent.objects.filter(frame_id=keyframe.pk).count() == 10


def test_skipping_a_frame_gives_it_back_and_opens_another(page, labelling_project, shots):
    first, second = labelling_project.frames[:2]
    # A skip sinks a frame below every frame not skipped, keyframes included; give the next
    # one the same rank as a keyframe so the queue's choice is plain.
    Frame.objects.filter(pk=second.pk).update(is_keyframe=True)
    log_in(page, "ann", labelling_project.workspace_path)
    open_next_frame(page, expected_boxes=0)
    page.wait_for_function("document.querySelector('#frame-caption').textContent.includes('frame 0 · keyframe · in progress')")

    page.keyboard.press("n")  # a frame you hold is finished or skipped, not left behind
    assert "or S to skip it" in page.locator("#notice").inner_text()
    page.keyboard.press("s")
    page.wait_for_function("document.querySelector('#frame-caption').textContent.includes('frame 1 · keyframe · in progress')")
    shots(page, "workspace-skipped", keep=True)

    first.refresh_from_db(), second.refresh_from_db()
    assert (first.status, first.assigned_to, first.priority) == (FrameStatus.NEW, None, -SKIP_PENALTY)
    assert (second.status, second.assigned_to) == (FrameStatus.IN_PROGRESS, labelling_project.annotator)
    assert page.get_by_role("button", name="Frame 0, new, keyframe").is_visible()  # the filmstrip shows it free again


def complete_requests(page) -> list:
    sent = []
    page.on("request", lambda request: sent.append(request.url) if request.url.endswith("/complete") else None)
    return sent


def test_an_annotator_completes_only_the_frame_the_queue_gave_them(page, labelling_project):
    first, second = labelling_project.frames[:2]
    sent = complete_requests(page)
    log_in(page, "ann", labelling_project.workspace_path)
    open_next_frame(page, expected_boxes=0)
    wait_until_saved(page)  # the claim is in

    # Step to the next frame of the shot: nobody holds it, so Space must not complete it.
    page.get_by_role("button", name="Frame 1, new").wait_for()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("document.querySelector('#frame-caption').textContent.includes('frame 1')")
    page.keyboard.press("Space")
    page.locator("#notice").wait_for()
    assert "press N" in page.locator("#notice").inner_text()
    assert "frame 1" in page.locator("#frame-caption").inner_text()  # still on it
    wait_until_saved(page)
    assert sent == []
    second.refresh_from_db()
    assert (second.status, second.completed_by) == (FrameStatus.NEW, None)

    # Back on the frame they hold, Space completes it.
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("document.querySelector('#frame-caption').textContent.includes('frame 0 · keyframe')")
    page.keyboard.press("Space")
    page.wait_for_function("document.querySelector('#frame-caption').textContent.includes('frame 1')")
    wait_until_saved(page)
    first.refresh_from_db()
    assert (first.status, first.completed_by) == (FrameStatus.COMPLETE, labelling_project.annotator)
    assert len(sent) == 1


def test_a_reviewer_may_complete_a_frame_they_stepped_to(page, labelling_project):
    second = labelling_project.frames[1]
    log_in(page, "rev", labelling_project.workspace_path)
    open_next_frame(page, expected_boxes=0)
    page.get_by_role("button", name="Frame 1, new").wait_for()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("document.querySelector('#frame-caption').textContent.includes('frame 1')")
    page.keyboard.press("Space")
    page.wait_for_function("document.querySelector('#frame-caption').textContent.includes('frame 0')")
    wait_until_saved(page)
    second.refresh_from_db()
    assert (second.status, second.completed_by) == (FrameStatus.COMPLETE, labelling_project.reviewer)
