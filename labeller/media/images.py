"""Still images as frames: single files, several at once, or a zip.

Every file's content is checked with Pillow before anything is written, so a refused
upload leaves no row and no file. Each image is stored re-encoded as a JPEG with the
project's quality, upright (EXIF orientation applied), which also drops metadata such
as GPS positions, plus a thumbnail. Encoding and storing happen outside the database
transaction (which on SQLite holds the write lock); the files are deleted again if the
rows cannot be written.
"""

from __future__ import annotations

import io
import logging
import shutil
import tempfile
import uuid
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from django.conf import settings
from django.db import transaction
from PIL import Image, ImageOps

from labeller.annotations.importers import DatasetFormatError, UnsafeArchiveError, iter_zip_images
from labeller.core.errors import DomainError
from labeller.media.models import Frame
from labeller.media.scan import make_thumbnail
from labeller.media.services import frame_store_images
from labeller.media.video import ImageProbe, MediaError, MediaErrorCode, probe_image
from labeller.projects.models import Project
from labeller.training.hooks import learning_after_stills

logger = logging.getLogger(__name__)

COPY_BUFFER = 1024 * 1024
WHITE = (255, 255, 255)


@dataclass(frozen=True)
class ZipLimits:
    max_files: int
    max_total_bytes: int
    max_ratio: float


@dataclass(frozen=True)
class FrameImage:
    """A frame's bytes as stored: ``jpeg`` is ``width`` x ``height`` pixels."""

    jpeg: bytes
    thumbnail: bytes
    width: int
    height: int


def zip_limits() -> ZipLimits:
    limits = settings.LABELLER
    return ZipLimits(
        max_files=limits["ZIP_MAX_FILES"],
        max_total_bytes=limits["ZIP_MAX_BYTES"],
        max_ratio=limits["ZIP_MAX_RATIO"],
    )


def image_probe(path: Path) -> ImageProbe:
    """Decode the image fully under the configured limits; raises ``MediaError``."""
    limits = settings.LABELLER
    return probe_image(
        path,
        max_pixels=limits["MAX_IMAGE_PIXELS"],
        max_bytes=limits["MAX_IMAGE_BYTES"],
    )


def frame_image_encode(path: Path, *, quality: int, upright: bool = True) -> FrameImage:
    """Re-encode a probed image as the frame's JPEG and thumbnail.

    ``upright=False`` keeps the pixels as stored, ignoring the EXIF orientation: for
    datasets whose boxes were drawn on the unrotated pixels.
    """
    with Image.open(path) as opened:
        opened.load()
        image = _flattened(ImageOps.exif_transpose(opened) if upright else opened)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return FrameImage(buffer.getvalue(), make_thumbnail(np.asarray(image)), image.width, image.height)


def _flattened(image: Image.Image) -> Image.Image:
    """RGB, with transparent areas shown on white (JPEG has no alpha; the default is black)."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def still_frame_store(frames: list[Frame], *, project: Project, original_name: str, image: FrameImage) -> None:
    """Append an unsaved still-image frame to ``frames`` and write its files to storage.

    ``frames`` comes from ``frame_files_deleted_on_error``; the frame joins it before
    its files are written, so a failure part-way through leaves no file behind.
    """
    frame = Frame(
        project=project,
        video=None,
        index=0,
        original_name=original_name[:255],
        width=image.width,
        height=image.height,
        is_keyframe=True,
    )
    frames.append(frame)
    frame_store_images(frame=frame, jpeg=image.jpeg, thumbnail_jpeg=image.thumbnail, name=uuid.uuid4().hex)


@contextmanager
def frame_files_deleted_on_error() -> Iterator[list[Frame]]:
    """Collect frames whose files are being written; if the block fails, their files go.

    Contract: the block commits the rows itself. A transaction of the caller's that
    rolls back after the block has ended would leave the files behind.
    """
    frames: list[Frame] = []
    try:
        yield frames
    except BaseException:
        for frame in frames:
            for field_file in (frame.image, frame.thumbnail):
                if field_file.name:
                    field_file.storage.delete(field_file.name)
        raise


def frames_create_from_images(*, project: Project, actor, files: Sequence[tuple[str, Path]]) -> list[Frame]:
    """Add still images to ``project``: ``files`` are ``(name the uploader gave, local path)``.

    Raises DomainError naming every refused file before anything is written.
    """
    if not files:
        raise DomainError("No images were sent.", code="no_images")
    _refuse_bad_images(files)
    with frame_files_deleted_on_error() as frames:
        for name, path in files:
            encoded = frame_image_encode(path, quality=project.jpeg_quality)
            still_frame_store(frames, project=project, original_name=name, image=encoded)
        with transaction.atomic():
            Frame.objects.bulk_create(frames)
            learning_after_stills(project_id=project.pk)
    logger.info("%s added %d images to project %s", actor, len(frames), project.pk)
    return frames


def frames_create_from_zip(*, project: Project, actor, archive: Path, archive_name: str) -> list[Frame]:
    """Add every image of a zip (other files are skipped); an unsafe archive is refused whole."""
    with tempfile.TemporaryDirectory(prefix="labeller-images-") as workdir:
        files = _unpack_images(archive, archive_name, Path(workdir))
        if not files:
            raise DomainError(f"{archive_name}: the archive holds no images.", code="no_images")
        return frames_create_from_images(project=project, actor=actor, files=files)


def _unpack_images(archive: Path, archive_name: str, workdir: Path) -> list[tuple[str, Path]]:
    files: list[tuple[str, Path]] = []
    reading = "a member"
    try:
        for number, (name, stream) in enumerate(iter_zip_images(archive, **asdict(zip_limits()))):
            reading = repr(name)
            # Numbered names: member paths may nest folders or clash once flattened.
            path = workdir / f"{number}{PurePosixPath(name).suffix.lower()}"
            with path.open("wb") as copy:
                shutil.copyfileobj(stream, copy, COPY_BUFFER)
            files.append((name, path))
            reading = "a member"
    except UnsafeArchiveError as error:
        raise DomainError(f"{archive_name}: {error}", code="unsafe_archive") from error
    except DatasetFormatError as error:
        raise DomainError(f"{archive_name}: {error}", code="bad_archive") from error
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise DomainError(f"{archive_name}: {reading} is damaged ({error}).", code="bad_archive") from error
    return files


def _refuse_bad_images(files: Sequence[tuple[str, Path]]) -> None:
    """One answer naming every bad file, so the uploader can fix them all at once."""
    problems = []
    for name, path in files:
        try:
            image_probe(path)
        except MediaError as error:
            problems.append({"file": name, "code": str(error.code), "message": error.message})
    if not problems:
        return
    too_large = all(problem["code"] == MediaErrorCode.TOO_LARGE for problem in problems)
    raise DomainError(
        "; ".join(f"{problem['file']}: {problem['message']}" for problem in problems),
        code=problems[0]["code"] if len(problems) == 1 else "invalid_images",
        http_status=413 if too_large else 400,
        extra={"files": problems},
    )

