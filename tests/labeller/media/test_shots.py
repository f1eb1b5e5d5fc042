import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from labeller.media.scan import scan_video
from labeller.media.shots import (
    ShotBoundaryDetector,
    ShotDetectionConfig,
    cut_f1,
    detect_shots,
    shot_index_of,
    shot_ranges,
)
from proposals.synthetic import write_synthetic_video

DATA_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def _reference_cuts(folder: str) -> list[int]:
    return json.loads((DATA_DIR / folder / "shots.json").read_text())["cuts"]


def test_detect_shots_on_bikes_finds_the_reference_cuts():
    detection = detect_shots(DATA_DIR / "bikes-shots" / "bikes.mp4")

    assert list(detection.cuts) == [30, 76, 137, 187, 242]
    assert detection.frame_count == 250
    assert detection.shots[0] == (0, 30) and detection.shots[-1] == (242, 250)


@pytest.mark.parametrize(
    ("path", "reference"),
    [
        pytest.param(
            DATA_DIR / "bbb-opening-30s" / "big_buck_bunny_0_30.webm", _reference_cuts("bbb-opening-30s"), id="bbb"
        ),
        # SOURCE.md: 30 and 180 are hard cuts; PySceneDetect's golden 394 (and 691) lie inside fades.
        pytest.param(DATA_DIR / "pyscenedetect-testvideo" / "testvideo.mp4", [30, 180], id="testvideo-fades"),
    ],
)
def test_detect_shots_finds_hard_cuts_and_ignores_fades(path, reference):
    detection = detect_shots(path)

    assert cut_f1(detection.cuts, reference, tolerance=1) == 1.0


def test_detect_shots_on_synthetic_video_matches_ground_truth(tmp_path):
    video = write_synthetic_video(tmp_path / "shots.mp4", seconds=8, fps=25, width=320, height=180, n_shots=6, seed=3)

    detection = detect_shots(video.path)

    assert len(video.cuts) == 5
    assert cut_f1(detection.cuts, video.cuts, tolerance=1) == 1.0
    assert detection.frame_count == video.frame_count


def _textured_frame(rng: np.random.Generator, colour: tuple[int, int, int]) -> np.ndarray:
    texture = rng.uniform(0.6, 1.0, size=(72, 128, 1))
    return (texture * np.array(colour)).astype(np.uint8)


def test_detector_reports_a_hard_cut_but_not_a_fade_from_black():
    rng = np.random.default_rng(0)
    scene = _textured_frame(rng, (40, 160, 220))
    other_scene = _textured_frame(rng, (220, 120, 30))
    fade_in = [(scene * (step / 12)).astype(np.uint8) for step in range(1, 13)]
    frames = [np.zeros_like(scene)] * 20 + fade_in + [scene] * 30 + [other_scene] * 30
    detector = ShotBoundaryDetector(25.0)

    for index, frame in enumerate(frames):
        detector.push(index, frame)

    assert detector.finish() == [62]


def test_detect_shots_finds_every_cut_in_dark_low_contrast_footage(tmp_path):
    # Given a dark, noisy, low-contrast video with a 0.6 s shot: its cuts change luma by under 20,
    # and the cut out of the short shot scores under the fixed threshold (27).
    video = write_synthetic_video(
        tmp_path / "night.mp4",
        look="night",
        seconds=12,
        fps=25,
        width=320,
        height=180,
        n_shots=5,
        seed=4,
        objects_per_shot=4,
        short_shot_seconds=0.6,
    )

    detection = detect_shots(video.path)

    assert 15 in np.diff(video.cuts)  # the short shot lies between two cuts
    assert cut_f1(detection.cuts, video.cuts, tolerance=1) == 1.0


def _dark_scene(rng: np.random.Generator, colour: tuple[int, int, int]) -> np.ndarray:
    coarse = (rng.uniform(0.5, 1.0, size=(6, 10, 1)) * np.array(colour)).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((128, 72), Image.Resampling.BICUBIC), np.float32)


