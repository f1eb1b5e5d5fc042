"""The product's figure of merit: how much of a person's labelling time the machine saves.

    .venv/bin/python bench/assist.py [--datasets counter,night,bccd] [--time-scale 0.1]
                                     [--max-frames N] [--bccd-images N] [--quick]
                                     [--variants plain,retraining] [--retrain-time-scale 0.5]
                                     [--seed-offset N] [--next-video]

A simulated annotator labels through the real HTTP API of a real app: ``scripts/run`` is
started as a subprocess in its own process group (temporary ``LABELLER_DATA_DIR``, a free
``LABELLER_PORT``), so the web server, the Celery worker and beat are set up exactly as a
newcomer gets them, demo seed included; the group is killed at the end. For each dataset
it creates a project, its taxonomy and uploads the media through the API, waits for ingest
and the first proposals, then takes frames from the queue (``queue/next``) until it is
empty and handles every frame as a person would, with the costs of bench/assist_sim.py:
accept, fix or reject the proposals shown, draw the boxes still missing, complete the
frame. Ground truth stays in this process: the app only ever sees the annotator's actions.
After each frame the annotator pauses for ``charged seconds * time_scale``, the time a
person would give the worker. When the frame detail says its proposals are being refreshed
(``proposals_state``), the annotator polls every 0.1 s for up to 10 s, as the workspace
does, and that wait is the worker lag; staleness (``proposals_index_version <
index_version``) is judged on what is then shown. An action on a shown proposal that
answers 404, 409 or 5xx is a lost action: the annotator re-reads the frame and redoes
what is left, paying again.

Datasets: two generated 40 s, 640x360, 25 fps videos of looks the demo seed does not use
(``counter``: bright counter tops with food; ``night``: dark, noisy streets), each with
6 shots (one of 0.6 s), 8+ classes, occlusion and zoom, written fresh from fixed seeds
(``--seed-offset`` shifts them: other videos of the same looks, to check that a change
is not tuned to the default two);
and the first ``--bccd-images`` images of BCCD's test split (real microscope images, VOC
boxes) uploaded as stills.

Two variants, in one app: ``plain`` turns the projects' periodic retraining off (the index,
propagation and the calibrated show policy only, as a new project is); ``retraining`` sets
``--retrain-every`` (50 confirmed boxes), so the detector and the embedding retrain as the
annotator works. Training takes
real seconds while the simulated person's are scaled, so the retraining variant pauses
``--retrain-time-scale`` (0.5) per charged second, and runs on the videos only.

With ``--next-video`` each video's project then gets a second video of the same look (another
seed, ``NEXT_VIDEO_SEED_STEP`` on), uploaded once the first is labelled and labelled the same way:
a team's next day of counter footage. Its shots are all new, but the project's index, show
policy and (with retraining) its detector, refiner and embedding have learned from the first:
``human_ratio_after_10pct_next_video`` (and ``..._next_video_retraining``) is what the project has
learned worth there. A dataset's own figures stay its first video's.

Headline: ``human_ratio_after_10pct`` = assisted seconds / manual seconds (10 s per box)
over the frames after the first 10 % labelled, on the worst generated video, plain; with
retraining: ``human_ratio_after_10pct_retraining``. Progress goes to stderr, then ONE JSON line.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import argparse  # noqa: E402
import hashlib  # noqa: E402
import http.cookiejar  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402
import uuid  # noqa: E402
import xml.etree.ElementTree as ElementTree  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

from bench.assist_sim import (  # noqa: E402
    ActionKind,
    FrameRecord,
    Shown,
    Truth,
    frame_kind,
    overall_of,
    plan_frame,
    rounded,
    summarize,
    worst_of,
)

BCCD_ROOT = REPO_ROOT.parent / "shared" / "data" / "bccd-voc" / "BCCD"  # ../shared beside the checkout
VIDEO_LOOKS = {"counter": 4101, "night": 4202}  # look -> seed
VIDEO_SHOTS = 6
SHORT_SHOT_SECONDS = 0.6
OBJECTS_PER_SHOT = 6
# --next-video: the second video's seed is the first's plus this, far from the --seed-offset
# values used so far (10, 20), so that it is never one of the held-out videos.
NEXT_VIDEO_SEED_STEP = 1000
DEMO_LOGINS = {"admin": "labeller-admin", "annotator": "labeller-annotator"}  # labeller's seed_demo
FRESH_POLL_S = 0.1
FRESH_WAIT_MAX_S = 10.0
MAX_RECOVERIES = 10
STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


# --- the app, as scripts/run starts it -------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class App:
    """``scripts/run`` in its own process group, on a temporary data folder and a free port."""

    # Inherited settings that would point the app elsewhere than its embedded default.
    DROPPED_ENV = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")

    def __init__(self, workdir: Path) -> None:
        self.data_dir = workdir / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "scripts-run.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        stamp = REPO_ROOT / ".venv" / ".requirements.sha256"
        wanted = hashlib.sha256((REPO_ROOT / "requirements.txt").read_bytes()).hexdigest()
        if stamp.exists() and stamp.read_text().strip() != wanted:
            log("note: requirements.txt changed since .venv was set up: scripts/run reinstalls first")
        env = {k: v for k, v in os.environ.items() if not k.startswith("LABELLER_") and k not in self.DROPPED_ENV}
        env.update(LABELLER_DATA_DIR=str(self.data_dir), LABELLER_PORT=str(self.port), LABELLER_HOST="127.0.0.1")
        log(f"starting scripts/run on {self.url} (data in {self.data_dir}, output in {self.log_path})")
        with self.log_path.open("wb") as output:
            self.process = subprocess.Popen(
                [str(REPO_ROOT / "scripts" / "run")], cwd=REPO_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_healthy(self, timeout_s: float = 900) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if self.process.poll() is not None:
                raise BenchError(f"scripts/run exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=5) as answer:
                    if answer.status == 200:
                        return time.monotonic() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(1)
        raise BenchError(f"the app did not answer /healthz within {timeout_s:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        log("stopping scripts/run (its whole process group)")
        for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # the worker's pool children may outlive the shell by a moment
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --- the HTTP API ------------------------------------------------------------------------


def api_token(base_url: str, username: str, password: str) -> str:
    """Log in like a browser (session + CSRF), then ask for the script token (POST /api/v1/token)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def csrf() -> str:
        return next(cookie.value for cookie in jar if cookie.name == "csrftoken")

    opener.open(f"{base_url}/login/", timeout=60).read()
    form = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": csrf()})
    opener.open(urllib.request.Request(
        f"{base_url}/login/", data=form.encode(), headers={"Referer": f"{base_url}/login/"}), timeout=60).read()
    request = urllib.request.Request(
        f"{base_url}/api/v1/token", data=b"", method="POST", headers={"X-CSRFToken": csrf(), "Referer": f"{base_url}/"}
    )
    try:
        with opener.open(request, timeout=60) as answer:
            return json.loads(answer.read())["token"]
    except urllib.error.HTTPError as error:
        raise BenchError(f"logging in as {username} failed ({error.code}): is the demo seeded?") from error


