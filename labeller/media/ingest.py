"""Video ingestion: upload, then probe -> scan -> keyframes -> frames, one Celery task per stage.

Each stage reads the video by id, checks that its run (``ingest_token``) is still the
current one, does its work, stores its result, and enqueues the next stage after commit.
Derived rows are replaced atomically, so a retried or re-run stage never duplicates or
orphans anything. Intermediate results (candidate JPEGs, the scan manifest, embeddings)
live in Django storage, so consecutive stages may run on different workers. A running stage
keeps a heartbeat on the video; beat restarts, then fails, runs whose heartbeat stopped because
their worker died (``ingest_runs_recover_stalled``). A stage starts only once: the first message
to find it waiting claims it (:func:`_start_stage`), so beat can send again a stage that waited
too long in the queue, its message lost (``ingest_stages_resend_waiting``), and a copy that was
merely slow does nothing.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from labeller.annotations.models import Annotation
from labeller.core.errors import DomainError
from labeller.core.tasks import enqueue
from labeller.media.files import field_file_path, stored_file_path
from labeller.media.keyframes import every_nth_frames, select_keyframes_per_shot
from labeller.media.models import Frame, IngestStage, Shot, Video
from labeller.media.scan import ScanConfig, make_thumbnail, scan_video
from labeller.media.storage import video_work_prefix
from labeller.media.video import MediaError, MediaErrorCode, VideoProbe, probe_video
from labeller.projects.models import Project
from labeller.training.hooks import learning_after_ingest

logger = logging.getLogger(__name__)

# Overall percent at the start of each stage, for one progress bar across stages.
STAGE_START = {
    IngestStage.PROBING: 0,
    IngestStage.SCANNING: 5,
    IngestStage.KEYFRAMES: 80,
    IngestStage.FRAMES: 85,
    IngestStage.READY: 100,
}
TOO_LARGE_CODES = {MediaErrorCode.TOO_LARGE}
RUNNING_STAGES = (IngestStage.PROBING, IngestStage.SCANNING, IngestStage.KEYFRAMES, IngestStage.FRAMES)
# A run whose worker went silent is restarted this many times, then failed: a video that
# kills its worker every time (out of memory) must not loop for ever.
MAX_INGEST_RECOVERIES = 1
# What starting a run again writes.
RUN_FIELDS = [
    "ingest_token", "stage", "progress", "error", "ingest_heartbeat_at", "ingest_enqueued_at", "ingest_recoveries",
    "updated_at",
]


def media_error_to_domain(error: MediaError) -> DomainError:
    status = 413 if error.code in TOO_LARGE_CODES else 400
    return DomainError(message=str(error), code=str(error.code), http_status=status)


# --- upload ---------------------------------------------------------------------------


def _probe_fields(probe: VideoProbe) -> dict:
    return {
        "duration_s": probe.duration_s,
        "fps": probe.fps,
        "frame_count": probe.frame_count,
        "width": probe.width,
        "height": probe.height,
        "rotation": probe.rotation,
        "codec": probe.codec,
        "content_type": probe.stored_format.content_type,
    }


def video_create_from_file(*, project: Project, actor, path: Path, original_name: str) -> Video:
    """Check the file's content (never its name), store it and start ingestion.

    Bad files raise DomainError before anything is written, so a refused upload leaves
    no row and no file behind. The stored name's suffix and the content type come from
    the probed container: ``original_name`` is only shown, so an upload named
    ``x.html`` can never be served or saved as a web page.
    """
    limits = settings.LABELLER
    try:
        probe = probe_video(path, max_duration_s=limits["MAX_VIDEO_SECONDS"], max_bytes=limits["MAX_UPLOAD_BYTES"])
    except MediaError as error:
        raise media_error_to_domain(error) from error
    with transaction.atomic():
        video = Video(
            project=project,
            original_name=original_name[:255],
            size_bytes=path.stat().st_size,
            created_by=actor,
            stage=IngestStage.PROBING,
            ingest_token=uuid.uuid4(),
            ingest_enqueued_at=timezone.now(),
            **_probe_fields(probe),
        )
        with path.open("rb") as handle:
            video.file.save(f"{uuid.uuid4().hex}{probe.stored_format.suffix}", File(handle), save=False)
        try:
            video.save()
        except Exception:
            video.file.delete(save=False)
            raise
        _enqueue_stage(video, IngestStage.PROBING)
    return video


def video_ingest_restart(*, video: Video) -> Video:
    """Run the whole pipeline again (after a failure, or with new project settings)."""
    with transaction.atomic():
        video = Video.objects.select_for_update().get(pk=video.pk)
        video.ingest_token = uuid.uuid4()
        video.stage, video.progress, video.error = IngestStage.PROBING, 0, ""
        video.ingest_heartbeat_at, video.ingest_enqueued_at, video.ingest_recoveries = None, timezone.now(), 0
        video.save(update_fields=RUN_FIELDS)
        _enqueue_stage(video, IngestStage.PROBING)
    return video


@dataclass(frozen=True)
class RecoveredIngests:
    restarted: list[int]
    failed: list[int]


def ingest_runs_recover_stalled(*, silent_for: timedelta, now: datetime | None = None) -> RecoveredIngests:
    """Runs whose running stage has been silent for ``silent_for``: restart them, or fail them.

    A stage beats when it starts and as it progresses, and the beat is cleared while the next
    stage waits in the queue (a busy queue is not a dead worker), so silence means the worker
    holding the stage died. Without this the video would sit in its stage until the broker's
    visibility timeout redelivered the task (an hour on Redis). The run restarts under a new
    token, so the dead stage's own message, when the broker redelivers it, stops at once.
    """
    now = now or timezone.now()
    stalled = Video.objects.filter(stage__in=RUNNING_STAGES, ingest_heartbeat_at__lt=now - silent_for)
    restarted, failed = [], []
    for video_id in stalled.values_list("pk", flat=True):
        with transaction.atomic():
            video = stalled.select_for_update().filter(pk=video_id).first()
            if video is None:
                continue  # it beat, finished or restarted meanwhile
            stage = IngestStage(video.stage)
            if video.ingest_recoveries >= MAX_INGEST_RECOVERIES:
                video.stage = IngestStage.FAILED
                video.error = (
                    f"Ingest stopped: the worker processing this video went silent while "
                    f"{stage.label.lower()}, again after a restart. Reingest to try again; if it keeps "
                    f"happening, the video may need a worker with more memory."
                )
                failed.append(video.pk)
            else:
                video.ingest_token = uuid.uuid4()
                video.stage, video.progress, video.error = IngestStage.PROBING, 0, ""
                video.ingest_recoveries += 1
                restarted.append(video.pk)
            # Sent at the round's own time, so that the same round (a replay's, too) does not
            # take the probe just sent for one that waited too long (ingest_stages_resend_waiting).
            video.ingest_heartbeat_at, video.ingest_enqueued_at = None, now
            video.save(update_fields=RUN_FIELDS)
            if video.stage == IngestStage.PROBING:
                _enqueue_stage(video, IngestStage.PROBING)
    return RecoveredIngests(restarted=restarted, failed=failed)


def ingest_stages_resend_waiting(*, waiting_for: timedelta, now: datetime | None = None) -> list[int]:
    """Send again the stages that have waited ``waiting_for`` in the queue without a worker
    starting them; the ids of their videos.

    Their message is lost: published while the broker was down (the write is kept, see
    ``labeller.core.tasks``), or taken by a worker killed before the stage's first beat (the
    embedded broker never hands a taken message out again), and nothing else would ever start
    the stage. A message that was only slow, behind a long queue, and its copy both arrive; the
    first claims the stage and the other stops (:func:`_start_stage`).
    """
    now = now or timezone.now()
    waiting = Video.objects.filter(stage__in=RUNNING_STAGES, ingest_heartbeat_at__isnull=True).filter(
        Q(ingest_enqueued_at__lt=now - waiting_for) | Q(ingest_enqueued_at__isnull=True)
    )
    resent = []
    for video in waiting.only("pk", "stage", "ingest_token").order_by("pk"):
        # Marked as sent now, unless a worker started it or a new run began meanwhile.
        marked = _run_at_stage(video.pk, video.ingest_token, video.stage).filter(ingest_heartbeat_at__isnull=True)
        if marked.update(ingest_enqueued_at=now):
            _enqueue_stage(video, IngestStage(video.stage))
            resent.append(video.pk)
    return resent


STAGE_TASKS = {
    IngestStage.PROBING: "workers.ingest.probe_video",
    IngestStage.SCANNING: "workers.ingest.scan_video",
    IngestStage.KEYFRAMES: "workers.ingest.select_keyframes",
    IngestStage.FRAMES: "workers.ingest.write_frames",
}
STAGE_OF_TASK = {task_name: stage for stage, task_name in STAGE_TASKS.items()}


def _enqueue_stage(video: Video, stage: IngestStage) -> None:
    enqueue(STAGE_TASKS[stage], video.pk, str(video.ingest_token))


# --- stages ---------------------------------------------------------------------------


def _current_run(video_id: int, token: str) -> Video | None:
    """The video if this run is still the current one; None means: stop quietly."""
    video = Video.objects.select_related("project").filter(pk=video_id).first()
    if video is None or str(video.ingest_token) != token or video.stage == IngestStage.FAILED:
        return None
    return video


def _start_stage(video_id: int, token: str, stage: IngestStage, redelivered: bool) -> Video | None:
    """The video, if this message is the one to run ``stage`` now; None means: stop quietly.

    The first message to find the stage waiting (the run's current stage, no heartbeat) claims
    it with its first beat. Any other stops: one of an older run, one for a stage already
    passed, or a second copy of the stage's message while the first runs (beat's, see
    :func:`ingest_stages_resend_waiting`). A message the broker ``redelivered`` (on Redis, one
    whose worker died before acknowledging it) takes over its stage even though it was claimed:
    the claim was its own.
    """
    video = _current_run(video_id, token)
    if video is None:
        return None
    mine = _run_at_stage(video.pk, video.ingest_token, stage)
    if not redelivered:
        mine = mine.filter(ingest_heartbeat_at__isnull=True)
    claimed = mine.update(progress=STAGE_START[stage], ingest_heartbeat_at=timezone.now())
    return video if claimed else None


def ingest_stage_release(*, video_id: int, token: str, task_name: str) -> None:
    """The stage of task ``task_name`` failed for a passing reason and waits for its retry again:
    its claim is given back, so that the retry, or beat's copy if the retry is lost, can take it.
    A stage the run has already left is not touched."""
    _run_at_stage(video_id, token, STAGE_OF_TASK[task_name]).update(
        ingest_heartbeat_at=None, ingest_enqueued_at=timezone.now()
    )


def _run_at_stage(video_id: int, token, stage: IngestStage):
    """The video's row, while ``stage`` is the current stage of the run ``token``."""
    return Video.objects.filter(pk=video_id, ingest_token=token, stage=stage)


