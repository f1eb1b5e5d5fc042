import json
from pathlib import Path

import numpy as np
import pytest

from labeller.media.shots import (
    ShotBoundaryDetector,
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
