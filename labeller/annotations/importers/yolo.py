"""YOLO (Ultralytics/darknet) text labels: ``images/…/a.jpg`` pairs with ``labels/…/a.txt``.

Each label line is ``class cx cy w h`` with the centre and size normalised to
[0, 1] by the image's width and height. Ultralytics normalises by the size as
displayed after EXIF rotation, so that is the size used here. An image without
a label file is a background image (no objects), as Ultralytics treats it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path, PurePosixPath

from PIL import Image

from .types import (
    DatasetFormatError,
    ImportedBox,
    ImportedCategory,
    ImportedDataset,
    ImportedImage,
    RecordError,
    check_box,
    is_image_name,
    read_image_header,
    require_directories,
    taxonomy_name,
)

__all__ = ["parse_yolo_dir"]

_FIELDS_PER_LINE = 5


def parse_yolo_dir(images_dir: Path, labels_dir: Path, classes_file: Path) -> ImportedDataset:
    """Parse a YOLO detection set.

    Images are found recursively under ``images_dir``; the labels of
    ``images_dir/sub/a.jpg`` are ``labels_dir/sub/a.txt``. ``classes_file`` has
    one class name per line, line N naming class id N; every class becomes a
    category, used or not.

    Per-record errors: a label file with no image (not imported), an unreadable
    image, two images sharing one label file, and each bad label line (wrong
    field count, non-number, value outside [0, 1], zero size, unknown class id,
    box beyond the image); a bad line drops only that box. Files in
    ``images_dir`` that are not images are skipped with a warning. Raises
    ``DatasetFormatError`` for a missing folder, an unusable classes file or a
    label file that is not UTF-8 text.
    """
    images_dir, labels_dir, classes_file = Path(images_dir), Path(labels_dir), Path(classes_file)
    require_directories(images_dir, labels_dir)
    warnings: list[RecordError] = []
    class_labels = _read_class_labels(classes_file, warnings)
    label_files = {
        path.relative_to(labels_dir).with_suffix("").as_posix(): path
        for path in sorted(labels_dir.rglob("*.txt"))
        if path.resolve() != classes_file.resolve()
    }
    images_by_key: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(images_dir.rglob("*")):
        if not path.is_file():
            continue
        relative_name = path.relative_to(images_dir).as_posix()
        if is_image_name(path.name):
            images_by_key[PurePosixPath(relative_name).with_suffix("").as_posix()].append(path)
        else:
            warnings.append(RecordError(relative_name, "not an image file; skipped"))

    errors: list[RecordError] = []
    images: list[ImportedImage] = []
    for key, image_paths in images_by_key.items():
        names = [path.relative_to(images_dir).as_posix() for path in image_paths]
        if len(image_paths) > 1:
            errors.extend(RecordError(name, f"images {names} share one label file; none imported") for name in names)
            continue
        image_path, file_name = image_paths[0], names[0]
        try:
            width, height = read_image_header(image_path).display_size
        except (OSError, Image.DecompressionBombError) as error:
            errors.append(RecordError(file_name, f"not a readable image: {error}"))
            continue
        label_file = label_files.get(key)
        boxes = (
            _read_label_file(label_file, labels_dir, class_labels, width, height, errors)
            if label_file is not None
            else ()
        )
        images.append(ImportedImage(file_name=file_name, path=image_path, width=width, height=height, boxes=boxes))

    errors.extend(
        RecordError(path.relative_to(labels_dir).as_posix(), "label file has no matching image; not imported")
        for key, path in label_files.items()
        if key not in images_by_key
    )
    categories = tuple(ImportedCategory(label, None) for label in dict.fromkeys(class_labels))
    return ImportedDataset(tuple(images), categories, tuple(errors), tuple(warnings))


def _read_class_labels(classes_file: Path, warnings: list[RecordError]) -> list[str]:
    """Dotted label per class id from a ``classes.txt`` (line N is class id N).

    Trailing blank lines are ignored. Names that normalise to the same label
    (``Car`` and ``car``) share it, with a warning appended to ``warnings``.
    Raises ``DatasetFormatError`` for an empty file, a blank line between names,
    or a name without letters or digits, since every later class id would shift.
    """
    text = _read_text(classes_file)
    names = [line.strip() for line in text.splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise DatasetFormatError(f"{classes_file.name}: no class names")
    labels = []
    for class_id, name in enumerate(names):
        try:
            labels.append(taxonomy_name(name))
        except ValueError as error:
            raise DatasetFormatError(f"{classes_file.name}:{class_id + 1}: {error}") from error
    ids_by_label: dict[str, list[int]] = defaultdict(list)
    for class_id, label in enumerate(labels):
        ids_by_label[label].append(class_id)
    warnings.extend(
        RecordError(classes_file.name, f"class ids {class_ids} all normalise to label '{label}'; boxes are merged")
        for label, class_ids in ids_by_label.items()
        if len(class_ids) > 1
    )
    return labels


def _read_label_file(
    label_file: Path,
    labels_dir: Path,
    class_labels: list[str],
    width: int,
    height: int,
    errors: list[RecordError],
) -> tuple[ImportedBox, ...]:
    relative_name = label_file.relative_to(labels_dir).as_posix()
    boxes = []
    for line_number, line in enumerate(_read_text(label_file).splitlines(), start=1):
        if not line.strip():
            continue
        box, problem = _line_to_box(line, class_labels, width, height)
        if problem is None:
            boxes.append(box)
        else:
            errors.append(RecordError(f"{relative_name}:{line_number}", problem))
    return tuple(boxes)


def _line_to_box(line: str, class_labels: list[str], width: int, height: int) -> tuple[ImportedBox | None, str | None]:
    fields = line.split()
    if len(fields) != _FIELDS_PER_LINE:
        return None, f"expected {_FIELDS_PER_LINE} fields 'class cx cy w h', found {len(fields)}"
    class_field, *coordinate_fields = fields
    if not (class_field.isascii() and class_field.isdigit()):
        return None, f"class id {class_field!r} is not a non-negative integer"
    class_id = int(class_field)
    if class_id >= len(class_labels):
        return None, f"unknown class id {class_id} (the classes file has {len(class_labels)})"
    try:
        cx, cy, box_width, box_height = (float(field) for field in coordinate_fields)
    except ValueError:
        return None, f"coordinates {coordinate_fields} are not all numbers"
    if not all(math.isfinite(value) and 0.0 <= value <= 1.0 for value in (cx, cy, box_width, box_height)):
        return None, f"coordinates {coordinate_fields} must all lie in [0, 1]"
    if box_width == 0.0 or box_height == 0.0:
        return None, f"box has zero size ({coordinate_fields[2]} x {coordinate_fields[3]})"
    pixel_box = (
        (cx - box_width / 2) * width,
        (cy - box_height / 2) * height,
        (cx + box_width / 2) * width,
        (cy + box_height / 2) * height,
    )
    box, problem = check_box(pixel_box, width, height)
    return (ImportedBox(class_labels[class_id], box), None) if problem is None else (None, problem)


def _read_text(path: Path) -> str:
    try:
        # utf-8-sig: Windows editors often prepend a byte-order mark.
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DatasetFormatError(f"{path.name}: not UTF-8 text ({error})") from error