def _set_progress(video: Video, stage: IngestStage, fraction: float = 0.0) -> None:
    start = STAGE_START[stage]
    end = next((v for v in STAGE_START.values() if v > start), 100)
    progress = int(start + (end - start) * min(max(fraction, 0.0), 1.0))
    Video.objects.filter(pk=video.pk, ingest_token=video.ingest_token).update(
        stage=stage, progress=progress, ingest_heartbeat_at=timezone.now()
    )


def _heartbeat(video: Video) -> None:
    """The stage is alive, for long steps that report no progress."""
    Video.objects.filter(pk=video.pk, ingest_token=video.ingest_token).update(ingest_heartbeat_at=timezone.now())


def ingest_fail(*, video_id: int, token: str, message: str) -> None:
    """Record a terminal failure with a readable message; the run stops here."""
    Video.objects.filter(pk=video_id, ingest_token=token).update(
        stage=IngestStage.FAILED, error=message, ingest_heartbeat_at=None
    )


def _advance(video: Video, next_stage: IngestStage) -> None:
    with transaction.atomic():
        # Waiting in the queue is not silence: the next stage beats when it starts.
        updated = Video.objects.filter(pk=video.pk, ingest_token=video.ingest_token).update(
            stage=next_stage, progress=STAGE_START[next_stage], ingest_heartbeat_at=None,
            ingest_enqueued_at=timezone.now(),
        )
        if updated:
            _enqueue_stage(video, next_stage)


