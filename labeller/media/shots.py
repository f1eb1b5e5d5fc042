"""Hard-cut (shot boundary) detection with PySceneDetect's ContentDetector
score, cut by its fixed threshold or, in low-contrast footage, by
AdaptiveDetector's rule (the score stands out from its neighbours).

Frames come from PyAV already downscaled by libswscale (see
:func:`labeller.media.video.iter_frames`), so the detector never sees full
resolution. The detector is fed frame by frame (:class:`ShotBoundaryDetector`)
so that :mod:`labeller.media.scan` can run it inside its single decode pass.

Cut convention: a cut is the 0-based index of the first frame of a new shot.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
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
    """A frame's score is ContentDetector's: its mean HSV change (0-255) from
    the previous frame. The frame is a cut by either rule:

    - absolute (ContentDetector's): the score is at least ``threshold``;
    - relative (AdaptiveDetector's, with its defaults): the score is at least
      ``min_content_val`` and ``adaptive_threshold`` times the mean score of
      the ``window_width`` frames on either side. Low contrast shrinks every
      score: a cut between two dark, noisy shots can score under 20, under
      the fixed threshold, yet stands out from the 4-12 of noise around it,
      while fast motion in bright footage scores ~20 on frame after frame.

    Both rules need a *new picture*, except the absolute one when both frames
    are bright (mean luma at least ``dark_luma``, 0-255). Hue and saturation
    are noise on dark frames, so fades to or from black and encoder colour
    flicker in dark footage score like cuts. A new picture is a luma jump of
    at least ``min_luma_change`` (mean absolute difference; cuts to or from
    black change luma by ~100, fade steps by under 4), or new structure: the
    luma correlation of the two frames, shrunk to ``structure_width`` columns
    (block means, which average out sensor and codec noise) and without the
    rows and columns flat in both (letterbox or pillarbox bars, which would
    correlate any two frames), is under ``max_fade_correlation``. A fade or a lighting change scales the same
    picture (correlation > 0.85 on the reference and darkened videos, ~1 for
    a clean fade); a cut lands near 0 (under 0.6 even between two cluttered
    dark shots). Frames whose shrunk luma std is under ``min_structure_std``
    (black, a blank card, the first steps of a fade) have no structure to
    compare, so only a luma jump counts there.

    ``min_shot_s``: a cut closer than this (seconds) to the previous one is
    merged away (PySceneDetect's ``min_scene_len``); it is a duration, not a
    frame count, so that real short shots survive at any frame rate (15
    frames, the old setting, was 0.6 s at 25 fps but 1 s at 15 fps).
    ``max_flash_frames``: camera flashes and other spikes up to this many
    frames never become shots, even where ``min_shot_s`` is fewer frames
    (low frame rates). See :meth:`min_shot_frames`.
    """

    threshold: float = 27.0
    min_shot_s: float = 0.3
    max_flash_frames: int = 3
    dark_luma: float = 48.0
    min_luma_change: float = 20.0
    analysis_width: int = DEFAULT_ANALYSIS_WIDTH
    adaptive_threshold: float = 3.0
    min_content_val: float = 15.0
    window_width: int = 2
    structure_width: int = 32
    max_fade_correlation: float = 0.8
    min_structure_std: float = 2.0

    def min_shot_frames(self, fps: float | Fraction) -> int:
        """Shortest shot kept at ``fps``, in frames: ``min_shot_s`` rounded up
        (0.3 s: 8 frames at 25 fps, 9 at 30, 18 at 60), never fewer than
        ``max_flash_frames + 1``. Passed to PySceneDetect as an int, which it
        compares as an exact frame count (a float would be seconds, compared
        with float error at NTSC rates)."""
        # round() first: float error a hair above a whole number of frames must not add a frame.
        frames = math.ceil(round(self.min_shot_s * float(fps), 6))
        return max(self.max_flash_frames + 1, frames)


@dataclass(frozen=True)
class _ScoredFrame:
    """A frame's change from the previous one; ``score`` is None for the first
    frame. ``dark`` and ``new_picture`` are worked out only for frames that
    score enough for either rule (False otherwise)."""

    timecode: FrameTimecode
    score: float | None
    dark: bool = False
    new_picture: bool = False


class _HardCutContentDetector(ContentDetector):
    """ContentDetector's score, cut by the rules of :class:`ShotDetectionConfig`,
    then by PySceneDetect's flash filter (merge mode) for the minimum shot length.

    A frame is decided once the ``window_width`` frames after it are scored,
    so :meth:`process_frame` confirms cuts that many frames late (the last
    ones in :meth:`post_process`); :attr:`newest_is_likely_cut` judges the
    newest frame at once, from the frames before it. Relies on ContentDetector
    internals of the pinned scenedetect 0.7.2 (``_calculate_frame_score``,
    ``_last_frame`` and ``_flash_filter``); AdaptiveDetector itself has no
    flash filter and no fixed threshold, and a StatsManager would also switch
    on the costly edge maps.
    """

    def __init__(self, config: ShotDetectionConfig, *, min_shot_frames: int) -> None:
        super().__init__(threshold=config.threshold, min_scene_len=min_shot_frames)
        self._config = config
        self._window: deque[_ScoredFrame] = deque(maxlen=2 * config.window_width + 1)
        self._undecided = 0  # frames at the end of the window still waiting for a decision

    @property
    def event_buffer_length(self) -> int:
        return super().event_buffer_length + self._config.window_width

    @property
    def newest_is_likely_cut(self) -> bool:
        return bool(self._window) and self._is_cut(len(self._window) - 1)

    def process_frame(self, timecode: FrameTimecode, frame_img: np.ndarray) -> list[FrameTimecode]:
        self._window.append(self._score(timecode, frame_img))
        self._undecided += 1
        if self._undecided <= self._config.window_width:
            return []
        return self._decide_oldest_undecided()

    def post_process(self, timecode: FrameTimecode) -> list[FrameTimecode]:
        cuts = []
        while self._undecided:
            cuts.extend(self._decide_oldest_undecided())
        return cuts

    def _score(self, timecode: FrameTimecode, frame_img: np.ndarray) -> _ScoredFrame:
        previous = self._last_frame
        score = self._calculate_frame_score(timecode, frame_img)
        if previous is None:
            return _ScoredFrame(timecode, None)
        config = self._config
        if score < min(config.threshold, config.min_content_val):
            return _ScoredFrame(timecode, score)
        current = self._last_frame
        return _ScoredFrame(
            timecode,
            score,
            dark=min(float(previous.lum.mean()), float(current.lum.mean())) < config.dark_luma,
            new_picture=(
                _mean_pixel_distance(previous.lum, current.lum) >= config.min_luma_change
                or self._structure_changed(previous.lum, current.lum)
            ),
        )

    def _structure_changed(self, previous_lum: np.ndarray, current_lum: np.ndarray) -> bool:
        config = self._config
        # Letterbox or pillarbox bars would correlate any two frames: compare what lies between them.
        flat_std = config.min_structure_std
        rows = _between_flat_ends(np.maximum(previous_lum.std(axis=1), current_lum.std(axis=1)) < flat_std)
        columns = _between_flat_ends(np.maximum(previous_lum.std(axis=0), current_lum.std(axis=0)) < flat_std)
        height, width = rows.stop - rows.start, columns.stop - columns.start
        if height <= 0 or width <= 0:
            return False
        shrunk_width = min(width, config.structure_width)
        size = (shrunk_width, max(1, round(height * shrunk_width / width)))
        previous, current = (
            cv2.resize(np.ascontiguousarray(lum[rows, columns]), size, interpolation=cv2.INTER_AREA)
            .astype(np.float32)
            .ravel()
            for lum in (previous_lum, current_lum)
        )
        if min(float(previous.std()), float(current.std())) < config.min_structure_std:
            return False
        return float(np.corrcoef(previous, current)[0, 1]) < config.max_fade_correlation

    def _is_cut(self, position: int) -> bool:
        """Whether the frame at ``position`` in the window is a cut, judged
        against the neighbours the window holds."""
        frame, config = self._window[position], self._config
        if frame.score is None:
            return False
        if frame.score >= config.threshold and (frame.new_picture or not frame.dark):
            return True
        if not frame.new_picture or frame.score < config.min_content_val:
            return False
        neighbours = [
            other.score for index, other in enumerate(self._window) if index != position and other.score is not None
        ]
        return not neighbours or frame.score >= config.adaptive_threshold * sum(neighbours) / len(neighbours)

    def _decide_oldest_undecided(self) -> list[FrameTimecode]:
        position = len(self._window) - self._undecided
        self._undecided -= 1
        timecode = self._window[position].timecode
        return self._flash_filter.filter(timecode=timecode, above_threshold=self._is_cut(position))


def _between_flat_ends(flat: np.ndarray) -> slice:
    """The span between the runs of True at either end of ``flat``; empty when all are True."""
    if flat.all():
        return slice(0, 0)
    return slice(int(np.argmin(flat)), len(flat) - int(np.argmin(flat[::-1])))


class ShotBoundaryDetector:
    """Streaming hard-cut detector: push every frame in order, then finish.

    ``push`` takes the frame's 0-based index and a small uint8 [h, w, 3] BGR
    image (ContentDetector's input). It returns the frame itself when it is
    likely a cut, judged from the frames up to it, so that a caller can keep
    the first frame of every shot; and any earlier cut this frame confirms
    (the rules look ``window_width`` frames ahead, and the flash filter can
    confirm a cut later still). Only :meth:`finish` gives the final cuts: a
    likely cut can turn out not to be one (a flash, the start of fast motion).
    """

    def __init__(self, fps: float | Fraction, config: ShotDetectionConfig = ShotDetectionConfig()) -> None:
        self._fps = Fraction(fps).limit_denominator(1001 * 1000)
        self._detector = _HardCutContentDetector(config, min_shot_frames=config.min_shot_frames(self._fps))
        self._cuts: list[int] = []
        self._last_index = -1

    def push(self, index: int, bgr_image: np.ndarray) -> list[int]:
        self._last_index = index
        confirmed = [
            timecode.frame_num
            for timecode in self._detector.process_frame(FrameTimecode(index, self._fps), bgr_image)
        ]
        self._cuts.extend(confirmed)
        return sorted({*confirmed, index} if self._detector.newest_is_likely_cut else set(confirmed))

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