@dataclass
class Answer:
    status: int
    body: object

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Api:
    """A token client for one organisation; keeps every call's latency in ``latencies``."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
        self.org = ""
        self.latencies: list[float] = []

    def url(self, path: str) -> str:
        if path.startswith("http"):
            return path
        if path.startswith("/"):
            return f"{self.base_url}{path}"
        return f"{self.base_url}/api/v1/orgs/{self.org}/{path}"

    def call(self, method: str, path: str, payload=None, *, body: bytes | None = None, content_type: str = "",
             timeout: float = 300) -> Answer:
        headers = dict(self.headers)
        if payload is not None:
            body, content_type = json.dumps(payload).encode(), "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.url(path), data=body, method=method, headers=headers)
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                status, raw = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        self.latencies.append(time.perf_counter() - started)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw[:300].decode(errors="replace")
        return Answer(status, parsed)

    def expect(self, method: str, path: str, payload=None, *, ok=(200, 201), **kwargs) -> object:
        answer = self.call(method, path, payload, **kwargs)
        if answer.status not in ok:
            raise BenchError(f"{method} {path} answered {answer.status}: {str(answer.body)[:500]}")
        return answer.body

    def all_pages(self, path: str) -> list:
        results, url = [], self.url(path)
        while url:
            page = self.expect("GET", url)
            results.extend(page["results"])
            url = page.get("next")
        return results

    def upload(self, path: str, fields: list[tuple[str, str, bytes]]) -> object:
        """multipart/form-data POST of ``(field, file name, bytes)`` parts."""
        boundary = uuid.uuid4().hex
        parts = []
        for name, filename, data in fields:
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n"
            )
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self.expect("POST", path, body=body, content_type=f"multipart/form-data; boundary={boundary}", ok=(201,))


# --- datasets ----------------------------------------------------------------------------


@dataclass
class Dataset:
    """What to upload and the ground truth, which never leaves this process.

    ``truth_of(frame)`` gives a frame's truths as ``(box, class name)`` from the frame the
    API shows (video frames by ``index``, still images by ``original_name``).
    """

    name: str
    classes: list[str]
    video: object = None  # proposals.synthetic.SyntheticVideo
    images: dict[str, tuple[Path, list[tuple[tuple, str]]]] = field(default_factory=dict)

    def truth_of(self, frame: dict) -> list[tuple[tuple, str]]:
        if self.video is not None:
            sx, sy = frame["width"] / self.video.width, frame["height"] / self.video.height
            return [((b.box[0] * sx, b.box[1] * sy, b.box[2] * sx, b.box[3] * sy), b.label)
                    for b in self.video.boxes[frame["index"]]]
        return self.images[frame["original_name"]][1]


def make_video_dataset(look: str, seed: int, folder: Path, seconds: float, name: str | None = None) -> Dataset:
    """A generated video of ``look`` from ``seed``; ``name`` (default the look) names the
    dataset and its file."""
    from proposals.synthetic import write_synthetic_video

    name = name or look
    started = time.monotonic()
    video = write_synthetic_video(
        folder / f"{name.replace(' ', '-')}.mp4", seconds=seconds, fps=25, width=640, height=360,
        n_shots=VIDEO_SHOTS, seed=seed, objects_per_shot=OBJECTS_PER_SHOT, look=look,
        short_shot_seconds=SHORT_SHOT_SECONDS,
    )
    log(f"{name}: wrote {video.frame_count} frames, cuts {video.cuts} in {time.monotonic() - started:.0f} s")
    return Dataset(name=name, classes=list(video.classes), video=video)


def read_voc(path: Path) -> list[tuple[tuple, str]]:
    """VOC boxes (1-based inclusive) as exclusive pixel boxes; zero-area boxes are skipped."""
    boxes = []
    for obj in ElementTree.parse(path).getroot().iter("object"):
        box = obj.find("bndbox")
        x1, y1, x2, y2 = (float(box.find(tag).text) for tag in ("xmin", "ymin", "xmax", "ymax"))
        if x2 > x1 and y2 > y1:
            boxes.append(((x1 - 1, y1 - 1, x2, y2), obj.find("name").text.strip().lower()))
    return boxes


def make_bccd_dataset(count: int) -> Dataset:
    stems = (BCCD_ROOT / "ImageSets/Main/test.txt").read_text().split()[:count]
    images = {
        f"{stem}.jpg": (BCCD_ROOT / "JPEGImages" / f"{stem}.jpg", read_voc(BCCD_ROOT / "Annotations" / f"{stem}.xml"))
        for stem in stems
    }
    classes = sorted({label for _, boxes in images.values() for _, label in boxes})
    return Dataset(name="bccd", classes=classes, images=images)


# --- setting a project up through the API ----------------------------------------------


def create_project(admin: Api, dataset: Dataset) -> tuple[int, dict[str, int]]:
    project = admin.expect("POST", "projects/", {"name": f"bench-assist {dataset.name} {uuid.uuid4().hex[:6]}",
                                                 "description": "bench/assist.py"})
    return project["id"], add_labels(admin, project["id"], dataset, {})


def add_labels(admin: Api, project_id: int, dataset: Dataset, label_ids: dict[str, int]) -> dict[str, int]:
    """``label_ids`` with the dataset's classes that the project lacks added to its taxonomy."""
    label_ids = dict(label_ids)
    for name in dataset.classes:
        if name not in label_ids:
            label_ids[name] = admin.expect("POST", f"projects/{project_id}/labels/", {"name": name})["id"]
    return label_ids


