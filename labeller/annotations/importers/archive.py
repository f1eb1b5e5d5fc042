"""Reading images (or a whole dataset) out of an uploaded zip without trusting it.

Every member is checked from the central directory before any byte is
decompressed, so a refused archive yields nothing. The declared sizes can be
trusted as bounds: ``zipfile`` never returns more than a member's declared
``file_size`` (it truncates and then fails the CRC check), and only stored and
deflated members are accepted because deflate is the one codec ``zipfile``
decompresses in bounded chunks.
"""

from __future__ import annotations

import shutil
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from .types import DatasetFormatError, RecordError, is_image_name, safe_relative_path

__all__ = ["UnsafeArchiveError", "check_zip", "extract_zip", "iter_zip_images"]

_SUPPORTED_COMPRESSION = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
_ENCRYPTED_FLAG = 0x1
_COPY_BUFFER = 1024 * 1024


class UnsafeArchiveError(DatasetFormatError):
    """The archive is refused as a whole: a zip bomb, a path escape or a symlink."""


def iter_zip_images(
    zip_source: Path | str | IO[bytes],
    *,
    max_files: int,
    max_total_bytes: int,
    max_ratio: float,
    warnings: list[RecordError] | None = None,
) -> Iterator[tuple[str, IO[bytes]]]:
    """Yield ``(name, stream)`` for each image member of a zip, in archive order.

    ``zip_source`` is a path or a seekable binary file. ``name`` is the member's
    relative POSIX path; ``stream`` is a binary file decompressing on demand,
    valid only until the next item is requested. Images are recognised by
    suffix (decoding them is the caller's job); other files are skipped and,
    when ``warnings`` is given, described there before the first item.

    Raises ``UnsafeArchiveError`` before yielding anything when the archive has
    more than ``max_files`` entries, more than ``max_total_bytes`` uncompressed
    in all, a member expanding more than ``max_ratio`` times, an absolute or
    ``..`` path, a symlink, or two members with one name; and
    ``DatasetFormatError`` when it is not a zip, or a member is encrypted or
    compressed with anything but deflate. A member whose data does not match
    its CRC raises ``zipfile.BadZipFile`` while its stream is read.
    """
    archive = _open_zip(zip_source)
    with archive:
        image_members = _checked_image_members(archive.infolist(), max_files, max_total_bytes, max_ratio, warnings)
        for name, member in image_members:
            with archive.open(member) as stream:
                yield name, stream


def extract_zip(
    zip_source: Path | str | IO[bytes],
    destination: Path,
    *,
    max_files: int,
    max_total_bytes: int,
    max_ratio: float,
    on_file: Callable[[], None] | None = None,
) -> list[Path]:
    """Write every file of a zip under ``destination`` and return their paths, in archive order.

    For datasets, whose annotation files are not images. ``on_file()`` is called after each
    file is written (a long unpacking shows it is alive); it may raise to stop. The archive passes the
    same checks as in ``iter_zip_images`` (raising the same errors) before any
    byte is written; ``destination`` should be a fresh, empty folder. Raises
    ``DatasetFormatError`` when a member's data is damaged or a file's name is
    also used as a folder (``a`` and ``a/b.jpg``).
    """
    archive = _open_zip(zip_source)
    written = []
    with archive:
        for name, member in _checked_members(archive.infolist(), max_files, max_total_bytes, max_ratio):
            target = destination / name
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, target.open("xb") as copy:
                    shutil.copyfileobj(source, copy, _COPY_BUFFER)
            except (zipfile.BadZipFile, zlib.error, EOFError) as error:
                raise DatasetFormatError(f"{name!r} is damaged: {error}") from error
            except (FileExistsError, IsADirectoryError, NotADirectoryError) as error:
                raise DatasetFormatError(f"{name!r} is both a file and a folder in the archive") from error
            written.append(target)
            if on_file is not None:
                on_file()
    return written


def check_zip(
    zip_source: Path | str | IO[bytes],
    *,
    max_files: int,
    max_total_bytes: int,
    max_ratio: float,
) -> list[str]:
    """The file members' names, after the checks of ``iter_zip_images`` (raising the same errors).

    Reads only the central directory, never a member's data: cheap enough to refuse an
    unsafe or unreadable archive while its uploader waits. Damaged member data is found
    later, when the members are read.
    """
    with _open_zip(zip_source) as archive:
        return [name for name, _ in _checked_members(archive.infolist(), max_files, max_total_bytes, max_ratio)]


def _open_zip(zip_source: Path | str | IO[bytes]) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(zip_source)
    except zipfile.BadZipFile as error:
        raise DatasetFormatError(f"not a readable zip archive: {error}") from error


def _checked_image_members(
    members: list[zipfile.ZipInfo],
    max_files: int,
    max_total_bytes: int,
    max_ratio: float,
    warnings: list[RecordError] | None,
) -> list[tuple[str, zipfile.ZipInfo]]:
    """Check the whole central directory and return the image members with safe names."""
    files = _checked_members(members, max_files, max_total_bytes, max_ratio)
    if warnings is not None:
        warnings.extend(RecordError(name, "not an image file; skipped") for name, _ in files if not is_image_name(name))
    return [(name, member) for name, member in files if is_image_name(name)]


def _checked_members(
    members: list[zipfile.ZipInfo],
    max_files: int,
    max_total_bytes: int,
    max_ratio: float,
) -> list[tuple[str, zipfile.ZipInfo]]:
    """Check the whole central directory and return the file members (no folders) with safe names."""
    if len(members) > max_files:
        raise UnsafeArchiveError(f"the archive has {len(members)} entries; at most {max_files} are allowed")
    total_bytes = 0
    seen_names: set[str] = set()
    files = []
    for member in members:
        relative = safe_relative_path(member.filename)
        if relative is None:
            raise UnsafeArchiveError(f"{member.filename!r}: absolute paths and '..' are not allowed")
        name = relative.as_posix()
        if name in seen_names:
            raise UnsafeArchiveError(f"{name!r} appears more than once in the archive")
        seen_names.add(name)
        if stat.S_ISLNK(member.external_attr >> 16):
            raise UnsafeArchiveError(f"{name!r} is a symbolic link")
        if member.flag_bits & _ENCRYPTED_FLAG:
            raise DatasetFormatError(f"{name!r} is encrypted; upload an archive without a password")
        if member.compress_type not in _SUPPORTED_COMPRESSION:
            raise DatasetFormatError(f"{name!r} uses an unsupported compression method ({member.compress_type})")
        if member.file_size > max_ratio * max(member.compress_size, 1):
            raise UnsafeArchiveError(
                f"{name!r} expands {member.file_size / max(member.compress_size, 1):.0f} times; "
                f"at most {max_ratio:g} is allowed"
            )
        total_bytes += member.file_size
        if total_bytes > max_total_bytes:
            raise UnsafeArchiveError(f"the archive expands to more than {max_total_bytes} bytes")
        if not member.is_dir():
            files.append((name, member))
    return files
