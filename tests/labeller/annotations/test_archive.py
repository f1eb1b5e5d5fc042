"""Safe reading of uploaded image zips."""

import io
import stat
import zipfile

import pytest

from labeller.annotations.importers import DatasetFormatError, UnsafeArchiveError, iter_zip_images

LIMITS = {"max_files": 10, "max_total_bytes": 1_000_000, "max_ratio": 50}


def _zip(*members: tuple[str | zipfile.ZipInfo, bytes], compression: int = zipfile.ZIP_DEFLATED) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members:
            archive.writestr(name, data)
    buffer.seek(0)
    return buffer


def _read_all(zip_source, warnings=None, **limits) -> dict[str, bytes]:
    return {name: stream.read() for name, stream in iter_zip_images(zip_source, **(LIMITS | limits), warnings=warnings)}


def test_yields_image_members_and_skips_the_rest_with_warnings(tmp_path):
    zip_path = tmp_path / "upload.zip"
    zip_path.write_bytes(
        _zip(
            ("frames/", b""),
            ("frames/a.JPG", b"jpeg bytes"),
            ("b.png", b"png bytes"),
            ("notes.txt", b"hello"),
            ("__MACOSX/frames/._a.JPG", b"apple double"),
        ).getvalue()
    )
    warnings = []

    images = _read_all(zip_path, warnings)

    assert images == {"frames/a.JPG": b"jpeg bytes", "b.png": b"png bytes"}
    assert [warning.record for warning in warnings] == ["notes.txt", "__MACOSX/frames/._a.JPG"]


def test_refuses_a_highly_compressed_member_before_yielding_anything():
    archive = _zip(("a.jpg", b"fine"), ("bomb.png", bytes(2_000_000)))

    images = iter_zip_images(archive, **(LIMITS | {"max_total_bytes": 10_000_000}))

    with pytest.raises(UnsafeArchiveError, match="expands"):
        next(images)


def test_refuses_an_archive_expanding_past_the_total_limit():
    archive = _zip(*((f"{index}.jpg", bytes(range(256)) * 100) for index in range(5)), compression=zipfile.ZIP_STORED)

    with pytest.raises(UnsafeArchiveError, match="more than 100000 bytes"):
        _read_all(archive, max_total_bytes=100_000)


def test_refuses_too_many_entries():
    archive = _zip(*((f"{index}.jpg", b"x") for index in range(11)))

    with pytest.raises(UnsafeArchiveError, match="11 entries"):
        _read_all(archive)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("../evil.jpg", id="parent"),
        pytest.param("frames/../../evil.jpg", id="nested-parent"),
        pytest.param("..\\evil.jpg", id="windows-parent"),
        pytest.param("/etc/evil.jpg", id="absolute"),
        pytest.param("C:/evil.jpg", id="drive-letter"),
    ],
)
def test_refuses_paths_leaving_the_archive(name):
    archive = _zip(("ok.jpg", b"x"), (zipfile.ZipInfo(name), b"x"))

    with pytest.raises(UnsafeArchiveError, match="not allowed"):
        _read_all(archive)


def test_refuses_symlinks():
    link = zipfile.ZipInfo("link.jpg")
    link.create_system = 3  # Unix, so the mode bits in external_attr are meaningful
    link.external_attr = (stat.S_IFLNK | 0o777) << 16

    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        _read_all(_zip((link, b"/etc/passwd")))


def test_refuses_two_members_with_one_name():
    with pytest.warns(UserWarning, match="Duplicate name"):
        archive = _zip(("a.jpg", b"first"), ("a.jpg", b"second"))

    with pytest.raises(UnsafeArchiveError, match="more than once"):
        _read_all(archive)


def test_refuses_compression_that_cannot_be_bounded():
    archive = _zip(("a.jpg", b"x" * 100), compression=zipfile.ZIP_BZIP2)

    with pytest.raises(DatasetFormatError, match="unsupported compression"):
        _read_all(archive)


def test_refuses_a_file_that_is_not_a_zip():
    with pytest.raises(DatasetFormatError, match="not a readable zip"):
        _read_all(io.BytesIO(b"PK but not really"))