def wait_video_ready(admin: Api, video_id: int, timeout_s: float = 900) -> dict:
    started, last = time.monotonic(), None
    while time.monotonic() - started < timeout_s:
        video = admin.expect("GET", f"videos/{video_id}")
        if video["stage"] != last:
            log(f"  video {video_id}: {video['stage']} {video['progress']}%")
            last = video["stage"]
        if video["stage"] == "ready":
            return video
        if video["stage"] == "failed" or video.get("error"):
            raise BenchError(f"ingest of video {video_id} failed: {video.get('error')}")
        time.sleep(2)
    raise BenchError(f"video {video_id} was not ready after {timeout_s:.0f} s")


def wait_initial_proposals(api: Api, project_id: int, frame_ids: set[int], *, quiet_s: float,
                           timeout_s: float = 600) -> int:
    """Wait until every frame has proposals, or nothing new came for ``quiet_s``; returns how many have."""
    started = last_change = time.monotonic()
    covered: set[int] = set()
    while True:
        proposals = api.all_pages(f"projects/{project_id}/annotations/?status=proposed&page_size=1000")
        now_covered = {a["frame_id"] for a in proposals} & frame_ids
        if len(now_covered) != len(covered):
            last_change, covered = time.monotonic(), now_covered
        now = time.monotonic()
        if len(covered) == len(frame_ids) or now - last_change > quiet_s or now - started > timeout_s:
            return len(covered)
        time.sleep(2)


