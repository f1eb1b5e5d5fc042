"""Single decode pass over a video (shot cuts, candidate frames and their
JPEGs), then candidate embeddings and thumbnails from those JPEGs.

Each decoded frame is downscaled by libswscale to the analysis size and fed
to the shot detector; only candidate frames are converted at full resolution
and written as JPEG. Nothing grows with the video's length except the
candidate list (a few numbers per candidate). Embedding reads the JPEGs back
(reduced-size JPEG decoding is cheap), so it can run as its own step, on
another queue or machine, without a second video decode.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from labeller.media.shots import ShotBoundaryDetector, ShotDetectionConfig, shot_index_of, shot_ranges
from labeller.media.video import VideoProbe, decode_video_frames, probe_video, rotate_upright, scaled_size

PROGRESS_EVERY_FRAMES = 100
EmbedFn = Callable[[Sequence[np.ndarray]], np.ndarray]
"""uint8 [H, W, 3] RGB images -> float32 [N, D], rows L2-normalised."""


@dataclass(frozen=True)
class ScanConfig:
    """How to scan a video.

    ``candidate_interval_s``: within each shot, a candidate frame every this
    many seconds, starting at the shot's first non-blank frame (keyframes
    are then chosen among candidates). ``every_nth``: dense-labelling mode,
    candidates are exactly frames 0, n, 2n, ... (blank or not).
    ``embedding_width`` / ``embed_batch_size``: how :func:`embed_candidates`
    feeds the embedder when :func:`scan_video` is given ``embed``.
    ``blank_std``: frames whose analysis image has a pixel standard deviation
    below this (black/flat frames in fades) are never chosen as candidates
    outside ``every_nth`` mode; they carry nothing to label.
    """

    shot_detection: ShotDetectionConfig = field(default_factory=ShotDetectionConfig)
    candidate_interval_s: float = 1.0
    every_nth: int | None = None
    jpeg_quality: int = 90
    embedding_width: int = 224
    embed_batch_size: int = 32
    blank_std: float = 4.0


@dataclass(frozen=True)
class Candidate:
    """A frame written to disk: full-resolution JPEG, upright (rotation
    applied), ``width`` x ``height`` pixels."""

    index: int
    timestamp_s: float
    shot_index: int
    jpeg_path: Path
    width: int
    height: int


@dataclass(frozen=True)
class ScanTimings:
    """Wall-clock seconds; ``total_s`` includes ``jpeg_s`` and ``embed_s``."""

    total_s: float
    jpeg_s: float
    embed_s: float


@dataclass(frozen=True, eq=False)
class ScanResult:
    """``cuts``: first frames of shots 2..n; ``shots``: [start, end_exclusive)
    ranges over the ``frame_count`` frames actually decoded; ``embeddings``:
    float32 [len(candidates), D] aligned with ``candidates``, or None when
    ``scan_video`` was not given ``embed``."""

    probe: VideoProbe
    frame_count: int
    cuts: tuple[int, ...]
    shots: tuple[tuple[int, int], ...]
    candidates: tuple[Candidate, ...]
    embeddings: np.ndarray | None
    timings: ScanTimings


def _write_jpeg(image: np.ndarray, path: Path, quality: int) -> None:
    # Write then rename, so a retried task never sees a half-written file.
    partial = path.with_name(path.name + ".part")
    Image.fromarray(image).save(partial, format="JPEG", quality=quality)
    os.replace(partial, path)


def scan_video(
    path: str | Path,
    *,
    candidate_dir: str | Path,
    config: ScanConfig = ScanConfig(),
    embed: EmbedFn | None = None,
    progress: Callable[[float], None] | None = None,
) -> ScanResult:
    """Decode ``path`` once: detect hard cuts, write candidate JPEGs to
    ``candidate_dir`` (``{index:08d}.jpg``, created if missing, existing files
    replaced), then, if ``embed`` is given, embed the candidates with
    :func:`embed_candidates` (after decoding, so the embedder's threads never
    compete with the decoder's).

    ``progress``, if given, is called now and then with the fraction of frames decoded.

    Raises :class:`labeller.media.video.MediaError` for unreadable videos.
    """
    started = time.perf_counter()
    probe = probe_video(path)
    candidate_dir = Path(candidate_dir)
    candidate_dir.mkdir(parents=True, exist_ok=True)
    analysis_size = scaled_size(probe.width, probe.height, config.shot_detection.analysis_width)
    interval_frames = max(1, round(config.candidate_interval_s * probe.fps))
    detector = ShotBoundaryDetector(probe.fps, config.shot_detection)

    taken: list[tuple[int, float, Path, int, int]] = []
    last_taken = -interval_frames
    shot_needs_candidate = True
    jpeg_s = 0.0
    frame_count = 0
    for index, timestamp_s, frame in decode_video_frames(path):
        frame_count = index + 1
        if progress and index % PROGRESS_EVERY_FRAMES == 0:
            progress(index / max(probe.frame_count, 1))
        small_bgr = frame.reformat(
            width=analysis_size[0], height=analysis_size[1], format="bgr24", interpolation="AREA"
        ).to_ndarray()
        new_cuts = detector.push(index, small_bgr)
        if new_cuts and max(new_cuts) > last_taken:
            shot_needs_candidate = True
        if config.every_nth:
            if index % config.every_nth:
                continue
        elif not (shot_needs_candidate or index - last_taken >= interval_frames) or (
            float(small_bgr.std()) < config.blank_std
        ):
            continue

        jpeg_started = time.perf_counter()
        image = rotate_upright(frame.to_ndarray(format="rgb24"), probe.rotation)
        jpeg_path = candidate_dir / f"{index:08d}.jpg"
        _write_jpeg(image, jpeg_path, config.jpeg_quality)
        jpeg_s += time.perf_counter() - jpeg_started
        taken.append((index, timestamp_s, jpeg_path, image.shape[1], image.shape[0]))
        last_taken, shot_needs_candidate = index, False

    cuts = detector.finish()
    candidates = tuple(
        Candidate(
            index=index,
            timestamp_s=timestamp_s,
            shot_index=shot_index_of(index, cuts),
            jpeg_path=jpeg_path,
            width=width,
            height=height,
        )
        for index, timestamp_s, jpeg_path, width, height in taken
    )
    embed_started = time.perf_counter()
    embeddings = (
        embed_candidates(candidates, embed, width=config.embedding_width, batch_size=config.embed_batch_size)
        if embed
        else None
    )
    embed_s = time.perf_counter() - embed_started if embed else 0.0
    return ScanResult(
        probe=probe,
        frame_count=frame_count,
        cuts=tuple(cuts),
        shots=shot_ranges(cuts, frame_count),
        candidates=candidates,
        embeddings=embeddings,
        timings=ScanTimings(total_s=time.perf_counter() - started, jpeg_s=jpeg_s, embed_s=embed_s),
    )


def load_for_embedding(jpeg_path: str | Path, *, width: int = 224) -> np.ndarray:
    """uint8 [h, width, 3] RGB of a JPEG scaled to ``width`` (aspect kept,
    EXIF orientation applied), decoded at reduced size by libjpeg's DCT
    scaling, a few times faster than a full decode."""
    with Image.open(jpeg_path) as opened:
        opened.draft("RGB", (width, width))
        image = ImageOps.exif_transpose(opened).convert("RGB")
    height = max(1, round(image.height * width / image.width))
    return np.array(image.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0))


def embed_candidates(
    candidates: Sequence[Candidate], embed: EmbedFn, *, width: int = 224, batch_size: int = 32
) -> np.ndarray:
    """Embed candidates from their JPEGs, ``batch_size`` images at a time
    (memory: one batch of small images). ``embed`` maps a list of uint8
    [H, W, 3] RGB arrays to float32 [N, D] with L2-normalised rows. Returns
    float32 [len(candidates), D] in candidate order ([0, 0] if none)."""
    batches = []
    for start in range(0, len(candidates), batch_size):
        batch = candidates[start:start + batch_size]
        images = [load_for_embedding(candidate.jpeg_path, width=width) for candidate in batch]
        batches.append(np.asarray(embed(images), dtype=np.float32))
    return np.concatenate(batches) if batches else np.zeros((0, 0), dtype=np.float32)


def make_thumbnail(source: str | Path | np.ndarray, *, max_side: int = 256, quality: int = 85) -> bytes:
    """JPEG bytes of ``source`` shrunk to fit ``max_side`` x ``max_side``.

    ``source``: an image file path (EXIF orientation applied) or a uint8
    [H, W, 3] RGB array. JPEG files are decoded at reduced scale by
    libjpeg's DCT scaling (``Image.draft``), much faster than a full decode.
    """
    if isinstance(source, np.ndarray):
        image = Image.fromarray(source).convert("RGB")
    else:
        with Image.open(source) as opened:
            opened.draft("RGB", (max_side, max_side))
            image = ImageOps.exif_transpose(opened).convert("RGB")
    image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
