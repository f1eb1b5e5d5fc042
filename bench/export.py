"""COCO export time and peak memory for 10k, 100k and 1M boxes on PostgreSQL.

    .venv/bin/python bench/export.py [--database-url postgres://postgres@127.0.0.1:5432/labeller_bench_export]

Drops and recreates the throwaway database, migrates it, and creates one project per size
(ten boxes per frame, a small taxonomy tree) with ``INSERT ... SELECT generate_series``
bulk inserts; creating them is not timed. Each export then runs in a fresh child process
exactly as the worker runs it (``labeller.exports.services.export_run``: server-side
cursors, the JSON streamed to a work file, stored into media storage), so that the child's
peak resident set size is the export's and not the row creation's. Peak memory is the
child's ``VmHWM`` (/proc/self/status: the whole process, Python, Django and the export),
not ``resource.getrusage(...).ru_maxrss``, which Linux carries over from the parent through
fork and exec and so would report the parent's peak. Ends with one
JSON line: ``seconds_10k``, ``seconds_100k``, ``seconds_1m``, ``peak_mb_*``, the idle
``baseline_mb`` of a child before it exports, the file size and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/labeller_bench_export"
SIZES = (("10k", 10_000), ("100k", 100_000), ("1m", 1_000_000))
BOXES_PER_FRAME = 10
LABELS = ("food", "food.dish", "food.dish.dessert", "food.dish.soup", "food.drink", "food.drink.coffee",
          "vehicle", "vehicle.car", "vehicle.bike", "person")


def django_setup(database_url: str, media_root: str) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="labeller.settings.test",
        DATABASE_URL=database_url,
        LABELLER_MEDIA_ROOT=media_root,
        LABELLER_FEATURE_WEIGHTS="none",
    )
    import django

    django.setup()


def recreate_database(database_url: str) -> None:
    import psycopg2

    url = urlparse(database_url)
    name = url.path.lstrip("/")
    assert name.startswith("labeller_bench"), f"refusing to drop {name!r}: not a throwaway bench database"
    connection = psycopg2.connect(host=url.hostname, port=url.port or 5432, user=url.username or "postgres",
                                  password=url.password, dbname="postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()


def create_project(organization, size: int, name: str) -> int:
    """A project with ``size`` confirmed boxes on ``size / BOXES_PER_FRAME`` frames of one video."""
    from django.db import connection

    from labeller.annotations.services import label_create
    from labeller.media.models import Video
    from labeller.projects.models import Project

    project = Project.objects.create(organization=organization, name=name)
    for label in LABELS:
        label_create(project=project, name=label)
    label_ids = list(project.labels.order_by("name").values_list("pk", flat=True))
    frames = size // BOXES_PER_FRAME
    video = Video.objects.create(project=project, file="bench/clip.mp4", original_name="clip.mp4", stage="ready",
                                 frame_count=frames, width=1280, height=720, fps=25.0)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO media_frame (created_at, updated_at, version, project_id, video_id, index, timestamp_s,
                                     original_name, image, thumbnail, width, height, is_keyframe, status, priority)
            SELECT now(), now(), 1, %s, %s, i, i / 25.0, '', 'bench/frame.jpg', '', 1280, 720, i %% 10 = 0,
                   CASE WHEN i %% 3 = 0 THEN 'complete' ELSE 'new' END, 0
            FROM generate_series(0, %s - 1) AS i
            """,
            [project.pk, video.pk, frames],
        )
        cursor.execute("SELECT min(id) FROM media_frame WHERE project_id = %s", [project.pk])
        first_frame = cursor.fetchone()[0]
        cursor.execute(
            """
            INSERT INTO annotations_annotation (created_at, updated_at, version, project_id, frame_id, label_id,
                                                x1, y1, x2, y2, status, source, suggestions, model_version)
            SELECT now(), now(), 1, %s, %s + i / %s, (%s::bigint[])[1 + i %% %s],
                   (i * 37 %% 1000) + 0.25, (i * 53 %% 600) + 0.5,
                   (i * 37 %% 1000) + 40.75 + i %% 200, (i * 53 %% 600) + 30.125 + i %% 90,
                   'confirmed', 'human', '[]'::jsonb, ''
            FROM generate_series(0, %s - 1) AS i
            """,
            [project.pk, first_frame, BOXES_PER_FRAME, label_ids, len(label_ids), size],
        )
        cursor.execute("ANALYZE media_frame; ANALYZE annotations_annotation")
    return project.pk


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def run_one_export(project_id: int) -> dict:
    """In the child: export the project as a worker would; time and peak memory."""
    from django.core.files.storage import default_storage

    from labeller.exports.models import ExportState
    from labeller.exports.services import ExportRequest, export_run, export_start
    from labeller.projects.models import Project

    baseline_mb = peak_rss_mb()
    export = export_start(project=Project.objects.get(pk=project_id), actor=None, request=ExportRequest())
    started = time.perf_counter()
    export_run(export_id=export.pk)
    seconds = time.perf_counter() - started
    export.refresh_from_db()
    assert export.state == ExportState.DONE, export.error
    result = {
        "seconds": seconds,
        "peak_mb": peak_rss_mb(),
        "baseline_mb": baseline_mb,
        "annotations": export.annotation_count,
        "images": export.image_count,
        "file_mb": export.size_bytes / 2**20,
    }
    default_storage.delete(export.file)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("LABELLER_BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--export-project", type=int, help=argparse.SUPPRESS)  # the child's job
    parser.add_argument("--media-root", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.export_project is not None:
        django_setup(args.database_url, args.media_root)
        print(json.dumps(run_one_export(args.export_project)))
        return

    media_root = tempfile.mkdtemp(prefix="labeller-bench-export-")
    load_start = os.getloadavg()
    recreate_database(args.database_url)
    django_setup(args.database_url, media_root)
    from django.core.management import call_command

    from labeller.tenants.models import Organization

    call_command("migrate", verbosity=0)
    organization = Organization.objects.create(slug="bench", name="Bench")
    projects = {}
    for key, size in SIZES:
        started = time.perf_counter()
        projects[key] = create_project(organization, size, f"bench {key}")
        print(f"created {size} boxes in {time.perf_counter() - started:.1f}s (not timed)", file=sys.stderr, flush=True)

    from django.db import connections

    connections.close_all()
    figures: dict = {}
    for key, _ in SIZES:
        child = subprocess.run(
            [sys.executable, __file__, "--database-url", args.database_url, "--media-root", media_root,
             "--export-project", str(projects[key])],
            capture_output=True, text=True, check=False,
        )
        if child.returncode != 0:
            sys.exit(f"export of {key} failed:\n{child.stderr[-4000:]}")
        result = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"{key}: {result}", file=sys.stderr, flush=True)
        figures[f"seconds_{key}"] = round(result["seconds"], 2)
        figures[f"peak_mb_{key}"] = round(result["peak_mb"], 1)
        figures[f"boxes_{key}"] = result["annotations"]
        figures[f"file_mb_{key}"] = round(result["file_mb"], 1)
        figures["baseline_mb"] = round(result["baseline_mb"], 1)
    figures["boxes_per_frame"] = BOXES_PER_FRAME
    figures["peak_memory"] = "VmHWM of the exporting child process (Python + Django + export)"
    figures["loadavg"] = [round(value, 2) for value in (*load_start[:1], *os.getloadavg())]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
