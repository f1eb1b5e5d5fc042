"""Records every dataset importer returns, and the few checks all formats share.

Boxes are ``(x1, y1, x2, y2)`` floats in pixels of the image as stored, 0-based,
with exclusive far edges: a box covering pixel columns ``a..b-1`` has
``x1=a, x2=b`` (the same convention as ``proposals.types``).

Importers never raise for a bad record: they report it as a ``RecordError`` and
carry on, so one upload can show every problem at once. Only a file that cannot
be read as its format at all raises ``DatasetFormatError`` (a malformed file
imports nothing).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import ExifTags, Image

Box = tuple[float, float, float, float]

# Suffixes Pillow reads and browsers display; compared lower-cased.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})

# Boxes poking out of the image by at most this much are clipped rather than
# reported: exporters commonly round outwards, and VOC's 1-based convention makes
# the off-by-one ``xmin = 0`` / ``xmax = width + 1`` exactly one pixel.
CLIP_TOLERANCE_PX = 1.0

# EXIF orientations 5-8 rotate by 90 degrees, so the displayed image swaps axes.
_AXIS_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_NOT_LABEL_CHARACTERS = re.compile(r"[^a-z0-9_-]+")


class DatasetFormatError(ValueError):
    """The file is not a readable dataset of its format; the whole import is refused."""


@dataclass(frozen=True)
class ImportedBox:
    """One object box; ``category`` is the dotted label name (``ImportedCategory.name``)."""

    category: str
    box: Box


@dataclass(frozen=True)
class ImportedImage:
    """An image and its boxes.

    ``file_name`` is the image's name as the dataset refers to it (may contain
    ``/`` for sub-folders); ``path`` is the file on disk when the importer was
    given an image folder, else ``None``. ``width``/``height`` are the pixel size
    the boxes refer to.
    """

    file_name: str
    path: Path | None
    width: int
    height: int
    boxes: tuple[ImportedBox, ...]


@dataclass(frozen=True)
class ImportedCategory:
    """A label to create: ``name`` is the full dotted taxonomy name (``vehicle.car``).

    ``supercategory`` is the dotted name of its parent (``vehicle``), or ``None``
    for a top-level label. The parent is not listed separately.
    """

    name: str
    supercategory: str | None


@dataclass(frozen=True)
class RecordError:
    """A problem with one record; ``record`` says where (file, ``file:line``, annotation id).

    Also used for warnings, which never stop the record from importing.
    """

    record: str
    message: str


@dataclass(frozen=True)
class ImportedDataset:
    """What an importer found.

    ``images`` hold only records that passed validation; every rejected record
    (image, box or line) is described in ``errors``. ``warnings`` describe things
    skipped or adjusted on purpose (a non-image file, a crowd region, merged labels).
    """

    images: tuple[ImportedImage, ...]
    categories: tuple[ImportedCategory, ...]
    errors: tuple[RecordError, ...]
    warnings: tuple[RecordError, ...]

    @property
    def box_count(self) -> int:
        return sum(len(image.boxes) for image in self.images)


@dataclass(frozen=True)
class ExportImage:
    """An image to export; ``id`` is the caller's stable id (e.g. the frame id)."""

    id: int
    file_name: str
    width: int
    height: int


@dataclass(frozen=True)
class ExportAnnotation:
    """A box to export: ``category`` is a dotted label name, ``box`` xyxy pixels."""

    id: int
    image_id: int
    category: str
    box: Box


@dataclass(frozen=True)
class ImageHeader:
    """Pixel size of an image file as stored, and whether EXIF rotates it by 90 degrees."""

    width: int
    height: int
    axes_swapped_for_display: bool

    @property
    def stored_size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def display_size(self) -> tuple[int, int]:
        """Size a browser (and Ultralytics) shows once the EXIF orientation is applied."""
        return (self.height, self.width) if self.axes_swapped_for_display else (self.width, self.height)