def wait_demo_settled(admin: Api) -> float:
    """The seed's demo video is ingested and proposed by the same worker: let it finish first,
    so its work does not run on the worker while the annotator labels."""
    started = time.monotonic()
    projects = admin.all_pages("projects/")
    demo = next((p for p in projects if p["name"] == "Counter demo"), None)
    if demo is None:
        return 0.0
    for video in admin.all_pages(f"projects/{demo['id']}/videos/"):
        wait_video_ready(admin, video["id"])
    frames = {f["id"] for f in admin.all_pages(f"projects/{demo['id']}/frames/?page_size=1000")}
    covered = wait_initial_proposals(admin, demo["id"], frames, quiet_s=45, timeout_s=300)
    log(f"demo seed settled: {covered}/{len(frames)} demo frames proposed")
    return time.monotonic() - started


# --- the annotator -----------------------------------------------------------------------


LOST_STATUSES = (404, 409)


@dataclass
class Opened:
    """A frame as the annotator got to see it. ``lag_s``: the wait for an announced refresh
    (0 when none was announced, None when the API does not say)."""

    detail: dict
    lag_s: float | None = None
    refreshing_at_open: bool | None = None
    timed_out: bool = False
    fresh_at: float | None = None


def is_lost(status: int) -> bool:
    return status in LOST_STATUSES or status >= 500


