"""Helpers that run the ingest stages as the worker would, for tests that need real frames."""

from pathlib import Path

from django.core.files.storage import default_storage

from labeller.media import ingest
from labeller.media.models import Video
from labeller.ml import embed_images
from proposals.synthetic import SyntheticVideo, write_synthetic_video


def run_pipeline(video: Video) -> Video:
    token = str(video.ingest_token)
    ingest.ingest_probe(video_id=video.pk, token=token)
    ingest.ingest_scan(video_id=video.pk, token=token, embed=embed_images)
    ingest.ingest_keyframes(video_id=video.pk, token=token)
    ingest.ingest_frames(video_id=video.pk, token=token)
    video.refresh_from_db()
    return video


def make_synthetic(folder: Path, **options) -> SyntheticVideo:
    settings = {"seconds": 6, "fps": 25, "width": 320, "height": 192, "n_shots": 3, "seed": 3, **options}
    return write_synthetic_video(folder / "counter.mp4", **settings)


def ingest_synthetic(project, actor, synthetic: SyntheticVideo) -> Video:
    video = ingest.video_create_from_file(project=project, actor=actor, path=synthetic.path, original_name="counter.mp4")
    return run_pipeline(video)


def stored_files() -> set[str]:
    """Every file name in the default storage."""
    found = set()

    def walk(prefix):
        folders, files = default_storage.listdir(prefix) if default_storage.exists(prefix or ".") else ([], [])
        found.update(f"{prefix}{name}" for name in files)
        for folder in folders:
            walk(f"{prefix}{folder}/")

    walk("")
    return found


def label_and_learn(video: Video, actor, synthetic: SyntheticVideo) -> None:
    """What a project in use has stored: a confirmed box, proposals (their candidates cached)
    and an index built from the box (base file and segments)."""
    from labeller.annotations.models import Label
    from labeller.annotations.services import Box, annotation_create
    from labeller.media.models import Frame
    from labeller.training.proposing import proposals_refresh
    from labeller.training.services import index_sync

    frames = list(Frame.objects.filter(video=video).order_by("index"))
    truth = synthetic.boxes[frames[0].index][0]
    label, _ = Label.objects.get_or_create(project=video.project, name=truth.label)
    annotation_create(frame=frames[0], actor=actor, box=Box(*truth.box), label=label)
    index_sync(project_id=video.project_id)
    proposals_refresh(frame_id=frames[-1].pk, force=True)