def label_token(text: str) -> str:
    """Normalise one taxonomy level to the label alphabet ``[a-z0-9_-]``.

    Accents are dropped (``Café`` -> ``cafe``), case is folded, and every run of
    other characters, dots included, becomes one ``_`` (``Teddy Bear`` ->
    ``teddy_bear``, ``U.S. flag`` -> ``u_s_flag``). May return ``""``.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _NOT_LABEL_CHARACTERS.sub("_", ascii_text.lower()).strip("_-")


def taxonomy_name(category: str, supercategory: str | None = None) -> str:
    """The dotted label name for a category under an optional supercategory.

    ``taxonomy_name("Car", "Vehicle") == "vehicle.car"``. The category becomes one
    token (see ``label_token``); the supercategory keeps its own dots as levels,
    so a name exported as ``("car", "things.vehicle")`` comes back as
    ``things.vehicle.car``. There is no parent when the supercategory is
    missing, blank, the literal ``none`` (Roboflow's placeholder) or equal to the
    category (COCO's ``person``/``person``).

    Raises ``ValueError`` when the category has no usable character.
    """
    leaf = label_token(category)
    if not leaf:
        raise ValueError(f"category name {category!r} has no letters or digits")
    parent_levels = [token for level in (supercategory or "").split(".") if (token := label_token(level))]
    if parent_levels in ([], ["none"], [leaf]):
        return leaf
    return ".".join([*parent_levels, leaf])


def parent_name(dotted_name: str) -> str | None:
    """``vehicle.car`` -> ``vehicle``; a top-level name has no parent."""
    return dotted_name.rsplit(".", 1)[0] if "." in dotted_name else None


def is_finite_number(value: object) -> bool:
    """Whether a parsed JSON value is a real, finite number.

    Python's json reads ``NaN``, ``Infinity`` and overflowing literals such as ``1e999``
    as floats, and ``true`` as a bool (an int subclass); none of them is a size or a
    coordinate.
    """
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_box(box: Box, width: int, height: int) -> tuple[Box | None, str | None]:
    """Validate a pixel box against its image: ``(clipped_box, None)`` or ``(None, why)``.

    Overshoots up to ``CLIP_TOLERANCE_PX`` are clipped to the image; anything
    further out, non-finite or without area is refused.
    """
    if not all(math.isfinite(value) for value in box):
        return None, f"box {_format_box(box)} has a non-finite coordinate"
    x1, y1, x2, y2 = box
    if x2 <= x1 or y2 <= y1:
        return None, f"box {_format_box(box)} has zero or negative area"
    overshoot = max(-x1, -y1, x2 - width, y2 - height)
    if overshoot > CLIP_TOLERANCE_PX:
        return None, f"box {_format_box(box)} lies outside the {width}x{height} image by {overshoot:g} px"
    clipped = (max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height)))
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        return None, f"box {_format_box(box)} has no area inside the {width}x{height} image"
    return clipped, None


def require_directories(*folders: Path) -> None:
    """Refuse a dataset whose folders are missing, rather than import it as empty or unlabelled."""
    for folder in folders:
        if not folder.is_dir():
            raise DatasetFormatError(f"folder {folder.name!r} not found")


def read_image_header(path: Path) -> ImageHeader:
    """Read an image's size from its header, without decoding the pixels.

    Raises ``OSError`` (``PIL.UnidentifiedImageError`` included) for a file that
    is not a readable image, and ``PIL.Image.DecompressionBombError`` for one
    far larger than Pillow's pixel limit.
    """
    with Image.open(path) as image:
        # Pillow's PNG getexif() decodes the whole image to look for a late eXIf
        # chunk; an orientation there is too rare to be worth a full decode.
        if image.format == "PNG" and "exif" not in image.info:
            orientation = 1
        else:
            orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        return ImageHeader(image.width, image.height, orientation in _AXIS_SWAPPING_ORIENTATIONS)


def safe_relative_path(name: str) -> PurePosixPath | None:
    """``name`` as a relative path that cannot leave its folder, else ``None``.

    Dataset files name their images; an absolute name, a drive letter or a
    ``..`` step must not let an upload reach other files. Windows separators
    are accepted as ``/``.
    """
    relative = PurePosixPath(name.replace("\\", "/"))
    if not relative.parts or relative.is_absolute() or ".." in relative.parts or ":" in relative.parts[0]:
        return None
    return relative


def resolve_inside(folder: Path, name: str) -> Path | None:
    """``folder / name`` if it names a path inside ``folder`` (symlinks resolved), else ``None``."""
    relative = safe_relative_path(name)
    if relative is None:
        return None
    candidate = folder / relative
    if not candidate.resolve().is_relative_to(folder.resolve()):
        return None
    return candidate


def is_image_name(name: str) -> bool:
    """Whether a file name looks like an image we can import (by suffix).

    macOS's AppleDouble ``._photo.jpg`` companions carry image suffixes but hold
    no image, so they are not images.
    """
    path = PurePosixPath(name)
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("._")


def _format_box(box: Box) -> str:
    return "[" + ", ".join(f"{value:g}" for value in box) + "]"
