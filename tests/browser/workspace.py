"""Driving the workspace page the way an annotator does."""

FRAME_WIDTH, FRAME_HEIGHT = 640, 360  # the test frames: big enough to draw on
FIT_MARGIN = 16  # as in viewport.js


def log_in(page, username: str, next_path: str, ready: str = "#workspace[data-ready]") -> None:
    """Log in through the form and wait until the page at ``next_path`` says it is ``ready``."""
    page.goto(f"/login/?next={next_path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("password")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"**{next_path}")
    page.wait_for_selector(ready)


def open_next_frame(page, expected_boxes: int) -> None:
    page.keyboard.press("n")
    page.wait_for_function(
        "n => document.querySelector('#frame-caption').textContent.includes(`${n} boxes`)", arg=expected_boxes
    )


def wait_until_synced(page, frame_id: int) -> None:
    """Until the workspace has taken in the server's state of the frame after opening it: an edit
    made elsewhere before then is simply shown, not a conflict."""
    page.wait_for_function(
        "id => document.querySelector('#frame-caption').dataset.syncedFrame === String(id)", arg=frame_id
    )


def screen_point(page, x: float, y: float) -> tuple[float, float]:
    """Where image pixel (x, y) is on the page, with the frame fitted to the window (as on opening)."""
    canvas = page.locator("#box-layer").bounding_box()
    scale = min((canvas["width"] - 2 * FIT_MARGIN) / FRAME_WIDTH, (canvas["height"] - 2 * FIT_MARGIN) / FRAME_HEIGHT)
    offset_x = (canvas["width"] - FRAME_WIDTH * scale) / 2
    offset_y = (canvas["height"] - FRAME_HEIGHT * scale) / 2
    return canvas["x"] + offset_x + x * scale, canvas["y"] + offset_y + y * scale


def drag_box(page, x1: float, y1: float, x2: float, y2: float) -> None:
    page.mouse.move(*screen_point(page, x1, y1))
    page.mouse.down()
    page.mouse.move(*screen_point(page, (x1 + x2) / 2, (y1 + y2) / 2), steps=4)
    page.mouse.move(*screen_point(page, x2, y2), steps=4)
    page.mouse.up()


def click_image(page, x: float, y: float) -> None:
    page.mouse.click(*screen_point(page, x, y))


def pick_label(page, query: str) -> None:
    """With the picker open: type part of the name and take the best match."""
    search = page.get_by_role("combobox")
    search.wait_for()
    search.fill(query)
    page.keyboard.press("Enter")
    page.wait_for_selector("#picker-dialog", state="hidden")


def wait_until_saved(page) -> None:
    page.wait_for_function("document.querySelector('#save-status').textContent === 'All changes saved'")


def selection_text(page) -> str:
    return page.locator("#selection-details").inner_text()