def _with_sensor_noise(rng: np.random.Generator, scene: np.ndarray, gain: float = 1.0) -> np.ndarray:
    return np.clip(scene * gain + rng.normal(0, 3, scene.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("letterbox", [False, True], ids=["full-frame", "letterbox"])
def test_detector_finds_a_dark_cut_but_not_a_fade_through_black(letterbox):
    # Given two dark, low-contrast, noisy shots (the cut changes luma by ~9), then a fade to
    # black and a fade in: noise on near-black frames makes every fade step score like a cut.
    rng = np.random.default_rng(1)
    scene, other_scene = _dark_scene(rng, (50, 40, 35)), _dark_scene(rng, (45, 45, 55))
    frames = [_with_sensor_noise(rng, scene) for _ in range(40)]
    frames += [_with_sensor_noise(rng, other_scene) for _ in range(40)]
    frames += [_with_sensor_noise(rng, other_scene, 1 - step / 15) for step in range(1, 16)]
    frames += [_with_sensor_noise(rng, scene, 0.0) for _ in range(20)]
    frames += [_with_sensor_noise(rng, scene, step / 15) for step in range(1, 16)]
    frames += [_with_sensor_noise(rng, scene) for _ in range(30)]
    if letterbox:
        frames = [np.pad(frame[9:63], ((9, 9), (0, 0), (0, 0))) for frame in frames]
    detector = ShotBoundaryDetector(25.0)

    reported = {index: cuts for index, frame in enumerate(frames) if (cuts := detector.push(index, frame))}

    assert detector.finish() == [40]
    assert reported[40] == [40]  # reported on the cut frame itself, before the look-ahead confirms it


# Distinct looks for consecutive shots: (RGB colour, brightness), as in edited footage.
_SHOT_LOOKS = [((40, 160, 220), 0.9), ((220, 120, 30), 0.5), ((60, 200, 80), 0.9)]


def _write_shots_video(path: Path, fps: Fraction, shot_lengths: list[int], width=320, height=180) -> list[int]:
    """Encode one shot per length (frames), each a smooth colour field that
    pans a pixel a frame (so frames within a shot differ a little, as with a
    moving camera). Returns the cuts (first frame of shots 2..n)."""
    rng = np.random.default_rng(7)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        index = 0
        for shot_number, length in enumerate(shot_lengths):
            colour, brightness = _SHOT_LOOKS[shot_number % len(_SHOT_LOOKS)]
            coarse = (rng.uniform(0.6, 1.0, size=(9, 16, 1)) * np.array(colour) * brightness).astype(np.uint8)
            field = np.asarray(Image.fromarray(coarse).resize((width + length, height), Image.Resampling.BICUBIC))
            for frame_in_shot in range(length):
                image = np.ascontiguousarray(field[:, frame_in_shot:frame_in_shot + width])
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = index
                container.mux(stream.encode(frame))
                index += 1
        container.mux(stream.encode(None))
    return list(np.cumsum(shot_lengths[:-1]))


@pytest.mark.parametrize(
    ("fps", "short_shot_s"),
    [
        pytest.param(Fraction(25), 0.5, id="25fps-0.5s"),
        pytest.param(Fraction(30), 0.5, id="30fps-0.5s"),
        pytest.param(Fraction(60), 0.5, id="60fps-0.5s"),
        pytest.param(Fraction(30), 0.4, id="30fps-0.4s"),
        pytest.param(Fraction(24000, 1001), 0.5, id="23.976fps-0.5s"),
    ],
)
def test_detect_shots_keeps_a_short_shot_between_two_long_ones(tmp_path, fps, short_shot_s):
    # Given 3 s, a short shot, 3 s; the minimum shot length is a duration (0.3 s), not 15 frames.
    lengths = [round(3 * fps), round(short_shot_s * fps), round(3 * fps)]
    cuts = _write_shots_video(tmp_path / "short.mp4", fps, lengths)

    detection = detect_shots(tmp_path / "short.mp4")

    assert len(detection.shots) == 3
    assert all(abs(found - cut) <= 1 for found, cut in zip(detection.cuts, cuts, strict=True))
    assert detection.frame_count == sum(lengths)


def test_scan_video_keeps_a_short_shot_and_gives_it_a_candidate(tmp_path):
    fps = Fraction(30)
    cuts = _write_shots_video(tmp_path / "short.mp4", fps, [90, 12, 90])

    result = scan_video(tmp_path / "short.mp4", candidate_dir=tmp_path / "frames")

    assert cut_f1(result.cuts, cuts, tolerance=1) == 1.0
    assert {candidate.shot_index for candidate in result.candidates} == {0, 1, 2}


@pytest.mark.parametrize(
    ("fps", "frames"),
    [
        pytest.param(25, 8, id="25fps"),
        pytest.param(30, 9, id="30fps"),
        pytest.param(60, 18, id="60fps"),
        pytest.param(Fraction(24000, 1001), 8, id="23.976fps"),
        pytest.param(10, 4, id="10fps-never-a-flash"),
    ],
)
def test_min_shot_frames_converts_seconds_with_the_frame_rate(fps, frames):
    assert ShotDetectionConfig().min_shot_frames(fps) == frames


@pytest.mark.parametrize("flash_frames", [1, 2, 3])
@pytest.mark.parametrize("fps", [10, 30, 60])
def test_a_flash_is_never_a_shot_of_its_own(fps, flash_frames):
    # At 10 fps 0.3 s is 3 frames: the flash floor, not min_shot_s, keeps a 3-frame flash out.
    rng = np.random.default_rng(0)
    scene, other_scene = _textured_frame(rng, (40, 160, 220)), _textured_frame(rng, (220, 120, 30))
    frames = [scene] * 60 + [np.full_like(scene, 255)] * flash_frames + [scene] * 60 + [other_scene] * 60
    real_cut = 120 + flash_frames
    detector = ShotBoundaryDetector(fps)

    for index, frame in enumerate(frames):
        detector.push(index, frame)
    cuts = detector.finish()

    assert real_cut in cuts
    assert all(end - start > flash_frames for start, end in shot_ranges(cuts, len(frames)))


def test_shot_ranges_cover_the_video():
    assert shot_ranges([30, 76], 100) == ((0, 30), (30, 76), (76, 100))
    assert shot_ranges([], 10) == ((0, 10),)
    assert [shot_index_of(frame, [30, 76]) for frame in (0, 29, 30, 75, 76, 99)] == [0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize(
    ("predicted", "reference", "expected"),
    [
        pytest.param([30, 76], [30, 76], 1.0, id="exact"),
        pytest.param([31, 75], [30, 76], 1.0, id="within-one-frame"),
        pytest.param([32], [30], 0.0, id="two-frames-off"),
        pytest.param([30, 31], [30], 2 / 3, id="one-reference-matched-once"),
        pytest.param([], [30], 0.0, id="missed"),
        pytest.param([], [], 1.0, id="both-empty"),
    ],
)
def test_cut_f1(predicted, reference, expected):
    assert cut_f1(predicted, reference, tolerance=1) == pytest.approx(expected)