def _work_prefix(video: Video) -> str:
    project = video.project
    return video_work_prefix(organization_id=project.organization_id, project_id=project.pk, video_id=video.pk)


def _run_prefix(video: Video, token: str) -> str:
    """Where one ingest run keeps its candidate frames, manifest and embeddings."""
    return _work_prefix(video) + f"run-{token}/"


def ingest_probe(*, video_id: int, token: str, redelivered: bool = False) -> None:
    video = _start_stage(video_id, token, IngestStage.PROBING, redelivered)
    if video is None:
        return
    with field_file_path(video.file) as path:
        probe = probe_video(path, max_duration_s=settings.LABELLER["MAX_VIDEO_SECONDS"])
    Video.objects.filter(pk=video.pk, ingest_token=video.ingest_token).update(**_probe_fields(probe))
    _advance(video, IngestStage.SCANNING)


def ingest_scan(*, video_id: int, token: str, embed, redelivered: bool = False) -> None:
    """One decode pass: shot cuts, candidate frames (JPEG) and their embeddings."""
    video = _start_stage(video_id, token, IngestStage.SCANNING, redelivered)
    if video is None:
        return
    project = video.project
    config = ScanConfig(every_nth=project.every_nth_frame or None, jpeg_quality=project.jpeg_quality)
    storage = video.file.storage
    prefix = _run_prefix(video, token)
    with tempfile.TemporaryDirectory(prefix="labeller-scan-") as workdir, field_file_path(video.file) as path:
        result = scan_video(
            path,
            candidate_dir=workdir,
            config=config,
            embed=embed,
            progress=lambda fraction: _set_progress(video, IngestStage.SCANNING, fraction),
        )
        candidates = []
        for number, candidate in enumerate(result.candidates):
            if number % 100 == 0:
                _heartbeat(video)  # storing thousands of frames remotely takes minutes
            with candidate.jpeg_path.open("rb") as handle:
                name = storage.save(prefix + f"frame-{candidate.index:08d}.jpg", File(handle))
            candidates.append(
                {
                    "index": candidate.index,
                    "timestamp_s": candidate.timestamp_s,
                    "shot_index": candidate.shot_index,
                    "name": name,
                    "width": candidate.width,
                    "height": candidate.height,
                }
            )
    manifest = {"frame_count": result.frame_count, "shots": [list(s) for s in result.shots], "candidates": candidates}
    _save_replacing(storage, prefix + "scan.json", json.dumps(manifest).encode())
    buffer = io.BytesIO()
    np.save(buffer, result.embeddings if result.embeddings is not None else np.zeros((0, 0), np.float32))
    _save_replacing(storage, prefix + "embeddings.npy", buffer.getvalue())
    logger.info(
        "video %s scanned: %d frames, %d shots, %d candidates in %.1fs (embedding %.1fs)",
        video.pk, result.frame_count, len(result.shots), len(candidates), result.timings.total_s, result.timings.embed_s,
    )
    _advance(video, IngestStage.KEYFRAMES)


