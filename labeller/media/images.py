"""Still images as frames: single files, several at once, or a zip (in a bulk worker).

Every file's content is checked with Pillow (a full decode) before anything is written,
so a refused upload leaves no row and no file. A JPEG or PNG that needs no change (no
metadata, no transparency, a mode browsers and the models read alike) is stored byte for
byte as it came; any other image is re-encoded as a JPEG with the project's quality,
upright (EXIF orientation applied), which also drops its metadata: the GPS position, the
camera or the author of a photo is not handed to annotators or put in exports. Either way a
thumbnail is made. Each still keeps the SHA-256 of its file: with its name it keys
imports, so the same files imported again add nothing (they are counted as skipped).
Encoding and storing happen outside the database transaction (which on SQLite holds the
write lock); the files are deleted again if the rows cannot be written.
"""

from __future__ import annotations

import hashlib
import io
import logging
import shutil
import tempfile
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import IO

import numpy as np
from django.conf import settings
from django.db import transaction
from PIL import Image, ImageOps

from labeller.annotations.importers import DatasetFormatError, UnsafeArchiveError, check_zip, iter_zip_images
from labeller.annotations.importers.types import is_image_name
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


# Formats kept as uploaded, the stored suffix of each, and the modes kept (others, such as
# CMYK JPEGs or 16-bit PNGs, are re-encoded so that every reader sees the same RGB pixels).
KEPT_FORMATS = {"JPEG": ".jpg", "PNG": ".png"}
KEPT_MODES = {"JPEG": frozenset({"RGB", "L"}), "PNG": frozenset({"RGB", "L", "P"})}
# What a kept file may hold besides its pixels: how to decode and colour them, nothing about
# the photo (EXIF with its GPS position, XMP, IPTC, comments, text chunks, timestamps). Lists
# of what is allowed, so that a kind of metadata nobody thought of is dropped too.
KEPT_JPEG_SEGMENTS = (("APP0", b"JFIF\0"), ("APP2", b"ICC_PROFILE\0"), ("APP14", b"Adobe"))
KEPT_PNG_CHUNKS = frozenset({b"IHDR", b"PLTE", b"IDAT", b"IEND", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"pHYs"})
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NOT_A_CHUNK = b"????"  # stands for bytes that are no chunk (a damaged file, data after IEND): never kept
JPEG_END = b"\xff\xd9"
HASH_BUFFER = 1024 * 1024

# progress(done, total): called after each image is stored.
Progress = Callable[[int, int], None]
# beat(): called after each file while a zip is unpacked and its images decoded and hashed,
# steps with no progress to show that can take minutes; the callee throttles, and may raise
# to stop the work.
Beat = Callable[[], None]


@dataclass(frozen=True)
class FrameImage:
    """A frame's bytes as stored: ``data`` is ``width`` x ``height`` pixels, in the format
    ``suffix`` names (``.jpg`` or ``.png``)."""

    data: bytes
    thumbnail: bytes
    width: int
    height: int
    suffix: str = ".jpg"


@dataclass(frozen=True)
class StillSource:
    """An image file to add: the name the uploader gave, where it is, and its content's SHA-256."""

    name: str
    path: Path
    sha256: str

    @property
    def key(self) -> tuple[str, str]:
        return self.name[:255], self.sha256


@dataclass(frozen=True)
class StillsResult:
    """The frames written (saved rows), and how many images were already in the project."""

    created: list[Frame]
    skipped: int


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


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_BUFFER), b""):
            digest.update(chunk)
    return digest.hexdigest()


def still_image_prepare(path: Path, *, quality: int, upright: bool = True) -> FrameImage:
    """The frame's image and thumbnail for a probed file: its own bytes when they can be
    kept (see ``KEPT_FORMATS``), else re-encoded by ``frame_image_encode``."""
    with Image.open(path) as opened:
        keep = _keepable(opened) and _holds_no_metadata(opened, path)
        width, height, image_format = opened.width, opened.height, opened.format
    if keep:
        return FrameImage(path.read_bytes(), make_thumbnail(path), width, height, KEPT_FORMATS[image_format])
    return frame_image_encode(path, quality=quality, upright=upright)


def _keepable(image: Image.Image) -> bool:
    """Whether browsers, Pillow and OpenCV all see the stored pixels as the frame's pixels.

    Transparency would be drawn on white by one and black by another; an animation has more
    than one picture. (An EXIF rotation, which a browser applies and the models do not, is
    metadata: such a file is never kept.)
    """
    if image.format not in KEPT_FORMATS or image.mode not in KEPT_MODES[image.format]:
        return False
    return "transparency" not in image.info and not getattr(image, "is_animated", False)


