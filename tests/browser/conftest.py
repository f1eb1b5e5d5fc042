"""Browser tests: Playwright drives Debian's Chromium against a live server of the app."""

import io
import os
import random
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from PIL import Image, ImageDraw

from labeller.tenants.models import Role
from tests.browser.workspace import FRAME_HEIGHT, FRAME_WIDTH
from tests.factories import (
    FrameFactory,
    LabelFactory,
    MembershipFactory,
    OrganizationFactory,
    ProjectFactory,
    ShotFactory,
    UserFactory,
    VideoFactory,
)

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# are still plain synchronous ones.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 860}
SHOTS_DIR = Path("/tmp/ui-shots")


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            f"Debian's Chromium is not installed at {CHROMIUM}; install it with `apt-get install chromium` "
            "(the browser test command does this).",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def app_loaded():
    """Import every view once, up front: the URLconf pulls in the ML stack, which takes seconds
    and would otherwise land on the first page load inside a browser timeout."""
    from django.urls import get_resolver

    get_resolver().url_patterns


@contextmanager
def _opened_page(browser, live_server, *, bypass_csp: bool):
    """A fresh browser context's page; JavaScript errors and CSP violations fail the test."""
    context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url, bypass_csp=bypass_csp)
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if "Content Security Policy" in message.text else None)
    yield page
    # Stop the page's timers and requests (the workspace polls while proposals are rebuilt)
    # before the test database is flushed: a request still running then would deadlock it.
    page.goto("about:blank")
    context.close()
    time.sleep(0.3)
    assert not errors, f"JavaScript errors or CSP violations in the page: {errors}"


@pytest.fixture
def page(browser, live_server, app_loaded, transactional_db):
    # Playwright compiles wait_for_function's string predicates inside the page, which the
    # app's Content-Security-Policy rightly forbids (no 'unsafe-eval'); `strict_page` keeps
    # the policy and shows the app itself runs under it.
    with _opened_page(browser, live_server, bypass_csp=True) as page:
        yield page


@pytest.fixture
def strict_page(browser, live_server, app_loaded, transactional_db):
    """A page under the app's own Content-Security-Policy: any violation fails the test."""
    with _opened_page(browser, live_server, bypass_csp=False) as page:
        yield page


@pytest.fixture
def shots(request):
    """Where a test saves its screenshots: a temporary folder, plus /tmp/ui-shots for a person to look at."""
    folder = Path(tempfile.mkdtemp(prefix="ui-shots-"))
    SHOTS_DIR.mkdir(exist_ok=True)

    def take(page, name: str, keep: bool = False) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path))
        if keep:
            (SHOTS_DIR / f"{name}.png").write_bytes(path.read_bytes())
        return path

    return take


def scene_jpeg(seed: int, width: int = FRAME_WIDTH, height: int = FRAME_HEIGHT) -> bytes:
    """A frame with some shapes on it, so screenshots look like something."""
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), (40 + seed * 9 % 60, 60, 80))
    draw = ImageDraw.Draw(image)
    for _ in range(14):
        x, y = rng.randrange(width), rng.randrange(height)
        w, h = rng.randrange(20, 140), rng.randrange(20, 110)
        colour = tuple(rng.randrange(60, 255) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x, y, x + w, y + h], fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def admin_and_annotator_organization():
    """The organisation "acme" with an admin "boss" and an annotator "ann" (password "password")."""
    organization = OrganizationFactory(slug="acme", name="Acme")
    for username, role in [("boss", Role.ADMIN), ("ann", Role.ANNOTATOR)]:
        MembershipFactory(user=UserFactory(username=username), organization=organization, role=role)
    return organization


@dataclass
class LabellingProject:
    organization: object
    project: object
    annotator: object
    reviewer: object
    labels: dict
    frames: list = field(default_factory=list)

    @property
    def workspace_path(self) -> str:
        return f"/o/{self.organization.slug}/p/{self.project.pk}/label/"


@pytest.fixture
def labelling_project(transactional_db) -> LabellingProject:
    """An annotator, a small taxonomy, and one shot of four 640x360 frames (the first a keyframe)."""
    organization = OrganizationFactory(slug="acme")
    annotator = UserFactory(username="ann")
    reviewer = UserFactory(username="rev")
    MembershipFactory(user=annotator, organization=organization, role=Role.ANNOTATOR)
    MembershipFactory(user=reviewer, organization=organization, role=Role.REVIEWER)
    project = ProjectFactory(organization=organization, name="Kitchen footage")
    labels = {
        name: LabelFactory(project=project, name=name, color=color)
        for name, color in [
            ("food.dish.dessert", "#f472b6"),
            ("food.dish.soup", "#f59e0b"),
            ("food.drink.coffee", "#a3e635"),
            ("vehicle.car", "#38bdf8"),
        ]
    }
    video = VideoFactory(project=project, width=FRAME_WIDTH, height=FRAME_HEIGHT)
    shot = ShotFactory(video=video, start_frame=0, end_frame=3)
    frames = [
        FrameFactory(
            project=project,
            video=video,
            shot=shot,
            index=index,
            width=FRAME_WIDTH,
            height=FRAME_HEIGHT,
            is_keyframe=index == 0,
            image=ContentFile(scene_jpeg(index), name="frame.jpg"),
            thumbnail=ContentFile(scene_jpeg(index, 96, 54), name="frame.thumb.jpg"),
        )
        for index in range(4)
    ]
    return LabellingProject(organization, project, annotator, reviewer, labels, frames)
