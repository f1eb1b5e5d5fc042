"""The workspace's pure modules, run as ES modules in Chromium (no npm, no build step)."""

import pytest

from tests.browser.workspace import log_in

pytestmark = pytest.mark.browser

MODULES = "/static/frontend/workspace"


def run_module(page, module: str, body: str):
    """Import ``module`` in the page as ``m`` and return what ``body`` evaluates to."""
    return page.evaluate(f"async () => {{ const m = await import('{MODULES}/{module}'); return {body}; }}")


LABELS = """[
  {id: 1, name: 'food.dish.dessert', hotkey: '', deprecated: false},
  {id: 2, name: 'food.dish.soup', hotkey: '', deprecated: false},
  {id: 3, name: 'furniture.desk', hotkey: '', deprecated: false},
  {id: 4, name: 'design.poster', hotkey: '', deprecated: false},
  {id: 5, name: 'vehicle.car', hotkey: 'd', deprecated: false},
  {id: 6, name: 'food.dish.dessert-old', hotkey: '', deprecated: true},
]"""


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("des", ["furniture.desk", "food.dish.dessert", "design.poster"], id="leaf-prefix-first"),
        pytest.param("DISH", ["food.dish.soup", "food.dish.dessert"], id="segment-prefix-any-case"),
        pytest.param("sert", ["food.dish.dessert"], id="substring-not-deprecated"),
        pytest.param("dish des", ["food.dish.dessert"], id="spaces-stand-for-dots"),
        pytest.param("food.di", ["food.dish.soup", "food.dish.dessert"], id="dotted-prefix"),
        pytest.param(
            "d",
            ["vehicle.car", "furniture.desk", "food.dish.dessert", "food.dish.soup", "design.poster"],
            id="hotkey-then-leaf-then-segment",
        ),
        pytest.param("zzz", [], id="no-match"),
    ],
)
def test_search_labels(page, query, expected):
    page.goto("/login/")
    names = run_module(page, "picker.js", f"m.searchLabels({LABELS}, {query!r}).map(l => l.name)")
    assert names == expected


@pytest.mark.parametrize(
    ("event", "action"),
    [
        pytest.param("{key: 'n'}", "nextFrame", id="n"),
        pytest.param("{key: 's'}", "skipFrame", id="s"),
        pytest.param("{key: 'A', shiftKey: true}", "acceptAbove", id="shift-a"),
        pytest.param("{key: 'a'}", "accept", id="a"),
        pytest.param("{key: '?', shiftKey: true}", "help", id="question-mark"),
        pytest.param("{key: 'z', ctrlKey: true}", "undo", id="ctrl-z"),
        pytest.param("{key: 'Z', ctrlKey: true, shiftKey: true}", "redo", id="ctrl-shift-z"),
        pytest.param("{key: 'ArrowLeft', altKey: true}", "resize", id="alt-arrow"),
        pytest.param("{key: 'ArrowUp', shiftKey: true}", "nudgeFar", id="shift-arrow"),
        pytest.param("{key: 'Delete'}", "reject", id="delete"),
        pytest.param("{key: 'q'}", None, id="unbound"),
    ],
)
def test_shortcut_table(page, event, action):
    page.goto("/login/")
    assert run_module(page, "keys.js", f"m.actionFor(new KeyboardEvent('keydown', {event}))") == action


def test_box_geometry_stays_inside_the_frame(page):
    page.goto("/login/")
    assert run_module(page, "geometry.js", "m.boxFromCorners(300, 50, -20, 400, 640, 360)") == [0, 50, 300, 360]
    assert run_module(page, "geometry.js", "m.translateBox([600, 10, 630, 40], 25, -30, 640, 360)") == [610, 0, 640, 30]
    assert run_module(page, "geometry.js", "m.growBox([10, 10, 20, 20], -15, 5, 640, 360)") == [10, 10, 12, 25]


def test_help_overlay_lists_every_shortcut(page, labelling_project, shots):
    log_in(page, "ann", labelling_project.workspace_path)
    page.keyboard.press("?")
    help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    help_dialog.wait_for()
    text = help_dialog.inner_text()
    for expected in ["Open the next frame of your queue", "Skip the frame", "Shift+A", "Ctrl+Shift+Z", "Space / Enter", "Space + drag"]:
        assert expected in text
    shots(page, "workspace-help", keep=True)
    page.keyboard.press("Escape")
    help_dialog.wait_for(state="hidden")
