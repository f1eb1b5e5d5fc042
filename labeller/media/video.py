"""Probing and streaming decode of uploaded videos and images (no Django).

Everything here looks at file *content* (PyAV/FFmpeg for videos, Pillow for
images); the extension and the declared MIME type are never trusted. Every
rejection is a :class:`MediaError` whose ``message`` can be shown to the
uploader and whose ``code`` is stable for the API and the tests.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Image formats we accept for upload. Anything else Pillow can open (EPS needs
# Ghostscript, PSD/ICO/... have no place in a labelling tool) is "unsupported".
ACCEPTED_IMAGE_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF", "TIFF"})

# FFmpeg happily opens a still image as a one-frame "video"; these demuxers
# mean the upload is an image and belongs to the image path.
_IMAGE_DEMUXER_SUFFIXES = ("_pipe", "image2")

# Leading bytes of the containers we accept (ISO-BMFF mp4/mov, Matroska/WebM,
# AVI). Only used to tell "a broken video" from "not a video at all" when
# FFmpeg refuses the file, so the uploader gets the right message.
_ISO_BMFF_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"


class MediaErrorCode(StrEnum):
    EMPTY_FILE = "empty_file"
    NOT_MEDIA = "not_media"
    CORRUPT = "corrupt"
    TOO_LONG = "too_long"
    TOO_LARGE = "too_large"
    IMAGE_BOMB = "image_bomb"
    UNSUPPORTED = "unsupported"


class MediaError(Exception):
    """A file that cannot be ingested. ``message`` is written for the uploader."""

    def __init__(self, code: MediaErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class StoredFormat:
    """How a probed video is stored and served: the file suffix (with its dot) and
    the ``Content-Type``. Derived from the container FFmpeg recognised, never from
    the uploader's file name, so a file named ``x.html`` is stored and served as
    what it really is."""

    content_type: str
    suffix: str


OCTET_STREAM = StoredFormat("application/octet-stream", ".bin")
# FFmpeg's demuxer names (``container.format.name``) of the containers we serve as video.
_ISO_BMFF_DEMUXER = "mov,mp4,m4a,3gp,3g2,mj2"
_MATROSKA_DEMUXER = "matroska,webm"
# WebM allows only these video codecs; PyAV may name the decoder (libvpx-vp9, libdav1d).
_WEBM_CODECS = frozenset({"vp8", "vp9", "av1", "libvpx", "libvpx-vp9", "libdav1d", "libaom-av1"})


def stored_format(container: str, codec: str) -> StoredFormat:
    """The suffix and content type for a video FFmpeg opened with demuxer
    ``container`` and decodes with ``codec``; ``application/octet-stream``/``.bin``
    for anything else (never a type a browser would render as a document)."""
    if container == _ISO_BMFF_DEMUXER:
        return StoredFormat("video/mp4", ".mp4")
    if container == _MATROSKA_DEMUXER:
        if codec in _WEBM_CODECS:
            return StoredFormat("video/webm", ".webm")
        return StoredFormat("video/x-matroska", ".mkv")
    if container == "avi":
        return StoredFormat("video/x-msvideo", ".avi")
    return OCTET_STREAM


@dataclass(frozen=True)
class VideoProbe:
    """What ingestion needs to know about a video before decoding it.

    ``width``/``height`` are the stored (coded) frame size; ``rotation`` is the
    clockwise rotation in degrees (0, 90, 180, 270) a player applies to show
    it upright, so ``display_width``/``display_height`` are what people see.
    ``frame_count`` comes from the container when it records one
    (``frame_count_exact``) and is otherwise ``round(duration_s * fps)``.
    """

    duration_s: float
    fps: float
    frame_count: int
    frame_count_exact: bool
    width: int
    height: int
    rotation: int
    codec: str
    container: str

    @property
    def display_width(self) -> int:
        return self.height if self.rotation in (90, 270) else self.width

    @property
    def display_height(self) -> int:
        return self.width if self.rotation in (90, 270) else self.height

    @property
    def stored_format(self) -> StoredFormat:
        return stored_format(self.container, self.codec)


@dataclass(frozen=True)
class ImageProbe:
    """An accepted still image. ``width``/``height`` are as displayed, i.e.
    after the EXIF orientation is applied; ``format`` is Pillow's name
    ("JPEG", "PNG", ...)."""

    width: int
    height: int
    format: str


@dataclass(frozen=True)
class DecodedFrame:
    """One decoded frame: ``image`` is uint8 [H, W, 3] in the requested
    channel order (RGB by default), ``index`` is 0-based in presentation
    order and ``timestamp_s`` is measured from the stream's first frame."""

    index: int
    timestamp_s: float
    image: np.ndarray


