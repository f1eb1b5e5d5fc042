"""The app's pages run under their own Content-Security-Policy: no inline script, no eval,
nothing from another origin. Any violation the browser reports fails these tests."""

import pytest

from tests.browser.workspace import log_in

pytestmark = pytest.mark.browser


def test_the_workspace_opens_and_shows_a_frame_under_the_policy(strict_page, labelling_project):
    page = strict_page
    log_in(page, "ann", labelling_project.workspace_path)
    page.keyboard.press("n")
    page.locator("#frame-caption", has_text="frame 0").wait_for()
    assert page.evaluate("document.querySelector('canvas').width") > 0


def test_the_api_docs_page_loads_swagger_ui_from_our_own_static_files(strict_page, labelling_project):
    page = strict_page
    log_in(page, "ann", "/api/docs/", ready="#swagger-ui")
    page.locator(".swagger-ui .info .title", has_text="Labeller API").wait_for()