def _save_replacing(storage, name: str, data: bytes) -> None:
    if storage.exists(name):
        storage.delete(name)
    storage.save(name, ContentFile(data))


def _load_manifest(video: Video, token: str) -> tuple[dict, np.ndarray]:
    storage = video.file.storage
    prefix = _run_prefix(video, token)
    with storage.open(prefix + "scan.json", "rb") as handle:
        manifest = json.load(handle)
    with storage.open(prefix + "embeddings.npy", "rb") as handle:
        embeddings = np.load(io.BytesIO(handle.read()))
    return manifest, embeddings


def ingest_keyframes(*, video_id: int, token: str, redelivered: bool = False) -> None:
    """Choose keyframes per shot by farthest-point sampling of the candidates' embeddings."""
    video = _start_stage(video_id, token, IngestStage.KEYFRAMES, redelivered)
    if video is None:
        return
    project = video.project
    manifest, embeddings = _load_manifest(video, token)
    candidates = manifest["candidates"]
    if project.every_nth_frame:
        chosen = set(every_nth_frames(manifest["frame_count"], project.every_nth_frame))
        keyframe_rows = [i for i, c in enumerate(candidates) if c["index"] in chosen]
    elif candidates:
        keyframe_rows = select_keyframes_per_shot(
            [c["shot_index"] for c in candidates],
            embeddings,
            min_per_shot=project.keyframes_min_per_shot,
            max_per_shot=project.keyframes_max_per_shot,
        )
    else:
        keyframe_rows = []
    manifest["keyframe_rows"] = keyframe_rows
    _save_replacing(video.file.storage, _run_prefix(video, token) + "scan.json", json.dumps(manifest).encode())
    _advance(video, IngestStage.FRAMES)


