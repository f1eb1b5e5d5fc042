"""Serving stored media only after the caller's tenancy check (never a public URL).

Every media response states its content type explicitly (the probed one, or
``application/octet-stream``), never one guessed from the stored name, and carries
``X-Content-Type-Options: nosniff`` and a sandboxing CSP: even a file that slipped
past the probe cannot run script in the app's origin. Only raster images, which
browsers never execute, are sent inline (the workspace shows frames); everything
else is an attachment.
"""

import atexit
import inspect
import logging
import os
import re
import shutil
import tempfile
import threading
import unicodedata
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import numpy as np
from PIL import Image

from django.conf import settings
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404, HttpResponse, HttpResponseRedirect
from django.utils.http import content_disposition_header

from labeller.media.models import Video
from labeller.media.video import MediaError, decode_frames_at, rotate_upright

logger = logging.getLogger(__name__)

# Frame URLs carry the frame version, so the bytes behind one URL never change.
CACHE_CONTROL = "private, max-age=86400"
OCTET_STREAM = "application/octet-stream"
JPEG = "image/jpeg"
PNG = "image/png"
# Types a browser only ever draws: safe to show inline. Never add a document type
# (text/html, image/svg+xml, application/xhtml+xml, ...).
INLINE_TYPES = frozenset({JPEG, PNG})
# A media response is never a page: no script, no plugins, no subresources, its own origin.
MEDIA_CSP = "sandbox; default-src 'none'"
_UNSAFE_FILENAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def serve_stored_file(field_file: FieldFile, *, content_type: str | None = None) -> HttpResponse:
    if not field_file:
        raise Http404("No file.")
    if isinstance(field_file.instance, Video) and field_file.field.name == "file":
        # The video's own probed type and a download name, whatever the caller passed.
        return serve_video_file(field_file.instance)
    return serve_stored(field_file.storage, field_file.name, content_type=content_type)


def serve_video_file(video: Video) -> HttpResponse:
    """The uploaded video as an attachment, with the content type its probe found."""
    if not video.file:
        raise Http404("No file.")
    suffix = PurePosixPath(video.file.name).suffix
    return serve_stored(
        video.file.storage,
        video.file.name,
        content_type=video.content_type or OCTET_STREAM,
        download_name=safe_download_name(video.original_name, suffix=suffix),
    )


def safe_download_name(original_name: str, *, suffix: str) -> str:
    """An ASCII file name for Content-Disposition: the uploader's stem (accents folded,
    anything else replaced) with the stored ``suffix``, so ``poc.html`` downloads as
    ``poc.mp4`` and never lands on disk as a web page."""
    stem = PurePosixPath(original_name.replace("\\", "/")).stem
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    ascii_stem = _UNSAFE_FILENAME_CHARS.sub("_", ascii_stem).strip("._")[:100] or "file"
    return ascii_stem + _UNSAFE_FILENAME_CHARS.sub("", suffix)


def serve_stored(
    storage, name: str, *, content_type: str | None = None, download_name: str | None = None
) -> HttpResponse:
    """Hand out ``name`` from ``storage`` as ``content_type`` (octet-stream when not given).

    Three ways, all with the same content type and disposition: a local file streamed by
    Django, an nginx ``X-Accel-Redirect`` (nginx keeps Content-Type and
    Content-Disposition; its internal location should add the nosniff and CSP headers
    too, see README), or a redirect to a short-lived signed object-storage URL whose
    response type and disposition are pinned by the signed parameters.
    """
    content_type = content_type or OCTET_STREAM
    inline = content_type in INLINE_TYPES
    disposition = content_disposition_header(
        as_attachment=not inline,
        filename=download_name or safe_download_name(name, suffix=PurePosixPath(name).suffix),
    )
    accel_prefix = settings.LABELLER.get("X_ACCEL_MEDIA_PREFIX")
    try:
        path = storage.path(name)
    except NotImplementedError:
        # Object storage: hand out a short-lived signed URL instead of proxying the bytes.
        response = HttpResponseRedirect(_signed_url(storage, name, content_type=content_type, disposition=disposition))
        return _with_media_headers(response)
    if accel_prefix:
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = accel_prefix.rstrip("/") + "/" + quote(name)
    else:
        try:
            # FileResponse guesses the type from the name only when none is given: always give one.
            response = FileResponse(open(path, "rb"), content_type=content_type)
        except FileNotFoundError as exc:
            raise Http404("The file is missing from storage.") from exc
    response["Content-Disposition"] = disposition
    response["Cache-Control"] = CACHE_CONTROL
    return _with_media_headers(response)


