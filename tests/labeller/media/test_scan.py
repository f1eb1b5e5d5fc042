import io
import tracemalloc
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from labeller.media.keyframes import every_nth_frames
from labeller.media.scan import ScanConfig, embed_candidates, load_for_embedding, make_thumbnail, scan_video
from labeller.media.shots import cut_f1
from proposals.synthetic import write_synthetic_video


@pytest.fixture(scope="module")
def synthetic_video(tmp_path_factory):
    directory = tmp_path_factory.mktemp("scan")
    return write_synthetic_video(directory / "video.mp4", seconds=6, fps=25, width=320, height=180, n_shots=4, seed=7)


class RecordingEmbedder:
    """Stands in for the feature extractor: mean colour as a unit vector."""

    def __init__(self):
        self.batches = []

    def __call__(self, images):
        self.batches.append([image.shape for image in images])
        means = np.stack([image.reshape(-1, 3).mean(axis=0) + 1.0 for image in images]).astype(np.float32)
        return means / np.linalg.norm(means, axis=1, keepdims=True)


def test_scan_finds_cuts_and_writes_only_candidate_jpegs(tmp_path, synthetic_video):
    embedder = RecordingEmbedder()
    config = ScanConfig(candidate_interval_s=0.5, embed_batch_size=4, embedding_width=112)

    result = scan_video(synthetic_video.path, candidate_dir=tmp_path / "frames", config=config, embed=embedder)

    assert cut_f1(result.cuts, synthetic_video.cuts) == 1.0
    assert result.frame_count == synthetic_video.frame_count == 150
    written = sorted((tmp_path / "frames").iterdir())
    assert written == sorted(candidate.jpeg_path for candidate in result.candidates)
    assert 12 <= len(written) <= 20  # ~2 a second, plus one at each shot start
    with Image.open(written[0]) as first:
        assert first.size == (320, 180)
    assert {candidate.shot_index for candidate in result.candidates} == {0, 1, 2, 3}
    for candidate in result.candidates:
        start, end = result.shots[candidate.shot_index]
        assert start <= candidate.index < end
        assert candidate.timestamp_s == pytest.approx(candidate.index / 25)
    assert result.embeddings.shape == (len(result.candidates), 3)
    assert all(len(batch) <= 4 for batch in embedder.batches)
    assert embedder.batches[0][0] == (63, 112, 3)
    assert result.timings.embed_s <= result.timings.total_s


def test_embed_candidates_reads_jpegs_back_in_candidate_order(tmp_path, synthetic_video):
    result = scan_video(synthetic_video.path, candidate_dir=tmp_path, config=ScanConfig(every_nth=30))
    embedder = RecordingEmbedder()

    embeddings = embed_candidates(result.candidates, embedder, width=64, batch_size=2)

    assert [len(batch) for batch in embedder.batches] == [2, 2, 1]
    assert embeddings.dtype == np.float32 and embeddings.shape == (5, 3)
    last = load_for_embedding(result.candidates[-1].jpeg_path, width=64)
    assert last.shape == (36, 64, 3) and last.dtype == np.uint8
    np.testing.assert_allclose(embeddings[-1], embedder([last])[0], atol=1e-6)
    assert embed_candidates((), embedder).shape == (0, 0)


def test_scan_takes_each_shot_start_and_respects_the_interval(tmp_path, synthetic_video):
    result = scan_video(
        synthetic_video.path, candidate_dir=tmp_path, config=ScanConfig(candidate_interval_s=1.0)
    )

    assert len(result.shots) == 4
    for shot_index, (start, end) in enumerate(result.shots):
        in_shot = [candidate.index for candidate in result.candidates if candidate.shot_index == shot_index]
        assert in_shot[0] == start
        assert all(later - earlier == 25 for earlier, later in zip(in_shot, in_shot[1:]))
    assert result.embeddings is None


def test_scan_every_nth_extracts_exactly_those_frames(tmp_path, synthetic_video):
    result = scan_video(synthetic_video.path, candidate_dir=tmp_path, config=ScanConfig(every_nth=10))

    assert [candidate.index for candidate in result.candidates] == every_nth_frames(150, 10)
    assert len(list(tmp_path.iterdir())) == 15


def _write_black_then_texture(path: Path, black_frames: int, textured_frames: int) -> None:
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, size=(12, 20, 3), dtype=np.uint8).repeat(8, axis=0).repeat(8, axis=1)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for index in range(black_frames + textured_frames):
            image = texture if index >= black_frames else np.zeros_like(texture)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))


def test_scan_skips_blank_frames_as_candidates(tmp_path):
    path = tmp_path / "black-start.mp4"
    _write_black_then_texture(path, black_frames=20, textured_frames=40)

    result = scan_video(path, candidate_dir=tmp_path / "frames", config=ScanConfig(candidate_interval_s=10))

    assert result.cuts == (20,)
    assert [candidate.index for candidate in result.candidates] == [20]


def _peak_python_memory(path: Path, candidate_dir: Path) -> int:
    tracemalloc.start()
    try:
        scan_video(path, candidate_dir=candidate_dir, config=ScanConfig(candidate_interval_s=2.0))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_scan_memory_does_not_grow_with_video_length(tmp_path):
    short = write_synthetic_video(tmp_path / "short.mp4", seconds=4, fps=25, width=320, height=180, n_shots=2, seed=1)
    long = write_synthetic_video(tmp_path / "long.mp4", seconds=24, fps=25, width=320, height=180, n_shots=2, seed=1)

    short_peak = _peak_python_memory(short.path, tmp_path / "short")
    long_peak = _peak_python_memory(long.path, tmp_path / "long")

    # Holding the 600 analysis frames alone would take 600 x 256x144x3 bytes = 66 MB.
    assert long_peak < short_peak * 1.5 + 512 * 1024


def test_make_thumbnail_from_jpeg_and_array(tmp_path, synthetic_video):
    result = scan_video(synthetic_video.path, candidate_dir=tmp_path, config=ScanConfig(every_nth=75))

    from_file = Image.open(io.BytesIO(make_thumbnail(result.candidates[0].jpeg_path, max_side=64)))
    from_array = Image.open(io.BytesIO(make_thumbnail(np.zeros((50, 200, 3), np.uint8), max_side=100)))

    assert from_file.format == "JPEG" and from_file.size == (64, 36)
    assert from_array.size == (100, 25)