def ingest_frames(*, video_id: int, token: str, redelivered: bool = False) -> None:
    """Replace the video's shots and frames with this run's, thumbnails included."""
    video = _start_stage(video_id, token, IngestStage.FRAMES, redelivered)
    if video is None:
        return
    manifest, _ = _load_manifest(video, token)
    storage = video.file.storage
    keyframe_rows = set(manifest["keyframe_rows"])
    thumbnails = []
    for row, candidate in enumerate(manifest["candidates"]):
        thumb_name = candidate["name"].removesuffix(".jpg") + ".thumb.jpg"
        if not storage.exists(thumb_name):
            with stored_file_path(storage, candidate["name"]) as path:
                storage.save(thumb_name, ContentFile(make_thumbnail(path)))
        thumbnails.append(thumb_name)
        if row % 20 == 0:
            _set_progress(video, IngestStage.FRAMES, row / max(len(manifest["candidates"]), 1))
    with transaction.atomic():
        locked = Video.objects.select_for_update().get(pk=video.pk)
        if str(locked.ingest_token) != token:
            return
        if Annotation.objects.filter(frame__video=locked).exists():
            raise DomainError("This video already has annotations; its frames cannot be replaced.", code="has_annotations")
        old_names = list(Frame.objects.filter(video=locked).values_list("image", "thumbnail"))
        Frame.objects.filter(video=locked).delete()
        Shot.objects.filter(video=locked).delete()
        shots = Shot.objects.bulk_create(
            Shot(video=locked, index=i, start_frame=start, end_frame=end) for i, (start, end) in enumerate(manifest["shots"])
        )
        Frame.objects.bulk_create(
            Frame(
                project_id=locked.project_id,
                video=locked,
                shot=shots[candidate["shot_index"]] if shots else None,
                index=candidate["index"],
                timestamp_s=candidate["timestamp_s"],
                image=candidate["name"],
                thumbnail=thumbnails[row],
                width=candidate["width"],
                height=candidate["height"],
                is_keyframe=row in keyframe_rows,
            )
            for row, candidate in enumerate(manifest["candidates"])
        )
        Video.objects.filter(pk=locked.pk).update(
            stage=IngestStage.READY,
            progress=100,
            error="",
            frame_count=manifest["frame_count"],
            ingest_heartbeat_at=None,
        )
        learning_after_ingest(video_id=locked.pk)
        current = {name for pair in Frame.objects.filter(video=locked).values_list("image", "thumbnail") for name in pair}
        stale = [name for pair in old_names for name in pair if name and name not in current]
        transaction.on_commit(lambda: _delete_stale_files(storage, video, token, stale))


def _delete_stale_files(storage, video: Video, token: str, names: list[str]) -> None:
    """Files of earlier runs: replaced frames and the work folders of other runs."""
    prefix = _work_prefix(video)
    try:
        run_folders, _ = storage.listdir(prefix)
    except FileNotFoundError:
        run_folders = []
    for folder in run_folders:
        if folder.startswith("run-") and folder != f"run-{token}":
            _, files = storage.listdir(prefix + folder)
            names.extend(prefix + folder + "/" + name for name in files)
    for name in names:
        storage.delete(name)
