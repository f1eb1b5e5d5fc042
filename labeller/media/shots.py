"""Hard-cut (shot boundary) detection with PySceneDetect's ContentDetector.

Frames come from PyAV already downscaled by libswscale (see
:func:`labeller.media.video.iter_frames`), so the detector never sees full
resolution. The detector is fed frame by frame (:class:`ShotBoundaryDetector`)
so that :mod:`labeller.media.scan` can run it inside its single decode pass.

Cut convention: a cut is the 0-based index of the first frame of a new shot.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from scenedetect.common import FrameTimecode
from scenedetect.detectors import ContentDetector
from scenedetect.detectors.content_detector import _mean_pixel_distance

from labeller.media.video import iter_frames, probe_video

# PySceneDetect's own default processing width (scene_manager.DEFAULT_MIN_WIDTH):
# its default threshold is tuned for frames about this size.
DEFAULT_ANALYSIS_WIDTH = 256


@dataclass(frozen=True)
class ShotDetectionConfig:
    """``threshold``: ContentDetector score (mean HSV change, 0-255) that makes
    a cut. ``min_shot_s``: a cut closer than this (seconds) to the previous
    one is merged away (PySceneDetect's ``min_scene_len``); it is a duration,
    not a frame count, so that real short shots survive at any frame rate
    (15 frames, the old setting, was 0.6 s at 25 fps but 1 s at 15 fps).
    ``max_flash_frames``: camera flashes and other spikes up to this many
    frames never become shots, even where ``min_shot_s`` is fewer frames
    (low frame rates). See :meth:`min_shot_frames`.
    ``dark_luma`` / ``min_luma_change``: when either frame is dark (mean luma
    below ``dark_luma``, 0-255) the cut must also change luma by at least
    ``min_luma_change`` (mean absolute difference). Hue and saturation are
    noise on near-black frames, so every fade to or from black scores like
    a cut (> 80 on the reference videos) with a luma change under 4, while
    real cuts to or from black change luma by ~100.
    """

    threshold: float = 27.0
    min_shot_s: float = 0.3
    max_flash_frames: int = 3
    dark_luma: float = 48.0
    min_luma_change: float = 20.0
    analysis_width: int = DEFAULT_ANALYSIS_WIDTH

    def min_shot_frames(self, fps: float | Fraction) -> int:
        """Shortest shot kept at ``fps``, in frames: ``min_shot_s`` rounded up
        (0.3 s: 8 frames at 25 fps, 9 at 30, 18 at 60), never fewer than
        ``max_flash_frames + 1``. Passed to PySceneDetect as an int, which it
        compares as an exact frame count (a float would be seconds, compared
        with float error at NTSC rates)."""
        # round() first: float error a hair above a whole number of frames must not add a frame.
        frames = math.ceil(round(self.min_shot_s * float(fps), 6))
        return max(self.max_flash_frames + 1, frames)


class _HardCutContentDetector(ContentDetector):
    """ContentDetector that ignores dark frame changes with little luma change.

    Relies on ContentDetector internals of the pinned scenedetect 0.7.2
    (``_calculate_frame_score`` and ``_last_frame``); the alternative, a
    StatsManager, would also switch on the costly edge maps.
    """

    def __init__(self, config: ShotDetectionConfig, *, min_shot_frames: int) -> None:
        super().__init__(threshold=config.threshold, min_scene_len=min_shot_frames)
        self._dark_luma = config.dark_luma
        self._min_luma_change = config.min_luma_change

    def _calculate_frame_score(self, timecode: FrameTimecode, frame_img: np.ndarray) -> float:
        previous = self._last_frame
        score = super()._calculate_frame_score(timecode, frame_img)
        if previous is None or score < self._threshold:
            return score
        current = self._last_frame
        if min(float(previous.lum.mean()), float(current.lum.mean())) >= self._dark_luma:
            return score
        luma_change = _mean_pixel_distance(previous.lum, current.lum)
        return score if luma_change >= self._min_luma_change else 0.0


class ShotBoundaryDetector:
    """Streaming hard-cut detector: push every frame in order, then finish.

    ``push`` takes the frame's 0-based index and a small uint8 [h, w, 3] BGR
    image (ContentDetector's input); it returns cuts confirmed by this frame
    (usually the frame itself; the flash filter can confirm an earlier one).
    """

    def __init__(self, fps: float | Fraction, config: ShotDetectionConfig = ShotDetectionConfig()) -> None:
        self._fps = Fraction(fps).limit_denominator(1001 * 1000)
        self._detector = _HardCutContentDetector(config, min_shot_frames=config.min_shot_frames(self._fps))
        self._cuts: list[int] = []
        self._last_index = -1

    def push(self, index: int, bgr_image: np.ndarray) -> list[int]:
        self._last_index = index
        new_cuts = [
            timecode.frame_num
            for timecode in self._detector.process_frame(FrameTimecode(index, self._fps), bgr_image)
        ]
        self._cuts.extend(new_cuts)
        return new_cuts

    def finish(self) -> list[int]:
        """All cuts, sorted; call once after the last frame."""
        if self._last_index >= 0:
            last = FrameTimecode(self._last_index, self._fps)
            self._cuts.extend(timecode.frame_num for timecode in self._detector.post_process(last))
        return sorted(set(cut for cut in self._cuts if 0 < cut <= self._last_index))


@dataclass(frozen=True)
class ShotDetection:
    """``cuts``: sorted first-frame indices of shots 2..n; ``shots``:
    [start, end_exclusive) frame ranges covering the whole video."""

    frame_count: int
    cuts: tuple[int, ...]
    shots: tuple[tuple[int, int], ...]


def detect_shots(path: str | Path, config: ShotDetectionConfig = ShotDetectionConfig()) -> ShotDetection:
    """Detect hard cuts in a whole video (its own decode pass; ingestion uses
    :func:`labeller.media.scan.scan_video`, which does this and more in one)."""
    detector = ShotBoundaryDetector(probe_video(path).fps, config)
    frame_count = 0
    for frame in iter_frames(path, width=config.analysis_width, pixel_format="bgr24"):
        detector.push(frame.index, frame.image)
        frame_count = frame.index + 1
    cuts = detector.finish()
    return ShotDetection(frame_count=frame_count, cuts=tuple(cuts), shots=shot_ranges(cuts, frame_count))


def shot_ranges(cuts: Sequence[int], frame_count: int) -> tuple[tuple[int, int], ...]:
    """[start, end_exclusive) of every shot given its cuts; one shot when no cut."""
    starts = [0, *sorted(cut for cut in cuts if 0 < cut < frame_count)]
    ends = [*starts[1:], frame_count]
    return tuple(zip(starts, ends, strict=True))


def shot_index_of(frame_index: int, cuts: Sequence[int]) -> int:
    """0-based shot number of a frame, given sorted ``cuts``."""
    return bisect.bisect_right(cuts, frame_index)


def cut_f1(predicted: Sequence[int], reference: Sequence[int], *, tolerance: int = 1) -> float:
    """F1 of predicted cuts against reference cuts, a match being within
    ``tolerance`` frames, each reference matched at most once (greedy by
    distance). Two empty lists score 1.0."""
    if not predicted and not reference:
        return 1.0
    pairs = sorted(
        (abs(p - r), p_index, r_index)
        for p_index, p in enumerate(predicted)
        for r_index, r in enumerate(reference)
        if abs(p - r) <= tolerance
    )
    used_predicted: set[int] = set()
    used_reference: set[int] = set()
    for _, p_index, r_index in pairs:
        if p_index not in used_predicted and r_index not in used_reference:
            used_predicted.add(p_index)
            used_reference.add(r_index)
    matches = len(used_predicted)
    if matches == 0:
        return 0.0
    precision, recall = matches / len(predicted), matches / len(reference)
    return 2 * precision * recall / (precision + recall)