@dataclass
class Annotator:
    api: Api
    project_id: int
    label_ids: dict[str, int]
    dataset: Dataset
    time_scale: float
    last_complete: float | None = None
    server_errors: int = 0
    labelled_shots: set = field(default_factory=set)

    def open_frame(self, frame_id: int) -> Opened:
        """The frame detail, once a refresh it announces has landed or 10 s have passed."""
        detail = self.api.expect("GET", f"frames/{frame_id}")
        if "proposals_state" not in detail:
            return Opened(detail)  # the API does not say: fresh, staleness unknown
        started = time.monotonic()
        refreshing = detail["proposals_state"] == "refreshing"
        while detail["proposals_state"] == "refreshing" and time.monotonic() - started < FRESH_WAIT_MAX_S:
            time.sleep(FRESH_POLL_S)
            detail = self.api.expect("GET", f"frames/{frame_id}")
        now = time.monotonic()
        timed_out = detail["proposals_state"] == "refreshing"
        return Opened(detail, lag_s=now - started if refreshing else 0.0, refreshing_at_open=refreshing,
                      timed_out=timed_out, fresh_at=now if refreshing and not timed_out else None)

    @staticmethod
    def shown(detail: dict) -> list[Shown]:
        return [Shown(a["id"], tuple(a["box"]), a["label_id"], a["version"], a["status"])
                for a in detail["annotations"] if a["status"] in ("proposed", "confirmed")]

    def act(self, frame_id: int, action) -> str:
        """Do one action through the API: "done", or "lost" (404/409/5xx on a shown proposal)."""
        annotation, truth = action.annotation, action.truth
        if action.kind == ActionKind.ACCEPT:
            answer = self.api.call("POST", f"annotations/{annotation.id}/confirm", {"version": annotation.version})
        elif action.kind == ActionKind.FIX:
            change = {"version": annotation.version}
            if action.fix_label:
                change["label_id"] = truth.label_id
            if action.fix_box:
                change["box"] = list(truth.box)
            answer = self.api.call("PATCH", f"annotations/{annotation.id}", change)
            # Fixing a proposal already makes it the person's confirmed box; confirm only if not.
            if answer.ok and answer.body["status"] != "confirmed":
                version = answer.body["version"]
                answer = self.api.call("POST", f"annotations/{annotation.id}/confirm", {"version": version})
        elif action.kind == ActionKind.REJECT:
            answer = self.api.call("POST", f"annotations/{annotation.id}/reject", {"version": annotation.version})
        else:
            return self.draw(frame_id, truth)
        if answer.ok:
            return "done"
        if is_lost(answer.status):
            log(f"  lost action: {action.kind.value} on annotation {annotation.id} answered {answer.status}")
            return "lost"
        raise BenchError(f"{action.kind.value} on annotation {annotation.id} answered {answer.status}: {answer.body}")

    def draw(self, frame_id: int, truth: Truth) -> str:
        for attempt in range(3):
            answer = self.api.call("POST", f"frames/{frame_id}/annotations/",
                                   {"box": list(truth.box), "label_id": truth.label_id})
            if answer.ok:
                return "done"
            if answer.status < 500:
                raise BenchError(f"drawing a box on frame {frame_id} answered {answer.status}: {answer.body}")
            self.server_errors += 1
            log(f"  drawing on frame {frame_id} answered {answer.status}; retrying")
            time.sleep(1 + attempt)
        raise BenchError(f"drawing a box on frame {frame_id} kept failing with {answer.status}: {answer.body}")

    def label(self, frame: dict) -> FrameRecord:
        frame_id = frame["id"]
        calls_before = len(self.api.latencies)
        started = time.monotonic()
        opened = self.open_frame(frame_id)
        detail = opened.detail
        truths = [Truth(box, self.label_ids[name]) for box, name in self.dataset.truth_of(detail)]
        plan = plan_frame(self.shown(detail), truths)
        record = FrameRecord(frame_id=frame_id, truths=len(truths), charged_s=0.0, shown=plan.shown,
                             matched=plan.matched, right_label=plan.right_label, lag_s=opened.lag_s,
                             refreshing_at_open=opened.refreshing_at_open, fresh_timeout=opened.timed_out,
                             kind=frame_kind(detail, self.labelled_shots).value)
        self.labelled_shots.add(detail.get("shot_id"))
        if "proposals_index_version" in detail and "index_version" in detail:
            # Judged on what is shown, i.e. after the wait (the workspace waits the same way).
            built, current = detail["proposals_index_version"], detail["index_version"]
            record.stale = None if built is None or current is None else built < current
        if opened.fresh_at is not None and self.last_complete is not None:
            record.completion_to_fresh_s = opened.fresh_at - self.last_complete
        for _ in range(MAX_RECOVERIES + 1):
            lost = False
            for action in plan.actions:
                record.charge(action)
                if self.act(frame_id, action) == "lost":
                    record.lost_actions += 1
                    lost = True
                    break
            if not lost:
                break
            detail = self.open_frame(frame_id).detail  # re-read what is there now and redo the rest
            plan = plan_frame(self.shown(detail), truths)
        else:
            raise BenchError(f"frame {frame_id}: still losing actions after {MAX_RECOVERIES} re-reads")
        self.api.expect("POST", f"frames/{frame_id}/complete")
        self.last_complete = time.monotonic()
        record.api_s = self.api.latencies[calls_before:]
        log(f"  frame {frame_id}: {record.truths} boxes, {record.shown} shown, {record.matched} matched, "
            f"{record.charged_s:.1f}/{record.manual_s:.0f} s, {record.lost_actions} lost, "
            f"waited {opened.lag_s or 0:.1f} s" + (" (still refreshing)" if opened.timed_out else "")
            + f" [{time.monotonic() - started:.1f} s] "
            + " ".join(f"{kind} {seconds:.1f}" for kind, seconds in sorted(record.seconds_by_action.items())))
        return record

    def run(self, max_frames: int | None) -> list[FrameRecord]:
        records = []
        while max_frames is None or len(records) < max_frames:
            answer = self.api.call("POST", f"projects/{self.project_id}/queue/next")
            if answer.status == 204:
                break
            if not answer.ok:
                raise BenchError(f"queue/next answered {answer.status}: {answer.body}")
            record = self.label(answer.body)
            records.append(record)
            time.sleep(record.charged_s * self.time_scale)  # the person's time, scaled
        return records


# --- one dataset, start to end -----------------------------------------------------------


