import time

import av
import numpy as np
import pytest
from PIL import Image

from proposals.synthetic import DEFAULT_CLASSES, look_classes, write_synthetic_images, write_synthetic_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_synthetic_video(
        tmp_path_factory.mktemp("synthetic") / "video.mp4",
        seconds=4,
        fps=25,
        width=320,
        height=180,
        n_shots=3,
        seed=11,
        objects_per_shot=3,
    )


def test_video_file_matches_its_description(video):
    with av.open(str(video.path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        assert stream.codec_context.name in ("h264", "mpeg4")
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert float(stream.average_rate) == 25.0

    assert len(frames) == video.frame_count == 100
    assert frames[0].shape == (180, 320, 3)
    assert len(video.cuts) == 2 and all(0 < cut < 100 for cut in video.cuts)
    assert sorted(video.boxes) == list(range(100))


def test_boxes_stay_inside_the_frame_and_tracks_restart_at_cuts(video):
    shot_starts = [0, *video.cuts]
    tracks_per_shot = []
    for start, end in zip(shot_starts, [*video.cuts, video.frame_count]):
        tracks = {box.track_id for frame in range(start, end) for box in video.boxes[frame]}
        assert all(len(video.boxes[frame]) == 3 for frame in range(start, end))
        tracks_per_shot.append(tracks)
    assert len(set.union(*tracks_per_shot)) == 9  # 3 objects x 3 shots, never shared across a cut
    for boxes in video.boxes.values():
        for box in boxes:
            x0, y0, x1, y1 = box.box
            assert 0 <= x0 < x1 <= 320 and 0 <= y0 < y1 <= 180
            assert box.label in DEFAULT_CLASSES


def test_objects_move_and_change_size(video):
    first, later = video.boxes[0][0], video.boxes[video.cuts[0] - 1][0]
    assert first.track_id == later.track_id
    assert first.box != later.box
    sizes = {round(box.box[2] - box.box[0]) for frame in range(video.cuts[0]) for box in video.boxes[frame][:1]}
    assert len(sizes) > 3


def test_same_seed_same_video_other_seed_differs(tmp_path, video):
    again = write_synthetic_video(
        tmp_path / "again.mp4", seconds=4, fps=25, width=320, height=180, n_shots=3, seed=11, objects_per_shot=3
    )
    other = write_synthetic_video(
        tmp_path / "other.mp4", seconds=4, fps=25, width=320, height=180, n_shots=3, seed=12, objects_per_shot=3
    )

    assert (again.cuts, again.boxes) == (video.cuts, video.boxes)
    assert (other.cuts, other.boxes) != (video.cuts, video.boxes)


def _checker(width: int, height: int) -> np.ndarray:
    """What a dessert looks like: an 8x8 cream/brown checker filling its box."""
    rows, cols = (2 * np.arange(height) + 1) * 8 // (2 * height), (2 * np.arange(width) + 1) * 8 // (2 * width)
    cells = (rows[:, None] + cols[None, :]) % 2
    return np.where(cells[..., None] == 1, [110, 60, 25], [240, 225, 190])


def _mismatch(pixels: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = box
    return float(np.abs(pixels[y0:y1, x0:x1] - _checker(x1 - x0, y1 - y0)).mean())


def test_box_is_exactly_where_the_object_is_drawn(tmp_path):
    images = write_synthetic_images(tmp_path, 3, seed=5, classes=["food.dish.dessert"], objects_per_image=2)

    for image in images:
        pixels = np.asarray(Image.open(image.path)).astype(int)
        for box in image.boxes:
            x0, y0, x1, y1 = (int(value) for value in box.box)
            exact = _mismatch(pixels, (x0, y0, x1, y1))
            assert exact < 12  # only JPEG error
            for dx, dy in ((3, 0), (-3, 0), (0, 3), (0, -3)):
                shifted = (x0 + dx, y0 + dy, x1 + dx, y1 + dy)
                if min(shifted) >= 0 and shifted[2] <= image.width and shifted[3] <= image.height:
                    assert _mismatch(pixels, shifted) > exact + 10


def test_images_are_written_with_their_boxes(tmp_path):
    images = write_synthetic_images(tmp_path, 3, seed=0, width=200, height=120)

    assert [image.path.name for image in images] == ["image_0000.jpg", "image_0001.jpg", "image_0002.jpg"]
    assert all(Image.open(image.path).size == (200, 120) for image in images)
    assert all(len(image.boxes) == 3 for image in images)
    assert len({box.track_id for image in images for box in image.boxes}) == 9


def test_too_many_shots_for_the_length_is_an_error(tmp_path):
    with pytest.raises(ValueError):
        write_synthetic_video(tmp_path / "short.mp4", seconds=1, fps=25, n_shots=3)


def test_ten_second_demo_video_is_quick_to_make(tmp_path):
    started = time.perf_counter()
    demo = write_synthetic_video(tmp_path / "demo.mp4", seconds=10, fps=25, width=640, height=360, n_shots=4, seed=0)

    assert demo.frame_count == 250
    assert time.perf_counter() - started < 8  # ~1.5 s on 2 idle cores; generous for a loaded CI box


# --- the harder looks ---------------------------------------------------------------


@pytest.fixture(scope="module", params=["counter", "night"])
def look_video(request, tmp_path_factory):
    return write_synthetic_video(
        tmp_path_factory.mktemp(request.param) / "video.mp4",
        seconds=8,
        fps=25,
        width=320,
        height=180,
        n_shots=5,
        seed=3,
        objects_per_shot=6,
        look=request.param,
        short_shot_seconds=0.6,
    )


def _shots(video):
    return list(zip([0, *video.cuts], [*video.cuts, video.frame_count]))


def _overlap(a, b) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return max(width, 0) * max(height, 0)


def test_a_look_shows_at_least_eight_dotted_classes(look_video):
    shown = {box.label for boxes in look_video.boxes.values() for box in boxes}

    assert len(look_video.classes) >= 8
    assert len(shown) >= 8
    assert all(label.count(".") >= 1 for label in shown)


def test_a_look_has_five_shots_and_one_under_a_second(look_video):
    lengths = [end - start for start, end in _shots(look_video)]

    assert len(lengths) == 5
    assert min(lengths) == 15  # 0.6 s at 25 fps
    assert sorted(lengths)[1] >= 24


def test_objects_of_a_look_overlap(look_video):
    overlapping = sum(
        1
        for boxes in look_video.boxes.values()
        for i, a in enumerate(boxes)
        for b in boxes[i + 1:]
        if _overlap(a.box, b.box) > 0
    )

    assert overlapping >= 5
    for boxes in look_video.boxes.values():
        for box in boxes:
            x0, y0, x1, y1 = box.box
            assert 0 <= x0 < x1 <= 320 and 0 <= y0 < y1 <= 180


@pytest.mark.parametrize("look", ["counter", "night"])
def test_a_mostly_hidden_object_has_no_box_and_a_partly_hidden_one_a_smaller_box(tmp_path, look):
    crowded = write_synthetic_video(
        tmp_path / "crowd.mp4", seconds=2, width=160, height=96, n_shots=1, seed=2, objects_per_shot=12, look=look
    )
    heights: dict[int, list[float]] = {}
    for boxes in crowded.boxes.values():
        for box in boxes:
            heights.setdefault(box.track_id, []).append(box.box[3] - box.box[1])

    assert min(len(boxes) for boxes in crowded.boxes.values()) < 12
    # Size changes smoothly (zoom, +-8 %) between frames; occlusion cuts boxes abruptly.
    assert any(min(b / a for a, b in zip(values, values[1:])) < 0.75 for values in heights.values())


def test_objects_of_a_look_change_scale_within_a_shot(look_video):
    start, end = max(_shots(look_video), key=lambda shot: shot[1] - shot[0])
    heights: dict[int, list[float]] = {}
    for frame in range(start, end):
        for box in look_video.boxes[frame]:
            heights.setdefault(box.track_id, []).append(box.box[3] - box.box[1])

    growth = max(max(values) / min(values) for values in heights.values() if len(values) > (end - start) // 2)
    assert growth >= 1.4


def test_the_looks_differ_strongly(tmp_path):
    means = {}
    for look in ("counter", "night"):
        video = write_synthetic_video(
            tmp_path / f"{look}.mp4", seconds=2, width=160, height=96, n_shots=2, seed=1, objects_per_shot=3, look=look
        )
        with av.open(str(video.path)) as container:
            frame = next(container.decode(video=0)).to_ndarray(format="rgb24").astype(float)
        means[look] = frame.mean()

    assert means["counter"] > 2.5 * means["night"]
    assert set(look_classes("counter")).isdisjoint(look_classes("night"))


def test_a_look_is_deterministic(tmp_path):
    options = dict(
        seconds=2, width=160, height=96, n_shots=2, seed=4, objects_per_shot=4, look="night", short_shot_seconds=0.6
    )
    first = write_synthetic_video(tmp_path / "a.mp4", **options)
    again = write_synthetic_video(tmp_path / "b.mp4", **options)

    assert (first.cuts, first.boxes) == (again.cuts, again.boxes)


def test_unknown_look_and_impossible_short_shot_are_errors(tmp_path):
    with pytest.raises(ValueError):
        write_synthetic_video(tmp_path / "a.mp4", look="noir")
    with pytest.raises(ValueError):
        write_synthetic_video(tmp_path / "b.mp4", seconds=2, n_shots=3, short_shot_seconds=0.6, look="counter")
