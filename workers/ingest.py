"""Ingest stages as Celery tasks: thin wrappers over labeller.media.ingest.

Each takes (video_id, token), is idempotent, retries transient errors and records
terminal ones (bad data) on the video with a readable message.
"""

import logging
import time
from functools import wraps

from celery import shared_task

from labeller.core.errors import DomainError
from labeller.media import ingest
from labeller.media.video import MediaError

logger = logging.getLogger(__name__)

TASK_OPTIONS = {"bind": True, "acks_late": True, "reject_on_worker_lost": True, "max_retries": 3}


def ingest_stage(fn):
    @wraps(fn)
    def task(self, video_id: int, token: str):
        started = time.monotonic()
        # On Redis, a message whose worker died unacknowledged comes back marked so.
        redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
        try:
            fn(video_id=video_id, token=token, redelivered=redelivered)
        except (MediaError, DomainError) as error:
            ingest.ingest_fail(video_id=video_id, token=token, message=str(error))
            logger.warning("ingest of video %s failed: %s", video_id, error)
            return
        except Exception as error:
            if self.request.retries >= self.max_retries:
                ingest.ingest_fail(video_id=video_id, token=token, message=f"Ingest failed: {error}")
                raise
            # The retry is another message: it must find the stage waiting to claim it.
            ingest.ingest_stage_release(video_id=video_id, token=token, task_name=self.name)
            raise self.retry(exc=error, countdown=2 ** self.request.retries)
        logger.info("%s(video=%s) took %.2fs", self.name, video_id, time.monotonic() - started)

    return task


@shared_task(name="workers.ingest.probe_video", **TASK_OPTIONS)
@ingest_stage
def probe_video(video_id: int, token: str, redelivered: bool = False):
    ingest.ingest_probe(video_id=video_id, token=token, redelivered=redelivered)


@shared_task(name="workers.ingest.scan_video", **TASK_OPTIONS)
@ingest_stage
def scan_video(video_id: int, token: str, redelivered: bool = False):
    from labeller.ml import embed_images

    ingest.ingest_scan(video_id=video_id, token=token, embed=embed_images, redelivered=redelivered)


@shared_task(name="workers.ingest.select_keyframes", **TASK_OPTIONS)
@ingest_stage
def select_keyframes(video_id: int, token: str, redelivered: bool = False):
    ingest.ingest_keyframes(video_id=video_id, token=token, redelivered=redelivered)


@shared_task(name="workers.ingest.write_frames", **TASK_OPTIONS)
@ingest_stage
def write_frames(video_id: int, token: str, redelivered: bool = False):
    ingest.ingest_frames(video_id=video_id, token=token, redelivered=redelivered)