def _with_media_headers(response: HttpResponse) -> HttpResponse:
    response["X-Content-Type-Options"] = "nosniff"
    # Set before the CSP middleware runs, which then leaves it alone.
    response["Content-Security-Policy"] = MEDIA_CSP
    return response


def _signed_url(storage, name: str, *, content_type: str, disposition: str) -> str:
    # django-storages' S3Storage signs these into the URL, and S3 answers with them instead
    # of the object's stored metadata. Other backends' url() takes no parameters; S3 cannot
    # add nosniff or a CSP, but its responses come from the bucket's origin, not ours.
    if "parameters" in inspect.signature(storage.url).parameters:
        return storage.url(
            name, parameters={"ResponseContentType": content_type, "ResponseContentDisposition": disposition}
        )
    return storage.url(name)


def stored_image_type(name: str) -> str:
    """A frame image's content type from its stored name, whose suffix the server chose from
    the probed format (``.png`` for PNGs kept as uploaded, ``.jpg`` for everything else)."""
    return PNG if name.lower().endswith(".png") else JPEG


def read_frame_rgb(frame) -> np.ndarray:
    """The frame's stored image (JPEG or PNG) decoded as uint8 [H, W, 3] RGB."""
    with frame.image.open("rb") as handle, Image.open(handle) as image:
        return np.array(image.convert("RGB"))


def _path_on_disk(storage, name: str) -> Path | None:
    """The stored file's own path, or None on storage without local paths (S3)."""
    try:
        return Path(storage.path(name))
    except NotImplementedError:
        return None


def _copy_stored(storage, name: str, into) -> None:
    with storage.open(name, "rb") as source:
        shutil.copyfileobj(source, into, length=1024 * 1024)
    into.flush()


@contextmanager
def stored_file_path(storage, name: str) -> Iterator[Path]:
    """A local path to a stored file: the file itself on disk storage, else a temporary copy."""
    local = _path_on_disk(storage, name)
    if local is not None:
        yield local
        return
    with tempfile.NamedTemporaryFile(suffix=Path(name).suffix) as copy:
        _copy_stored(storage, name, copy)
        yield Path(copy.name)


def field_file_path(field_file: FieldFile):
    """A local path to a model's stored file (see :func:`stored_file_path`)."""
    return stored_file_path(field_file.storage, field_file.name)