def training_runs(admin: Api, project_id: int) -> list[dict]:
    """The project's retraining runs, oldest first, as the bench reports them."""
    runs = sorted(admin.all_pages(f"projects/{project_id}/training-runs/"), key=lambda run: run["number"])
    return [
        {"number": run["number"], "state": run["state"], "train_frames": run["train_frames"],
         "map50": (run["metrics"] or {}).get("map50"), "promoted": run["promoted_at"] is not None,
         "seconds_per_epoch": (run["metrics"] or {}).get("seconds_per_epoch")}
        for run in runs
    ]


TRAINING_STOP_WAIT_S = 600


def stop_training(admin: Api, project_id: int) -> None:
    """Turn the project's periodic retraining off, cancel its active run and wait for it to
    end: the bench labels its datasets one after another on one training worker, and a run
    still going for a finished dataset would hold back the next one's first detector (it
    did: night's landed after its labelling ended)."""
    admin.expect("PATCH", f"projects/{project_id}/learning", {"retrain_every_boxes": 0})
    started = time.monotonic()
    while time.monotonic() - started < TRAINING_STOP_WAIT_S:
        active = [run for run in admin.all_pages(f"projects/{project_id}/training-runs/")
                  if run["state"] in ("queued", "running")]
        if not active:
            return
        for run in active:
            if not run.get("cancel_requested"):
                admin.call("POST", f"training-runs/{run['id']}/cancel", {})  # 409 once it has ended
        time.sleep(2.0)
    raise BenchError(f"project {project_id}: training still running {TRAINING_STOP_WAIT_S} s after cancelling")


def run_dataset(admin: Api, annotator_api: Api, dataset: Dataset, args, *, retrain_every: int | None = 0,
                time_scale: float, next_dataset: Dataset | None = None) -> tuple[dict, list[FrameRecord]]:
    """Label ``dataset`` in a new project, then ``next_dataset`` (when given) in the same one.
    ``retrain_every``: 0 turns the periodic retraining off, N > 0 retrains each time N more
    boxes were confirmed, None keeps a new project's default."""
    log(f"{dataset.name}: project, {len(dataset.classes)} labels, upload")
    project_id, label_ids = create_project(admin, dataset)
    learning = {} if retrain_every is None else {"retrain_every_boxes": retrain_every}
    learning |= {"queue_order": args.queue_order} if args.queue_order else {}
    learning = admin.expect("PATCH", f"projects/{project_id}/learning", learning)
    facts: dict = {"classes": len(dataset.classes), "retrain_every_boxes": learning["retrain_every_boxes"],
                   "queue_order": learning["queue_order"], "time_scale": time_scale}
    labelled, records = label_dataset(admin, annotator_api, project_id, label_ids, dataset, args, time_scale)
    facts |= labelled
    if next_dataset is not None:
        # The same project goes on to its next video: its index, policy and models carry over.
        label_ids = add_labels(admin, project_id, next_dataset, label_ids)
        next_facts, next_records = label_dataset(admin, annotator_api, project_id, label_ids, next_dataset, args,
                                                 time_scale)
        facts["next_video"] = summarize(next_records) | next_facts | {"classes": len(next_dataset.classes)}
        log(f"{next_dataset.name}: human_ratio_after_10pct {facts['next_video']['human_ratio_after_10pct']}, "
            f"lost {facts['next_video']['lost_actions']}")
    model = annotator_api.expect("GET", f"projects/{project_id}/stats/me")["model"]
    weights = "random-init" if model["is_random"] else model["weights_description"]
    facts |= {"index_size": model["index_size"], "weights": weights}
    # What the project learned about its proposals, as its admins see it (diagnostics only).
    policy = admin.expect("GET", f"projects/{project_id}/proposal-policy")
    facts["policy"] = {
        "break_even": policy["break_even"],
        "break_evens": policy["break_evens"],
        "shown_per_frame": policy["shown_per_frame"],
        "generated_per_frame": policy["generated_per_frame"],
        "label_wrong": policy["label_wrong"],
        "box_loose": policy["box_loose"],
        "honesty": policy["honesty"],  # the chances given on the last 50 frames against what became of them
        "decisions": {source: curve["decisions"] for source, curve in policy["sources"].items()},
        "curves": {source: curve["curve"] for source, curve in policy["sources"].items()},
    }
    if learning["retrain_every_boxes"]:
        stop_training(admin, project_id)
        facts["training_runs"] = training_runs(admin, project_id)
    figures = summarize(records) | facts
    log(f"{dataset.name}: human_ratio_after_10pct {figures['human_ratio_after_10pct']}, "
        f"overall {figures['human_ratio_overall']}, lost {figures['lost_actions']}")
    return figures, records