def _holds_no_metadata(image: Image.Image, path: Path) -> bool:
    """Whether the file holds nothing but its pixels and how to show them (see
    ``KEPT_JPEG_SEGMENTS`` and ``KEPT_PNG_CHUNKS``), so that it can be served and exported as it came."""
    if image.format == "JPEG":
        segments_kept = all(
            any(marker == kept and data.startswith(prefix) for kept, prefix in KEPT_JPEG_SEGMENTS)
            for marker, data in image.applist
        )
        # Bytes after the end of the picture (a phone's trailer, an appended video) are not pixels.
        return segments_kept and _ends_with(path, JPEG_END)
    return _png_chunk_types(path) <= KEPT_PNG_CHUNKS


def _ends_with(path: Path, suffix: bytes) -> bool:
    with path.open("rb") as handle:
        handle.seek(0, io.SEEK_END)
        if handle.tell() < len(suffix):
            return False
        handle.seek(-len(suffix), io.SEEK_END)
        return handle.read() == suffix


def _png_chunk_types(path: Path) -> set[bytes]:
    """Every chunk type of a PNG file, read from the chunks' headers (Pillow only sees the
    chunks before the pixel data until it decodes them). Bytes after IEND count as a chunk
    that is not kept."""
    types: set[bytes] = set()
    with path.open("rb") as handle:
        if handle.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
            return {NOT_A_CHUNK}
        while header := handle.read(8):
            if len(header) < 8:
                return types | {NOT_A_CHUNK}
            length, kind = int.from_bytes(header[:4], "big"), header[4:]
            types.add(kind)
            handle.seek(length + 4, io.SEEK_CUR)  # the data and its CRC
            if kind == b"IEND":
                return types | ({NOT_A_CHUNK} if handle.read(1) else set())
    return types | {NOT_A_CHUNK}  # no IEND


def frame_image_encode(path: Path, *, quality: int, upright: bool = True) -> FrameImage:
    """Re-encode a probed image as the frame's JPEG and thumbnail.

    ``upright=False`` keeps the pixels as stored, ignoring the EXIF orientation: for
    datasets whose boxes were drawn on the unrotated pixels.
    """
    with Image.open(path) as opened:
        opened.load()
        image = _flattened(ImageOps.exif_transpose(opened) if upright else opened)
    # Pillow writes the source's comment again unless told otherwise; nothing else is carried.
    image.info.pop("comment", None)
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


def still_frame_store(
    frames: list[Frame], *, project: Project, original_name: str, image: FrameImage, sha256: str = ""
) -> None:
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
        content_sha256=sha256,
    )
    frames.append(frame)
    frame_store_images(
        frame=frame, image=image.data, thumbnail_jpeg=image.thumbnail, name=uuid.uuid4().hex, suffix=image.suffix
    )