class LocalCopies:
    """Local copies of files on storage without local paths (S3), kept between calls in one
    process up to a byte budget, the least recently used dropped first.

    Every refresh of a video frame's proposals decodes frames of its video; without this, each
    would copy the whole video from object storage first. A stored name never gets new bytes
    (Django's storage gives every save a fresh name), so a copy stays right for as long as it is
    kept. On disk storage the file itself is used and nothing is copied.
    """

    def __init__(self, max_bytes: int | None = None, *, root: Path | None = None):
        self._max_bytes = max_bytes
        self._root = root or Path(tempfile.gettempdir()) / f"labeller-copies-{os.getuid()}"
        self._lock = threading.Lock()
        self._start(owner=None)

    def _start(self, *, owner: int | None) -> None:
        # ``owner``: the process whose folder holds the copies (set on first use, since a
        # worker's children are forked after this module is imported).
        self._owner = owner
        self._folder: Path | None = None
        # (id of the storage, name) -> (copy, the storage, held so that its id is not reused);
        # least recently used first.
        self._copies: OrderedDict[tuple[int, str], tuple[Path, object]] = OrderedDict()
        self._in_use: Counter[tuple[int, str]] = Counter()

    def _own_folder(self) -> Path:
        """This process's folder of copies, made on first use. Called with the lock held."""
        if self._folder is None:
            self._root.mkdir(mode=0o700, exist_ok=True)
            for folder in self._root.iterdir():
                # Left by a process that died without cleaning up (killed, or out of memory), or
                # by an earlier one with this process's number.
                if folder.name.isdigit() and (folder.name == str(os.getpid()) or not _process_alive(int(folder.name))):
                    shutil.rmtree(folder, ignore_errors=True)
            self._folder = self._root / str(os.getpid())
            self._folder.mkdir()
            atexit.register(_remove_if_mine, self._folder, os.getpid())
        return self._folder

    @property
    def max_bytes(self) -> int:
        return self._max_bytes if self._max_bytes is not None else settings.MEDIA_LOCAL_COPY_BYTES

    @contextmanager
    def path(self, storage, name: str) -> Iterator[Path]:
        """A local path to the stored file ``name``, valid inside the ``with`` block."""
        local = _path_on_disk(storage, name)
        if local is not None:
            yield local
            return
        key = (id(storage), name)
        with self._lock:
            if self._owner != os.getpid():
                self._start(owner=os.getpid())  # forked: the parent's copies are the parent's
            kept = self._copies.get(key)
            if kept is not None:
                self._copies.move_to_end(key)
            self._in_use[key] += 1
        try:
            yield kept[0] if kept is not None else self._copy(storage, name, key)
        finally:
            with self._lock:
                self._in_use[key] -= 1
                if not self._in_use[key]:
                    del self._in_use[key]
                self._drop_beyond_budget()

    def _copy(self, storage, name: str, key: tuple[int, str]) -> Path:
        with self._lock:
            folder = self._own_folder()
        # A copy cut short is deleted, never kept as if whole.
        with tempfile.NamedTemporaryFile(dir=folder, suffix=Path(name).suffix, delete=False) as copy:
            try:
                _copy_stored(storage, name, copy)
            except BaseException:
                Path(copy.name).unlink(missing_ok=True)
                raise
        with self._lock:
            if key in self._copies:  # another thread copied it meanwhile
                Path(copy.name).unlink(missing_ok=True)
            else:
                self._copies[key] = (Path(copy.name), storage)
            return self._copies[key][0]

    def _drop_beyond_budget(self) -> None:
        # Called with the lock held. A copy being read is never dropped, nor the newest one.
        sizes = {key: path.stat().st_size for key, (path, _) in self._copies.items() if path.exists()}
        total = sum(sizes.values())
        for key in list(self._copies)[:-1]:
            if total <= self.max_bytes:
                break
            if not self._in_use[key]:
                total -= sizes.get(key, 0)
                self._copies.pop(key)[0].unlink(missing_ok=True)


def _remove_if_mine(folder: Path, pid: int) -> None:
    # A forked child inherits its parent's exit handlers; only the folder's owner removes it.
    if os.getpid() == pid:
        shutil.rmtree(folder, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True


# One per process: a Celery worker's child keeps the videos it read last.
video_copies = LocalCopies()


def read_frames_around(frame, offsets_s: Sequence[float]) -> list[np.ndarray]:
    """The frames of a video frame's shot ``offsets_s`` seconds from it (those inside the shot),
    decoded from the video, upright and at the stored frame's size, as uint8 [H, W, 3] RGB.

    [] for a still, or where the video cannot be read: they are extra evidence for proposals,
    which go on without them.
    """
    if frame.video is None:
        return []
    rate = frame.video.fps or 25.0
    return list(read_shot_frames(frame, sorted({frame.index + round(offset * rate) for offset in offsets_s})).values())


def read_shot_frames(frame, indices: Sequence[int]) -> dict[int, np.ndarray]:
    """Frames ``indices`` of a video frame's shot, other than ``frame`` itself, by number in the
    order given, upright and at the stored frame's size, as uint8 [H, W, 3] RGB; decoded in one
    pass after one seek, so callers ask for all they need at once.

    Those outside the shot or that cannot be decoded are left out; {} for a still, or where
    the video cannot be read.
    """
    video = frame.video
    if video is None:
        return {}
    start, end = (frame.shot.start_frame, frame.shot.end_frame) if frame.shot else (0, video.frame_count or 0)
    indices = [index for index in indices if start <= index < end and index != frame.index]
    if not indices:
        return {}
    try:
        with video_copies.path(video.file.storage, video.file.name) as path:
            decoded = decode_frames_at(path, indices)
    except (MediaError, OSError) as error:
        logger.warning("video frames near frame %s not read: %s", frame.pk, error)
        return {}
    frames = {}
    for index in indices:
        if index in decoded:
            image = Image.fromarray(rotate_upright(decoded[index], video.rotation))
            if image.size != (frame.width, frame.height):
                image = image.resize((frame.width, frame.height), Image.Resampling.BILINEAR)
            frames[index] = np.asarray(image)
    return frames