def label_dataset(admin: Api, annotator_api: Api, project_id: int, label_ids: dict[str, int], dataset: Dataset,
                  args, time_scale: float) -> tuple[dict, list[FrameRecord]]:
    """Upload ``dataset`` to the project, wait for ingest and its first proposals, and label
    what the queue offers until it is empty: (facts, the frames' records)."""
    facts: dict = {}
    started = time.monotonic()
    if dataset.video is not None:
        video = admin.upload(f"projects/{project_id}/videos/",
                             [("file", dataset.video.path.name, dataset.video.path.read_bytes())])
        video = wait_video_ready(admin, video["id"])
        facts |= {"shots_found": video["shot_count"], "shots_true": len(dataset.video.cuts) + 1,
                  "keyframes": video["keyframe_count"]}
        quiet_s = 60
        listed = f"projects/{project_id}/frames/?video_id={video['id']}&page_size=1000"
    else:
        files = [("files", name, path.read_bytes()) for name, (path, _) in dataset.images.items()]
        admin.upload(f"projects/{project_id}/images/", files)
        quiet_s = 20  # uploaded stills get no proposals before the first confirmed box
        listed = f"projects/{project_id}/frames/?page_size=1000"
    facts["ingest_s"] = time.monotonic() - started
    frame_ids = {f["id"] for f in admin.all_pages(listed)}
    started = time.monotonic()
    covered = wait_initial_proposals(admin, project_id, frame_ids, quiet_s=quiet_s)
    facts |= {"frames_in_project": len(frame_ids), "initially_proposed_frames": covered,
              "initial_proposals_s": time.monotonic() - started}
    log(f"{dataset.name}: {len(frame_ids)} frames, {covered} with proposals after {facts['initial_proposals_s']:.0f} s;"
        " labelling")
    started = time.monotonic()
    annotator = Annotator(annotator_api, project_id, label_ids, dataset, time_scale)
    records = annotator.run(args.max_frames)
    facts |= {"labelling_s": time.monotonic() - started, "server_errors": annotator.server_errors}
    return facts, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="counter,night,bccd", help="comma-separated: counter, night, bccd")
    parser.add_argument("--time-scale", type=float, default=0.1, help="pause charged seconds x this after each frame")
    parser.add_argument("--max-frames", type=int, default=None, help="label at most this many frames per dataset")
    parser.add_argument("--bccd-images", type=int, default=None,
                        help="the first N images of BCCD's test split (default 10; each takes ~20 s at 0.1)")
    parser.add_argument("--video-seconds", type=float, default=None, help="default 40")
    parser.add_argument("--seed-offset", type=int, default=0,
                        help=f"add this to each look's seed {VIDEO_LOOKS}: held-out videos")
    parser.add_argument("--quick", action="store_true", help="defaults to 12 s videos, 8 images, 12 frames each")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (app data and logs)")
    parser.add_argument("--retrain-every", type=int, default=50,
                        help="the retraining variant: retrain after this many new confirmed boxes (default 50, "
                             "about ten frames; a new project does not retrain by itself)")
    parser.add_argument("--retrain-time-scale", type=float, default=0.5,
                        help="the retraining variant's pause per charged second: training runs while people "
                             "work, and at 0.1 a whole video is labelled before a run ends (default 0.5)")
    parser.add_argument("--retrain-datasets", default="counter,night",
                        help="datasets of the retraining variant (default the videos: ten BCCD images are "
                             "too few frames to train on)")
    parser.add_argument("--queue-order", choices=["uncertain_first", "sequential"], default=None,
                        help="the projects' queue order (default: a new project's)")
    parser.add_argument("--next-video", action="store_true",
                        help="then label a second video of each look in the same project (its next day of "
                             "footage): what the project learned from the first is worth there")
    parser.add_argument("--variants", default="plain,retraining",
                        help="plain (the index and calibration only), retraining (plus the detector, retrained as "
                             "the annotator works); both by default")
    args = parser.parse_args()
    quick = {"video_seconds": 12.0, "bccd_images": 8, "max_frames": 12} if args.quick else {}
    for name, default in {"video_seconds": 40.0, "bccd_images": 10, "max_frames": None}.items():
        if getattr(args, name) is None:
            setattr(args, name, quick.get(name, default))
    names = [name.strip() for name in args.datasets.split(",") if name.strip()]
    unknown = set(names) - set(VIDEO_LOOKS) - {"bccd"}
    if unknown:
        parser.error(f"unknown datasets: {', '.join(sorted(unknown))}")
    video_seeds = {name: VIDEO_LOOKS[name] + args.seed_offset for name in names if name in VIDEO_LOOKS}
    if args.next_video and args.max_frames is not None:
        # The next video's truth is told by frame index: its first video must be done with.
        parser.error("--next-video labels every frame of the first video: it takes no --max-frames")
    variants = [name.strip() for name in args.variants.split(",") if name.strip()]
    if not variants or set(variants) - {"plain", "retraining"}:
        parser.error("--variants takes plain, retraining or both")

    workdir = Path(tempfile.mkdtemp(prefix="labeller-bench-assist-"))
    app = App(workdir)
    figures: dict = {variant: {} for variant in variants}
    records: dict[str, dict[str, list[FrameRecord]]] = {variant: {} for variant in variants}
    try:
        app.start()  # it migrates and seeds while the videos are written
        datasets, next_datasets = [], {}
        for name in names:
            if name in video_seeds:
                datasets.append(make_video_dataset(name, video_seeds[name], workdir, args.video_seconds))
                if args.next_video:
                    next_datasets[name] = make_video_dataset(
                        name, video_seeds[name] + NEXT_VIDEO_SEED_STEP, workdir, args.video_seconds,
                        name=f"{name} next")
            else:
                datasets.append(make_bccd_dataset(args.bccd_images))
        log(f"app healthy after {app.wait_healthy():.0f} s")
        admin = Api(app.url, api_token(app.url, "admin", DEMO_LOGINS["admin"]))
        annotator = Api(app.url, api_token(app.url, "annotator", DEMO_LOGINS["annotator"]))
        admin.org = annotator.org = admin.expect("GET", "/api/v1/me")["organizations"][0]["slug"]
        demo_settle_s = wait_demo_settled(admin)
        retrain_names = {name.strip() for name in args.retrain_datasets.split(",")}
        for variant in variants:
            retraining = variant == "retraining"
            for dataset in datasets:
                if retraining and dataset.name not in retrain_names:
                    continue
                log(f"--- {variant}: {dataset.name}")
                figures[variant][dataset.name], records[variant][dataset.name] = run_dataset(
                    admin, annotator, dataset, args, retrain_every=args.retrain_every if retraining else 0,
                    time_scale=args.retrain_time_scale if retraining else args.time_scale,
                    next_dataset=next_datasets.get(dataset.name))
    finally:
        app.stop()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    headline = variants[0]
    worst = {variant: worst_of(figures[variant]) for variant in variants}
    generated = {variant: [figures[variant][n]["human_ratio_after_10pct"] for n in names
                           if n in VIDEO_LOOKS and n in figures[variant]] for variant in variants}
    next_videos = {variant: [figures[variant][n]["next_video"]["human_ratio_after_10pct"] for n in names
                             if "next_video" in figures[variant].get(n, {})] for variant in variants}
    result = {
        "bench": "assist",
        "time_scale": args.time_scale,
        # The headline: the first variant (plain, unless asked otherwise), worst generated video.
        "human_ratio_after_10pct": max(generated[headline], default=None),
        "human_ratio_after_10pct_retraining": max(generated.get("retraining", []), default=None),
        # --next-video: the same on each look's second video, in the project that labelled the first.
        "human_ratio_after_10pct_next_video": max(next_videos[headline], default=None),
        "human_ratio_after_10pct_next_video_retraining": max(next_videos.get("retraining", []), default=None),
        "variant": headline,
        "datasets": figures[headline],
        "overall": overall_of(records[headline]),
        "worst": worst[headline],
        "retraining": None if "retraining" not in variants or headline == "retraining" else {
            "time_scale": args.retrain_time_scale,
            "datasets": figures["retraining"],
            "overall": overall_of(records["retraining"]),
            "worst": worst["retraining"],
        },
        "video_seconds": args.video_seconds if any(n in VIDEO_LOOKS for n in names) else None,
        "video_seeds": video_seeds,
        "next_video_seeds": {name: seed + NEXT_VIDEO_SEED_STEP for name, seed in video_seeds.items()}
        if args.next_video else None,
        "bccd_images": args.bccd_images if "bccd" in names else None,
        "max_frames": args.max_frames,
        "demo_settle_s": demo_settle_s,
        "seconds": time.monotonic() - STARTED,
        "load_avg": list(os.getloadavg()),
    }
    print(json.dumps(rounded(result)))


if __name__ == "__main__":
    main()