def known_still_keys(project: Project, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which ``(original name, sha256)`` keys already name a still image of ``project``."""
    wanted = set(keys)
    hashes = sorted({sha256 for _, sha256 in wanted if sha256})
    found: set[tuple[str, str]] = set()
    for start in range(0, len(hashes), 500):  # bounded IN lists (SQLite's variable limit)
        chunk = hashes[start : start + 500]
        found |= set(
            Frame.objects.filter(project=project, video=None, content_sha256__in=chunk).values_list(
                "original_name", "content_sha256"
            )
        )
    return found & wanted


def frames_drop_known(frames: list[Frame], project: Project) -> int:
    """Take out of ``frames`` (in place) those another import wrote meanwhile, deleting their
    files; how many. Caller holds the project's row lock, so no other import writes now."""
    late = known_still_keys(project, [(frame.original_name, frame.content_sha256) for frame in frames])
    if not late:
        return 0
    dropped = [frame for frame in frames if (frame.original_name, frame.content_sha256) in late]
    frames[:] = [frame for frame in frames if (frame.original_name, frame.content_sha256) not in late]
    _delete_files(dropped)
    return len(dropped)


def project_lock(project: Project) -> None:
    """Lock the project's row until the transaction ends: imports into one project write one at a time.

    FOR NO KEY UPDATE, not FOR UPDATE: PostgreSQL checks a foreign key with FOR KEY SHARE on
    the row it points at, which only FOR UPDATE blocks. So boxes, proposals and events of
    other writers go on being inserted into the project while an import writes (and a label
    merge, which holds its labels and inserts events pointing at the project, cannot
    deadlock with it); only another import, asking for the same lock, waits.
    """
    Project.objects.select_for_update(no_key=True).filter(pk=project.pk).values_list("pk").first()


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
        _delete_files(frames)
        raise


def _delete_files(frames: list[Frame]) -> None:
    for frame in frames:
        for field_file in (frame.image, frame.thumbnail):
            if field_file.name:
                field_file.storage.delete(field_file.name)


def frames_create_from_images(*, project: Project, actor, files: Sequence[tuple[str, Path]]) -> StillsResult:
    """Add still images to ``project``: ``files`` are ``(name the uploader gave, local path)``.

    Raises DomainError naming every refused file before anything is written. Images already
    in the project (same name, same content) are skipped.
    """
    if not files:
        raise DomainError("No images were sent.", code="no_images")
    _refuse_bad_images(files)
    return stills_write(project=project, actor=actor, sources=_sources(files))


def stills_write(
    *,
    project: Project,
    actor,
    sources: Sequence[StillSource],
    progress: Progress | None = None,
    before_commit: Callable[[StillsResult], None] | None = None,
) -> StillsResult:
    """Store probed images as still frames, skipping those the project already has.

    ``before_commit(result)`` runs inside the transaction that writes the rows (a job marks
    itself done there, so rows and status commit together); if it raises, nothing is kept.
    """
    known = known_still_keys(project, [source.key for source in sources])
    todo: list[StillSource] = []
    for source in sources:
        if source.key not in known:
            known.add(source.key)  # twice in one upload: once
            todo.append(source)
    skipped = len(sources) - len(todo)
    with frame_files_deleted_on_error() as frames:
        for number, source in enumerate(todo, start=1):
            prepared = still_image_prepare(source.path, quality=project.jpeg_quality)
            still_frame_store(frames, project=project, original_name=source.name, image=prepared, sha256=source.sha256)
            if progress is not None:
                progress(number, len(todo))
        with transaction.atomic():
            project_lock(project)
            skipped += frames_drop_known(frames, project)
            Frame.objects.bulk_create(frames)
            if frames:
                learning_after_stills(project_id=project.pk)
            result = StillsResult(list(frames), skipped)
            if before_commit is not None:
                before_commit(result)
    logger.info("%s added %d images to project %s (%d already there)", actor, len(frames), project.pk, skipped)
    return result


def zip_images_check(*, archive: Path | IO[bytes], archive_name: str) -> None:
    """Refuse, cheaply (the central directory only), a zip that is unsafe, unreadable or holds no images."""
    try:
        names = check_zip(archive, **asdict(zip_limits()))
    except UnsafeArchiveError as error:
        raise DomainError(f"{archive_name}: {error}", code="unsafe_archive") from error
    except DatasetFormatError as error:
        raise DomainError(f"{archive_name}: {error}", code="bad_archive") from error
    if not any(is_image_name(name) for name in names):
        raise DomainError(f"{archive_name}: the archive holds no images.", code="no_images")


def frames_create_from_zip(
    *,
    project: Project,
    actor,
    archive: Path,
    archive_name: str,
    progress: Progress | None = None,
    beat: Beat | None = None,
    before_commit: Callable[[StillsResult], None] | None = None,
) -> StillsResult:
    """Add every image of a zip (other files are skipped); an unsafe archive or any bad image
    refuses the whole zip (DomainError naming each bad file) and nothing is written.

    ``beat()`` is called after each file unpacked, decoded and hashed; ``progress`` as each is stored.
    """
    with tempfile.TemporaryDirectory(prefix="labeller-images-") as workdir:
        files = _unpack_images(archive, archive_name, Path(workdir), beat)
        if not files:
            raise DomainError(f"{archive_name}: the archive holds no images.", code="no_images")
        _refuse_bad_images(files, beat)
        sources = _sources(files, beat)
        return stills_write(
            project=project, actor=actor, sources=sources, progress=progress, before_commit=before_commit
        )


def _sources(files: Sequence[tuple[str, Path]], beat: Beat | None = None) -> list[StillSource]:
    sources = []
    for name, path in files:
        sources.append(StillSource(name, path, file_sha256(path)))
        if beat is not None:
            beat()
    return sources


def _unpack_images(archive: Path, archive_name: str, workdir: Path, beat: Beat | None = None) -> list[tuple[str, Path]]:
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
            if beat is not None:
                beat()
    except UnsafeArchiveError as error:
        raise DomainError(f"{archive_name}: {error}", code="unsafe_archive") from error
    except DatasetFormatError as error:
        raise DomainError(f"{archive_name}: {error}", code="bad_archive") from error
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise DomainError(f"{archive_name}: {reading} is damaged ({error}).", code="bad_archive") from error
    return files


def _refuse_bad_images(files: Sequence[tuple[str, Path]], beat: Beat | None = None) -> None:
    """One answer naming every bad file, so the uploader can fix them all at once."""
    problems = []
    for name, path in files:
        try:
            image_probe(path)
        except MediaError as error:
            problems.append({"file": name, "code": str(error.code), "message": error.message})
        if beat is not None:
            beat()
    if not problems:
        return
    too_large = all(problem["code"] == MediaErrorCode.TOO_LARGE for problem in problems)
    raise DomainError(
        "; ".join(f"{problem['file']}: {problem['message']}" for problem in problems),
        code=problems[0]["code"] if len(problems) == 1 else "invalid_images",
        http_status=413 if too_large else 400,
        extra={"files": problems},
    )

