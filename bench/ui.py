"""Benchmark the annotator's workspace in Debian's Chromium.

Two figures, both measured by the page itself (performance.mark/measure, read from
window.__labellerMetrics):

- next_frame_ms: from the key press (N, then Space = complete and go on) to the next
  frame drawn with its proposals, with prefetch working as in real use (the annotator
  spends a moment on each frame: 600 ms here). 1920x1080 frames, 30 proposals each.
- pan: panning (middle-button drag) a 3840x2160 frame with 1,000 boxes, all in view.
  ``pan_frame_ms`` is the page's work per animation frame while panning (main thread);
  ``pan_raf_interval_ms`` is the time between animation frames while panning, which
  includes rasterising and compositing (60 Hz: 16.7 ms means no frame was dropped);
  ``pan_settle_frame_ms_max`` is the longest frame after the pan, when the boxes are
  redrawn at their new place (see canvas.js: during the drag the drawn layer is moved).

It sets up its own SQLite database and media in a temporary folder, serves the app
with Django's LiveServerThread and drives Chromium with Playwright. Ends with one JSON line.

    .venv/bin/python bench/ui.py
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
WORK_DIR = Path(tempfile.mkdtemp(prefix="labeller-bench-ui-"))
os.environ.update(
    DJANGO_SETTINGS_MODULE="labeller.settings.test",
    LABELLER_DATA_DIR=str(WORK_DIR),
    LABELLER_MEDIA_ROOT=str(WORK_DIR / "media"),
    LABELLER_SQLITE_PATH=str(WORK_DIR / "bench.sqlite3"),
    DJANGO_ALLOW_ASYNC_UNSAFE="true",  # Playwright's sync API runs an event loop in this thread
)

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.files.base import ContentFile  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test.testcases import LiveServerThread, _StaticFilesHandler  # noqa: E402
from django.urls import get_resolver  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from labeller.annotations.models import Annotation, AnnotationSource, AnnotationStatus  # noqa: E402
from labeller.annotations.services import label_create  # noqa: E402
from labeller.media.models import Frame  # noqa: E402
from labeller.projects.models import Project  # noqa: E402
from labeller.tenants.models import Membership, Organization, Role  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1600, "height": 900}
NEXT_FRAMES = 12
PROPOSALS_PER_FRAME = 30
PAN_BOXES = 1000
PAN_MOVES = 240
THINK_TIME_MS = 600


def jpeg(width: int, height: int, seed: int) -> bytes:
    rng = random.Random(seed)
    image = Image.new("RGB", (width, height), (50, 60, 80))
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y = rng.randrange(width), rng.randrange(height)
        w, h = rng.randrange(width // 40, width // 6), rng.randrange(height // 40, height // 6)
        draw.rectangle([x, y, x + w, y + h], fill=tuple(rng.randrange(40, 255) for _ in range(3)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def random_boxes(rng, count, width, height):
    for _ in range(count):
        w, h = rng.uniform(10, width / 12), rng.uniform(10, height / 12)
        x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
        yield x, y, x + w, y + h


def add_frames(project, labels, *, count, width, height, boxes, seed):
    rng = random.Random(seed)
    frames = []
    for index in range(count):
        frame = Frame.objects.create(
            project=project,
            index=index,
            width=width,
            height=height,
            is_keyframe=True,
            image=ContentFile(jpeg(width, height, seed + index), name="frame.jpg"),
            thumbnail=ContentFile(jpeg(256, 144, seed + index), name="frame.thumb.jpg"),
        )
        Annotation.objects.bulk_create(
            Annotation(
                project=project,
                frame=frame,
                label=rng.choice(labels),
                x1=x1,
                y1=y1,
                x2=x2,
                y2=y2,
                status=AnnotationStatus.PROPOSED if rng.random() < 0.7 else AnnotationStatus.CONFIRMED,
                source=AnnotationSource.MODEL,
                score=rng.random(),
                suggestions=[{"label_id": label.pk, "score": rng.random()} for label in rng.sample(labels, 3)],
            )
            for x1, y1, x2, y2 in random_boxes(rng, boxes, width, height)
        )
        frames.append(frame)
    return frames


def set_up():
    call_command("migrate", verbosity=0)
    organization = Organization.objects.create(slug="bench", name="Bench")
    user = get_user_model().objects.create_user("annotator", password="password")
    Membership.objects.create(user=user, organization=organization, role=Role.ANNOTATOR)
    queue_project = Project.objects.create(organization=organization, name="Full HD queue")
    pan_project = Project.objects.create(organization=organization, name="4K crowd")
    projects = {}
    for project in (queue_project, pan_project):
        for name in ["food.dish.dessert", "food.dish.soup", "food.drink.coffee", "vehicle.car", "vehicle.bike", "person"]:
            label_create(project=project, name=name)
        projects[project.pk] = [label for label in project.labels.all() if "." in label.name or label.name == "person"]
    add_frames(queue_project, projects[queue_project.pk], count=NEXT_FRAMES + 1, width=1920, height=1080, boxes=PROPOSALS_PER_FRAME, seed=1)
    add_frames(pan_project, projects[pan_project.pk], count=1, width=3840, height=2160, boxes=PAN_BOXES, seed=99)
    return organization, queue_project, pan_project


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def open_workspace(page, server_url, organization, project):
    page.goto(f"{server_url}/o/{organization.slug}/p/{project.pk}/label/")
    page.wait_for_selector("#workspace[data-ready]")


def measure_next_frame(page):
    page.wait_for_timeout(THINK_TIME_MS)  # the first peek and prefetch
    for step in range(NEXT_FRAMES):
        count = step + 1
        page.keyboard.press("n" if step == 0 else "Space")
        page.wait_for_function("n => window.__labellerMetrics.nextFrameMs.length >= n", arg=count)
        page.wait_for_timeout(THINK_TIME_MS)
    return page.evaluate("window.__labellerMetrics.nextFrameMs")


def measure_pan(page):
    page.keyboard.press("n")
    page.wait_for_function("n => document.querySelector('#frame-caption').textContent.includes(`${n} boxes`)", arg=PAN_BOXES)
    page.wait_for_timeout(500)
    canvas = page.locator("#box-layer").bounding_box()
    centre_x, centre_y = canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2
    page.evaluate(
        """() => {
        window.__rafTimes = [];
        window.__recording = true;
        const tick = (time) => { window.__rafTimes.push(time); if (window.__recording) requestAnimationFrame(tick); };
        requestAnimationFrame(tick);
        window.__drawsBefore = window.__labellerMetrics.drawMs.length;
    }"""
    )
    page.mouse.move(centre_x, centre_y)
    page.mouse.down(button="middle")
    for move in range(PAN_MOVES):
        angle = move / PAN_MOVES * 2 * math.pi
        page.mouse.move(centre_x + 150 * math.sin(angle), centre_y + 80 * math.sin(2 * angle))
    page.evaluate("window.__panEnded = performance.now()")
    page.mouse.up(button="middle")
    page.wait_for_timeout(600)  # the boxes are redrawn once the view is still
    return page.evaluate(
        """() => {
        window.__recording = false;
        const times = window.__rafTimes;
        const intervals = times.slice(1).map((time, index) => [times[index], time - times[index]]);
        return {
            draws: window.__labellerMetrics.drawMs.slice(window.__drawsBefore),
            panning: intervals.filter(([start]) => start < window.__panEnded).map(([, interval]) => interval),
            settling: intervals.filter(([start]) => start >= window.__panEnded).map(([, interval]) => interval),
        };
    }"""
    )


def main():
    organization, queue_project, pan_project = set_up()
    get_resolver().url_patterns  # import every view before the clock matters
    server = LiveServerThread("localhost", _StaticFilesHandler)
    server.daemon = True
    server.start()
    server.is_ready.wait()
    if server.error:
        raise server.error
    server_url = f"http://localhost:{server.port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(f"{server_url}/login/")
        page.get_by_label("Username").fill("annotator")
        page.get_by_label("Password").fill("password")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{server_url}/")

        open_workspace(page, server_url, organization, queue_project)
        next_frame_ms = measure_next_frame(page)
        open_workspace(page, server_url, organization, pan_project)
        pan = measure_pan(page)
        browser.close()
    server.terminate()

    draws, intervals = pan["draws"], pan["panning"]
    result = {
        "next_frame_ms_p95": round(percentile(next_frame_ms, 0.95), 1),
        "next_frame_ms_median": round(statistics.median(next_frame_ms), 1),
        "next_frame_ms_max": round(max(next_frame_ms), 1),
        "next_frame_samples": len(next_frame_ms),
        "next_frame_size": "1920x1080",
        "proposals_per_frame": PROPOSALS_PER_FRAME,
        "pan_frame_ms_p95_1000_boxes": round(percentile(draws, 0.95), 2),
        "pan_frame_ms_median_1000_boxes": round(statistics.median(draws), 2),
        "pan_redraws": len(draws),
        "pan_raf_interval_ms_p95": round(percentile(intervals, 0.95), 1),
        "pan_raf_interval_ms_median": round(statistics.median(intervals), 1),
        "pan_settle_frame_ms_max": round(max(pan["settling"]), 1),
        "pan_frame_size": "3840x2160",
        "viewport": f"{VIEWPORT['width']}x{VIEWPORT['height']}",
        "browser": f"chromium {browser.version} headless, --disable-gpu",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