def _check_file_size(path: Path, max_bytes: int | None) -> None:
    try:
        size = path.stat().st_size
    except OSError as error:
        raise MediaError(MediaErrorCode.NOT_MEDIA, "The file could not be read.") from error
    if size == 0:
        raise MediaError(MediaErrorCode.EMPTY_FILE, "The file is empty.")
    if max_bytes is not None and size > max_bytes:
        raise MediaError(
            MediaErrorCode.TOO_LARGE,
            f"The file is {size / 2**20:.0f} MiB; the limit is {max_bytes / 2**20:.0f} MiB.",
        )


def _looks_like_video_container(path: Path) -> bool:
    with path.open("rb") as file:
        head = file.read(16)
    return (
        head[4:8] in _ISO_BMFF_BOXES
        or head.startswith(_EBML_MAGIC)
        or (head.startswith(b"RIFF") and head[8:12] == b"AVI ")
    )


def _open_container(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except av.FFmpegError as error:
        if _looks_like_video_container(path):
            raise MediaError(
                MediaErrorCode.CORRUPT,
                "The video file is damaged or incomplete (was the upload interrupted?).",
            ) from error
        raise MediaError(
            MediaErrorCode.NOT_MEDIA, "The file is not a video or image we can read."
        ) from error


def container_format_name(source: str | Path | BinaryIO) -> str | None:
    """FFmpeg's demuxer name (``container.format.name``) for a path or a binary file
    object, or None when FFmpeg cannot open it. Reads the header only: for files
    stored before the content type was recorded."""
    try:
        opened = av.open(str(source) if isinstance(source, Path) else source, mode="r", metadata_errors="ignore")
        with opened as container:
            return container.format.name
    except (av.FFmpegError, OSError, ValueError):
        return None


def scaled_size(width: int, height: int, target_width: int) -> tuple[int, int]:
    """Size of a ``width`` x ``height`` frame scaled to ``target_width`` (never
    up), keeping the aspect ratio, both sides even (what swscale and the
    4:2:0 encoders like)."""
    if width <= target_width:
        return width, height
    scaled_height = max(2, round(height * target_width / width / 2) * 2)
    return target_width - target_width % 2, scaled_height


def stream_rotation(stream: av.video.stream.VideoStream, first_frame: av.VideoFrame) -> int:
    """Clockwise degrees (0/90/180/270) needed to show frames upright.

    FFmpeg attaches the container's display matrix to decoded frames
    (``VideoFrame.rotation``, counter-clockwise degrees); old files may only
    carry the legacy clockwise ``rotate`` tag.
    """
    counter_clockwise = first_frame.rotation
    if counter_clockwise:
        clockwise = -counter_clockwise
    else:
        try:
            clockwise = int(stream.metadata.get("rotate", "0"))
        except ValueError:
            clockwise = 0
    return int(round(clockwise / 90.0)) % 4 * 90


def rotate_upright(image: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a clockwise ``rotation`` (0/90/180/270) to an [H, W, C] array."""
    if rotation == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=-(rotation // 90)))


def _frame_rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return Fraction(rate)
    return None


def _duration_s(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def _count_packets(path: Path) -> int:
    # Last resort for streams that record neither frame count nor duration
    # (raw elementary streams): demuxing without decoding is cheap.
    with av.open(str(path), metadata_errors="ignore") as container:
        return sum(1 for packet in container.demux(video=0) if packet.size)


def probe_video(
    path: str | Path,
    *,
    max_duration_s: float | None = None,
    max_pixels: int | None = None,
    max_bytes: int | None = None,
) -> VideoProbe:
    """Read a video's metadata and decode its first frame.

    Decoding one frame proves the codec is supported and the stream is not
    garbage, which the header alone cannot. Raises :class:`MediaError`:
    ``empty_file``; ``too_large`` (more than ``max_bytes`` bytes or more than
    ``max_pixels`` pixels per frame); ``not_media`` (no recognisable content);
    ``corrupt`` (a video container FFmpeg cannot read, or an undecodable first
    frame); ``unsupported`` (an image, audio only, or no decoder for the
    codec); ``too_long`` (longer than ``max_duration_s``).
    """
    path = Path(path)
    _check_file_size(path, max_bytes)
    with _open_container(path) as container:
        if container.format.name.endswith(_IMAGE_DEMUXER_SUFFIXES):
            raise MediaError(MediaErrorCode.UNSUPPORTED, "This is a still image; upload it as an image.")
        if not container.streams.video:
            if container.streams.audio:
                raise MediaError(MediaErrorCode.UNSUPPORTED, "The file has sound but no picture.")
            raise MediaError(MediaErrorCode.NOT_MEDIA, "The file is not a video or image we can read.")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise MediaError(MediaErrorCode.UNSUPPORTED, "The video's codec is not supported.")
        codec = stream.codec_context.name
        width, height = stream.codec_context.width, stream.codec_context.height
        if max_pixels is not None and width * height > max_pixels:
            raise MediaError(
                MediaErrorCode.TOO_LARGE, f"The video is {width}x{height}; that frame size is too large."
            )
        try:
            first_frame = next(container.decode(stream), None)
        except av.FFmpegError as error:
            no_decoder = isinstance(error, av.error.DecoderNotFoundError)
            code = MediaErrorCode.UNSUPPORTED if no_decoder else MediaErrorCode.CORRUPT
            raise MediaError(code, f"The video stream ({codec}) could not be decoded.") from error
        if first_frame is None:
            raise MediaError(MediaErrorCode.CORRUPT, "The video contains no decodable frames.")
        rate = _frame_rate(stream)
        if rate is None:
            raise MediaError(MediaErrorCode.CORRUPT, "The video does not state its frame rate.")
        duration_s = _duration_s(container, stream)
        frame_count = stream.frames
        frame_count_exact = frame_count > 0
        if not frame_count_exact:
            frame_count = round(duration_s * rate) if duration_s else _count_packets(path)
        if duration_s is None:
            duration_s = float(frame_count / rate)
        rotation = stream_rotation(stream, first_frame)
        container_name = container.format.name
    if max_duration_s is not None and duration_s > max_duration_s:
        raise MediaError(
            MediaErrorCode.TOO_LONG,
            f"The video lasts {_format_duration(duration_s)}; the limit is {_format_duration(max_duration_s)}.",
        )
    return VideoProbe(
        duration_s=duration_s,
        fps=float(rate),
        frame_count=int(frame_count),
        frame_count_exact=frame_count_exact,
        width=width,
        height=height,
        rotation=rotation,
        codec=codec,
        container=container_name,
    )


def _format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(math.ceil(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def probe_image(path: str | Path, *, max_pixels: int, max_bytes: int | None = None) -> ImageProbe:
    """Validate a still image by decoding it fully, with the size checked first.

    The pixel count is read from the header and compared with ``max_pixels``
    *before* any decoding, so a decompression bomb (a small file declaring a
    huge canvas) costs nothing. Raises :class:`MediaError`: ``empty_file``,
    ``too_large`` (bytes), ``not_media``, ``unsupported`` (a format outside
    :data:`ACCEPTED_IMAGE_FORMATS`), ``image_bomb``, ``corrupt`` (truncated or
    damaged pixel data).
    """
    path = Path(path)
    _check_file_size(path, max_bytes)
    try:
        with Image.open(path) as image:
            if image.format not in ACCEPTED_IMAGE_FORMATS:
                raise MediaError(MediaErrorCode.UNSUPPORTED, f"{image.format} images are not supported.")
            width, height = image.size
            if width * height > max_pixels:
                raise _image_bomb(width, height)
            image.load()
            upright_width, upright_height = ImageOps.exif_transpose(image).size
            return ImageProbe(width=upright_width, height=upright_height, format=image.format)
    except Image.DecompressionBombError as error:
        # Pillow's own guard fires in open() for absurd sizes (> 2x its limit).
        raise MediaError(MediaErrorCode.IMAGE_BOMB, "The image declares an absurdly large size.") from error
    except UnidentifiedImageError as error:
        raise MediaError(MediaErrorCode.NOT_MEDIA, "The file is not an image we can read.") from error
    except (OSError, SyntaxError, ValueError) as error:
        # Pillow reports truncated and damaged pixel data as OSError/SyntaxError.
        raise MediaError(MediaErrorCode.CORRUPT, "The image is damaged or incomplete.") from error


def _image_bomb(width: int, height: int) -> MediaError:
    return MediaError(
        MediaErrorCode.IMAGE_BOMB, f"The image declares {width}x{height} pixels, more than we accept."
    )


def _decoding_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The container's first video stream, set to decode on FFmpeg's own threads."""
    if not container.streams.video:
        raise MediaError(MediaErrorCode.UNSUPPORTED, "The file has no video stream.")
    stream = container.streams.video[0]
    # Frame + slice threading: the biggest single speed-up on small machines.
    stream.thread_type = "AUTO"
    return stream


def decode_video_frames(path: str | Path) -> Iterator[tuple[int, float, av.VideoFrame]]:
    """Yield ``(index, timestamp_s, frame)`` for every frame of the first video
    stream in presentation order, decoding on FFmpeg's own threads.

    ``index`` is 0-based; ``timestamp_s`` is measured from the first frame.
    Frames are produced one at a time, so memory does not grow with the
    video's length. Decoding errors mid-stream become ``MediaError("corrupt")``.
    """
    with _open_container(Path(path)) as container:
        stream = _decoding_stream(container)
        frame_duration_s = 1.0 / float(_frame_rate(stream) or 25)
        start_time_s: float | None = None
        try:
            for index, frame in enumerate(container.decode(stream)):
                time_s = frame.time if frame.time is not None else index * frame_duration_s
                start_time_s = time_s if start_time_s is None else start_time_s
                yield index, time_s - start_time_s, frame
        except av.FFmpegError as error:
            raise MediaError(MediaErrorCode.CORRUPT, "The video is damaged part-way through.") from error


def decode_frames_at(path: str | Path, indices: Collection[int]) -> dict[int, np.ndarray]:
    """The frames numbered ``indices`` as uint8 ``[H, W, 3]`` RGB, not rotated, after one seek.

    For a few frames close together (those around a frame to label), which would otherwise
    mean decoding the video from its start. A frame's number is its time since the stream's
    start times the frame rate: its decode number (:func:`decode_video_frames`) in a
    constant-rate video. Numbers the video does not have are left out.
    """
    wanted = set(indices)
    if not wanted:
        return {}
    found: dict[int, np.ndarray] = {}
    with _open_container(Path(path)) as container:
        stream = _decoding_stream(container)
        rate = _frame_rate(stream) or Fraction(25)
        time_base = stream.time_base or Fraction(1, 1000)
        origin = stream.start_time or 0
        try:
            # Backward: to the last keyframe at or before the first wanted frame.
            container.seek(origin + int(min(wanted) / rate / time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                number = round((frame.pts - origin) * time_base * rate)
                if number in wanted:
                    found[number] = frame.to_ndarray(format="rgb24")
                if number >= max(wanted):
                    break
        except av.FFmpegError as error:
            raise MediaError(MediaErrorCode.CORRUPT, "The video is damaged part-way through.") from error
    return found


def iter_frames(
    path: str | Path,
    *,
    width: int | None = None,
    pixel_format: str = "rgb24",
    interpolation: str = "AREA",
) -> Iterator[DecodedFrame]:
    """Stream a video's frames as numpy arrays, optionally downscaled.

    ``width``: scale to this width (never up, aspect kept, even sizes) with
    libswscale during colour conversion, which is far cheaper than resizing
    afterwards. ``pixel_format``: "rgb24" or "bgr24". Frames are not rotated;
    see :func:`rotate_upright`.
    """
    for index, timestamp_s, frame in decode_video_frames(path):
        out_width, out_height = (
            scaled_size(frame.width, frame.height, width) if width else (frame.width, frame.height)
        )
        image = frame.reformat(
            width=out_width, height=out_height, format=pixel_format, interpolation=interpolation
        ).to_ndarray()
        yield DecodedFrame(index=index, timestamp_s=timestamp_s, image=image)
