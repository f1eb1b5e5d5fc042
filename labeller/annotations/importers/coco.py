"""COCO object-detection JSON: import (``parse_coco``) and export (``export_coco``).

COCO boxes are ``[x, y, width, height]`` in 0-based continuous pixels, so
``xyxy = (x, y, x + width, y + height)`` with no off-by-one. Categories become
dotted labels ``supercategory.name`` (see ``taxonomy_name``).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image

from .types import (
    Box,
    DatasetFormatError,
    ExportAnnotation,
    ExportImage,
    ImportedBox,
    ImportedCategory,
    ImportedDataset,
    ImportedImage,
    RecordError,
    check_box,
    is_finite_number,
    parent_name,
    read_image_header,
    resolve_inside,
    safe_relative_path,
    taxonomy_name,
)

__all__ = ["export_coco", "parse_coco", "taxonomy_name"]

_IMAGE_FIELDS = ("id", "file_name", "width", "height")
_CATEGORY_FIELDS = ("id", "name")
_ANNOTATION_FIELDS = ("id", "image_id", "category_id", "bbox")


@dataclass(frozen=True)
class _Image:
    id: Hashable
    record: str
    file_name: str
    path: Path | None
    width: int
    height: int


def parse_coco(json_path_or_bytes: Path | str | bytes, *, images_dir: Path | None = None) -> ImportedDataset:
    """Parse a COCO detection file (``instances_*.json`` shape).

    ``json_path_or_bytes`` is a path to the file or its raw bytes. With
    ``images_dir``, each image's ``file_name`` must name a readable image inside
    that folder whose size matches the declared one (as stored, or as displayed
    after EXIF rotation); the result then carries its ``path``.

    Raises ``DatasetFormatError`` for invalid JSON or when the top level is not an
    object with ``images`` and ``categories`` lists (``annotations``, absent from
    COCO's image-info files, defaults to none). Everything else is per record:
    duplicate ids reject every record sharing the id (references to it are
    ambiguous); an annotation whose image or category was rejected is rejected
    too; ``iscrowd`` regions are skipped with a warning, since they are not
    single objects.
    """
    document = _load_json(json_path_or_bytes)
    errors: list[RecordError] = []
    warnings: list[RecordError] = []
    labels_by_category_id, rejected_category_ids, categories = _parse_categories(
        document["categories"], errors, warnings
    )
    images, rejected_image_ids = _parse_images(document["images"], images_dir, errors)
    boxes_by_image_id = _parse_annotations(
        document.get("annotations", []),
        images={image.id: image for image in images},
        rejected_image_ids=rejected_image_ids,
        labels_by_category_id=labels_by_category_id,
        rejected_category_ids=rejected_category_ids,
        errors=errors,
        warnings=warnings,
    )
    imported_images = tuple(
        ImportedImage(
            file_name=image.file_name,
            path=image.path,
            width=image.width,
            height=image.height,
            boxes=tuple(boxes_by_image_id[image.id]),
        )
        for image in images
    )
    return ImportedDataset(imported_images, categories, tuple(errors), tuple(warnings))


def export_coco(
    images: Sequence[ExportImage],
    annotations: Sequence[ExportAnnotation],
    categories: Sequence[str],
    *,
    description: str = "Exported from Labeller",
) -> dict[str, Any]:
    """Build a COCO detection dict (ready for ``json.dump``) from boxes.

    ``categories`` are dotted label names; category ids are their 1-based
    positions (COCO keeps 0 for background). Each is exported as its last level
    under the rest as ``supercategory`` (``things.vehicle.car`` -> name ``car``,
    supercategory ``things.vehicle``); a top-level label is its own
    supercategory, as COCO does for ``person``. ``parse_coco`` reads all of them
    back to the same names, except a label repeating its parent (``food.food``),
    which comes back as ``food``.

    Raises ``ValueError`` for inconsistent input (a duplicate id or category, an
    annotation naming an unknown image or category): that is a caller bug, not
    a data problem to report.
    """
    _require_unique("category", categories)
    _require_unique("image id", [image.id for image in images])
    _require_unique("annotation id", [annotation.id for annotation in annotations])
    category_ids = {name: position for position, name in enumerate(categories, start=1)}
    image_ids = {image.id for image in images}
    coco_annotations = []
    for annotation in annotations:
        if annotation.image_id not in image_ids:
            raise ValueError(f"annotation {annotation.id} names unknown image {annotation.image_id}")
        if annotation.category not in category_ids:
            raise ValueError(f"annotation {annotation.id} names unknown category {annotation.category!r}")
        x1, y1, x2, y2 = annotation.box
        coco_annotations.append(
            {
                "id": annotation.id,
                "image_id": annotation.image_id,
                "category_id": category_ids[annotation.category],
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1),
                "iscrowd": 0,
            }
        )
    return {
        "info": {
            "description": description,
            "version": "1.0",
            "date_created": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "licenses": [],
        "images": [
            {"id": image.id, "file_name": image.file_name, "width": image.width, "height": image.height}
            for image in images
        ],
        "annotations": coco_annotations,
        "categories": [
            {
                "id": category_ids[name],
                "name": name.rsplit(".", 1)[-1],
                "supercategory": parent_name(name) or name,
            }
            for name in categories
        ],
    }


def _load_json(json_path_or_bytes: Path | str | bytes) -> dict[str, Any]:
    raw = json_path_or_bytes if isinstance(json_path_or_bytes, bytes) else Path(json_path_or_bytes).read_bytes()
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise DatasetFormatError(f"not a valid JSON file: {error}") from error
    if not isinstance(document, dict):
        raise DatasetFormatError("a COCO file must be a JSON object with 'images' and 'categories'")
    for key in ("images", "categories"):
        if not isinstance(document.get(key), list):
            raise DatasetFormatError(f"a COCO file needs a list under '{key}'")
    if not isinstance(document.get("annotations", []), list):
        raise DatasetFormatError("'annotations' must be a list")
    return document


def _parse_categories(
    raw_categories: list[Any], errors: list[RecordError], warnings: list[RecordError]
) -> tuple[dict[Hashable, str], set[Hashable], tuple[ImportedCategory, ...]]:
    """Map each valid category id to its dotted label; also return the rejected ids."""
    candidates: list[tuple[str, Hashable, str]] = []
    duplicate_ids = _duplicate_ids(raw_categories)
    rejected_ids = set(duplicate_ids)
    for index, raw in enumerate(raw_categories):
        label, problem = _category_label(raw)
        if problem is None:
            candidates.append((f"category id {raw['id']}", raw["id"], label))
            continue
        errors.append(RecordError(f"categories[{index}]", problem))
        if isinstance(raw, dict) and _id_problem(raw.get("id")) is None:
            rejected_ids.add(raw["id"])
    labels_by_category_id: dict[Hashable, str] = {}
    for record, category_id, label in candidates:
        if category_id in duplicate_ids:
            errors.append(RecordError(record, "duplicate category id; every category with this id is rejected"))
        else:
            labels_by_category_id[category_id] = label
    ids_by_label: dict[str, list[Hashable]] = defaultdict(list)
    for category_id, label in labels_by_category_id.items():
        ids_by_label[label].append(category_id)
    for label, category_ids in ids_by_label.items():
        if len(category_ids) > 1:
            warnings.append(
                RecordError(
                    f"category ids {', '.join(map(str, category_ids))}",
                    f"all normalise to label '{label}'; their boxes are merged under it",
                )
            )
    categories = tuple(ImportedCategory(label, parent_name(label)) for label in ids_by_label)
    return labels_by_category_id, rejected_ids, categories


def _category_label(raw: Any) -> tuple[str | None, str | None]:
    """The dotted label of one raw category, or why it has none."""
    problem = _missing_fields(raw, _CATEGORY_FIELDS) or _id_problem(raw["id"])
    if problem is not None:
        return None, problem
    name, supercategory = raw["name"], raw.get("supercategory")
    if not isinstance(name, str) or not isinstance(supercategory, str | None):
        return None, "'name' and 'supercategory' must be strings"
    try:
        return taxonomy_name(name, supercategory), None
    except ValueError as error:
        return None, str(error)


def _parse_images(
    raw_images: list[Any], images_dir: Path | None, errors: list[RecordError]
) -> tuple[list[_Image], set[Hashable]]:
    """Valid images in file order, and the ids of images that were rejected."""
    candidates: list[_Image] = []
    rejected_ids: set[Hashable] = set()
    for index, raw in enumerate(raw_images):
        problem = _missing_fields(raw, _IMAGE_FIELDS) or _id_problem(raw["id"])
        record = f"images[{index}]" if problem else f"image id {raw['id']}"
        if problem is None:
            problem = _image_problem(raw)
        path = None
        if problem is None and images_dir is not None:
            path = resolve_inside(images_dir, raw["file_name"])
            problem = _image_file_problem(path, raw)
        if problem is not None:
            errors.append(RecordError(record, problem))
            if isinstance(raw, dict) and _id_problem(raw.get("id")) is None:
                rejected_ids.add(raw["id"])
            continue
        candidates.append(_Image(raw["id"], record, raw["file_name"], path, int(raw["width"]), int(raw["height"])))
    duplicate_ids = _duplicate_ids(raw_images)
    duplicate_names = _duplicates(image.file_name for image in candidates)
    images = []
    for image in candidates:
        if image.id in duplicate_ids:
            errors.append(RecordError(image.record, "duplicate image id; every image with this id is rejected"))
        elif image.file_name in duplicate_names:
            errors.append(RecordError(image.record, f"file name {image.file_name!r} is used by more than one image"))
        else:
            images.append(image)
            continue
        rejected_ids.add(image.id)
    return images, rejected_ids


def _image_problem(raw: dict[str, Any]) -> str | None:
    file_name = raw["file_name"]
    if not isinstance(file_name, str) or safe_relative_path(file_name) is None:
        return f"'file_name' {file_name!r} must be a relative path without '..'"
    for key in ("width", "height"):
        value = raw[key]
        # Finite first: int(NaN) raises ValueError and int(Infinity) OverflowError.
        if not is_finite_number(value) or value <= 0 or value != int(value):
            return f"'{key}' must be a positive whole number, got {value!r}"
    return None


def _image_file_problem(path: Path | None, raw: dict[str, Any]) -> str | None:
    if path is None:
        return f"'file_name' {raw['file_name']!r} leaves the image folder"
    if not path.is_file():
        return f"image file {raw['file_name']!r} not found"
    try:
        header = read_image_header(path)
    except (OSError, Image.DecompressionBombError) as error:
        return f"image file {raw['file_name']!r} is not a readable image: {error}"
    declared = (int(raw["width"]), int(raw["height"]))
    if declared not in (header.stored_size, header.display_size):
        return (
            f"declared size {declared[0]}x{declared[1]} does not match the image file ({header.width}x{header.height})"
        )
    return None


def _parse_annotations(
    raw_annotations: list[Any],
    *,
    images: dict[Hashable, _Image],
    rejected_image_ids: set[Hashable],
    labels_by_category_id: dict[Hashable, str],
    rejected_category_ids: set[Hashable],
    errors: list[RecordError],
    warnings: list[RecordError],
) -> dict[Hashable, list[ImportedBox]]:
    candidates: list[tuple[str, Hashable, Hashable, ImportedBox]] = []
    for index, raw in enumerate(raw_annotations):
        problem = _missing_fields(raw, _ANNOTATION_FIELDS) or _id_problem(raw["id"])
        record = f"annotations[{index}]" if problem else f"annotation id {raw['id']}"
        if problem is None and raw.get("iscrowd") in (1, True):
            warnings.append(RecordError(record, "crowd region (iscrowd=1) skipped: it is not a single object"))
            continue
        box = None
        if problem is None:
            problem = _reference_problem(raw["image_id"], images, rejected_image_ids, "image")
        if problem is None:
            problem = _reference_problem(raw["category_id"], labels_by_category_id, rejected_category_ids, "category")
        if problem is None:
            image = images[raw["image_id"]]
            box, problem = _bbox_to_box(raw["bbox"], image.width, image.height)
        if problem is not None:
            errors.append(RecordError(record, problem))
            continue
        label = labels_by_category_id[raw["category_id"]]
        candidates.append((record, raw["id"], raw["image_id"], ImportedBox(label, box)))
    duplicate_ids = _duplicate_ids(raw_annotations)
    boxes_by_image_id: dict[Hashable, list[ImportedBox]] = defaultdict(list)
    for record, annotation_id, image_id, box in candidates:
        if annotation_id in duplicate_ids:
            errors.append(RecordError(record, "duplicate annotation id; every annotation with this id is rejected"))
        else:
            boxes_by_image_id[image_id].append(box)
    return boxes_by_image_id


def _reference_problem(value: Any, valid: dict[Hashable, Any], rejected: set[Hashable], kind: str) -> str | None:
    if _id_problem(value) is not None:
        return f"'{kind}_id' must be an integer or a string, got {value!r}"
    if value in rejected:
        return f"its {kind} (id {value}) was rejected"
    if value not in valid:
        return f"unknown {kind} id {value!r}"
    return None


def _bbox_to_box(bbox: Any, width: int, height: int) -> tuple[Box | None, str | None]:
    numeric = isinstance(bbox, list) and len(bbox) == 4
    if numeric and all(isinstance(value, int | float) and not isinstance(value, bool) for value in bbox):
        # Non-finite values (NaN, Infinity, 1e999) pass on to check_box, which names them.
        x, y, box_width, box_height = (float(value) for value in bbox)
        return check_box((x, y, x + box_width, y + box_height), width, height)
    return None, f"'bbox' must be a list of 4 numbers [x, y, width, height], got {bbox!r}"


def _missing_fields(raw: Any, required: Sequence[str]) -> str | None:
    if not isinstance(raw, dict):
        return f"expected an object, got {type(raw).__name__}"
    missing = [field for field in required if field not in raw]
    return f"missing field(s): {', '.join(missing)}" if missing else None


def _id_problem(value: Any) -> str | None:
    # bool is an int subclass, and a float id would not match the integer references.
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        return f"'id' must be an integer or a non-empty string, got {value!r}"
    return None


def _duplicate_ids(raw_records: list[Any]) -> set[Hashable]:
    """Ids used by more than one record, counting records rejected for other reasons.

    Counting every record keeps a half-valid duplicate from making its twin
    look unique.
    """
    return _duplicates(
        raw["id"] for raw in raw_records if isinstance(raw, dict) and _id_problem(raw.get("id")) is None
    )


def _duplicates(values: Any) -> set[Hashable]:
    return {value for value, count in Counter(values).items() if count > 1}


def _require_unique(what: str, values: Sequence[Hashable]) -> None:
    duplicates = _duplicates(values)
    if duplicates:
        raise ValueError(f"duplicate {what}: {sorted(map(str, duplicates))}")
