import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labeller.media.video import (
    MediaError,
    MediaErrorCode,
    decode_frames_at,
    iter_frames,
    probe_image,
    probe_video,
    rotate_upright,
    scaled_size,
)

DATA_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data"
BIKES = DATA_DIR / "bikes-shots" / "bikes.mp4"
TESTVIDEO = DATA_DIR / "pyscenedetect-testvideo" / "testvideo.mp4"
BBB = DATA_DIR / "bbb-opening-30s" / "big_buck_bunny_0_30.webm"
PHOTO = DATA_DIR / "bccd-voc" / "example.jpg"


@pytest.mark.parametrize(
    ("path", "width", "height", "fps", "frame_count", "exact", "codec", "duration_s"),
    [
        pytest.param(BIKES, 640, 272, 25.0, 250, True, "h264", 10.0, id="bikes-mp4"),
        pytest.param(TESTVIDEO, 1280, 720, 30000 / 1001, 720, True, "h264", 24.02, id="testvideo-mp4"),
        pytest.param(BBB, 1280, 720, 24.0, 720, False, "vp8", 30.0, id="bbb-webm-no-frame-count"),
    ],
)
def test_probe_video_reads_real_files(path, width, height, fps, frame_count, exact, codec, duration_s):
    probe = probe_video(path)

    assert (probe.width, probe.height) == (width, height)
    assert probe.fps == pytest.approx(fps, rel=1e-6)
    assert probe.frame_count == frame_count
    assert probe.frame_count_exact is exact
    assert probe.codec == codec
    assert probe.duration_s == pytest.approx(duration_s, abs=0.02)
    assert probe.rotation == 0
    assert (probe.display_width, probe.display_height) == (width, height)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_header_claiming(width: int, height: int) -> bytes:
    """A tiny well-formed PNG declaring width x height RGB pixels (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(bytes(4096)))
        + _png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("name", "make", "code"),
    [
        pytest.param("empty.mp4", lambda: b"", MediaErrorCode.EMPTY_FILE, id="empty"),
        pytest.param(
            "random.mp4", lambda: np.random.default_rng(0).bytes(20_000), MediaErrorCode.NOT_MEDIA, id="random-bytes"
        ),
        pytest.param(
            "notes.mp4", lambda: b"shopping list: apples, cake\n" * 40, MediaErrorCode.NOT_MEDIA, id="text-as-mp4"
        ),
        pytest.param(
            "cut.mp4",
            lambda: BIKES.read_bytes()[: int(BIKES.stat().st_size * 0.3)],
            MediaErrorCode.CORRUPT,
            id="truncated-mp4",
        ),
        pytest.param("photo.mp4", lambda: PHOTO.read_bytes(), MediaErrorCode.UNSUPPORTED, id="jpeg-as-mp4"),
    ],
)
def test_probe_video_rejects_bad_input(tmp_path, name, make, code):
    path = _write(tmp_path, name, make())

    with pytest.raises(MediaError) as caught:
        probe_video(path)

    assert caught.value.code == code
    assert caught.value.message


def test_probe_video_rejects_too_long():
    with pytest.raises(MediaError) as caught:
        probe_video(BIKES, max_duration_s=5)

    assert caught.value.code == MediaErrorCode.TOO_LONG
    assert "10 s" in caught.value.message


@pytest.mark.parametrize(
    "limits", [pytest.param({"max_bytes": 100_000}, id="bytes"), pytest.param({"max_pixels": 640 * 200}, id="pixels")]
)
def test_probe_video_rejects_too_large(limits):
    with pytest.raises(MediaError) as caught:
        probe_video(BIKES, **limits)

    assert caught.value.code == MediaErrorCode.TOO_LARGE


def test_probe_video_accepts_within_limits():
    assert probe_video(BIKES, max_duration_s=10.5, max_pixels=640 * 272, max_bytes=10**6).frame_count == 250


def test_probe_image_reads_real_jpeg():
    assert probe_image(PHOTO, max_pixels=10**7) == probe_image(PHOTO, max_pixels=640 * 480)
    probe = probe_image(PHOTO, max_pixels=10**7)
    assert (probe.width, probe.height, probe.format) == (640, 480, "JPEG")


def test_probe_image_applies_exif_orientation(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    path = tmp_path / "portrait.jpg"
    Image.new("RGB", (300, 100), "red").save(path, exif=exif)

    probe = probe_image(path, max_pixels=10**6)

    assert (probe.width, probe.height) == (100, 300)


def _truncated_jpeg() -> bytes:
    data = PHOTO.read_bytes()
    return data[: len(data) // 2]


def _ppm() -> bytes:
    return b"P6 4 4 255\n" + bytes(48)


@pytest.mark.parametrize(
    ("name", "make", "code"),
    [
        pytest.param("empty.png", lambda: b"", MediaErrorCode.EMPTY_FILE, id="empty"),
        pytest.param(
            "bomb.png", lambda: _png_header_claiming(8_000, 8_000), MediaErrorCode.IMAGE_BOMB, id="bomb-png"
        ),
        pytest.param(
            "absurd.png", lambda: _png_header_claiming(200_000, 200_000), MediaErrorCode.IMAGE_BOMB, id="pillow-bomb-png"
        ),
        pytest.param("half.jpg", _truncated_jpeg, MediaErrorCode.CORRUPT, id="truncated-jpeg"),
        pytest.param(
            "notes.jpg", lambda: b"not an image at all\n" * 10, MediaErrorCode.NOT_MEDIA, id="text-as-jpg"
        ),
        pytest.param("video.jpg", lambda: BIKES.read_bytes(), MediaErrorCode.NOT_MEDIA, id="video-as-jpg"),
        pytest.param("raw.jpg", _ppm, MediaErrorCode.UNSUPPORTED, id="ppm"),
    ],
)
def test_probe_image_rejects_bad_input(tmp_path, name, make, code):
    path = _write(tmp_path, name, make())

    with pytest.raises(MediaError) as caught:
        probe_image(path, max_pixels=40_000_000)

    assert caught.value.code == code


def test_iter_frames_streams_every_frame_downscaled():
    frames = iter_frames(BIKES, width=256, pixel_format="bgr24")

    first = next(frames)
    rest = list(frames)

    assert first.index == 0 and first.timestamp_s == 0.0
    assert first.image.shape == (108, 256, 3) and first.image.dtype == np.uint8
    assert len(rest) == 249
    assert rest[-1].index == 249
    assert rest[-1].timestamp_s == pytest.approx(249 / 25)


@pytest.mark.parametrize("path", [BIKES, TESTVIDEO, BBB], ids=["bikes-mp4", "testvideo-mp4", "bbb-webm"])
def test_decode_frames_at_gives_the_frames_a_full_decode_numbers_so(path):
    wanted = {3, 117, 120, 130, 190}
    expected = {frame.index: frame.image for frame in iter_frames(path) if frame.index in wanted}

    found = decode_frames_at(path, wanted | {100_000})

    assert set(found) == wanted  # a number past the end is left out
    for index in wanted:
        assert np.array_equal(found[index], expected[index]), index


def test_decode_frames_at_nothing_wanted_opens_nothing(tmp_path):
    assert decode_frames_at(tmp_path / "missing.mp4", []) == {}


def test_scaled_size_keeps_aspect_and_never_upscales():
    assert scaled_size(1280, 720, 256) == (256, 144)
    assert scaled_size(640, 272, 256) == (256, 108)
    assert scaled_size(200, 100, 256) == (200, 100)


def test_rotate_upright_turns_clockwise():
    image = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)

    rotated = rotate_upright(image, 90)

    assert rotated.shape == (3, 2, 1)
    # Clockwise: the bottom-left pixel becomes the top-left one.
    assert rotated[0, 0, 0] == image[1, 0, 0]
    assert rotate_upright(image, 0) is image
