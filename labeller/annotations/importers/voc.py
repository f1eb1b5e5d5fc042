"""Pascal VOC XML: one ``<annotation>`` file per image.

VOC pixel coordinates are 1-based and inclusive: a box whose ``xmin == xmax``
covers one pixel column. In our 0-based, exclusive-edge boxes that is
``x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax``.

The XML is parsed with the standard library's expat, refusing any DOCTYPE or
entity declaration: VOC never needs one, and internal entities are how a
"billion laughs" file exhausts memory (defusedxml is not a dependency).
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from xml.parsers import expat

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
    resolve_inside,
    safe_relative_path,
    taxonomy_name,
)

__all__ = ["parse_voc_dir", "parse_voc_xml"]

_CORNERS = ("xmin", "ymin", "xmax", "ymax")


@dataclass(frozen=True)
class _VocObject:
    record: str
    name: str
    corners: dict[str, str | None]


@dataclass(frozen=True)
class _VocDocument:
    record: str
    file_name: str | None
    declared_size: tuple[int, int] | None
    objects: tuple[_VocObject, ...]


def parse_voc_xml(path_or_bytes: Path | str | bytes, *, source_name: str | None = None) -> ImportedDataset:
    """Parse one VOC XML file on its own (no image file is looked at).

    The result holds one image (``path=None``, sized by ``<size>``), or none when
    the file lacks a usable ``<filename>`` or ``<size>``; bad objects are
    reported and skipped. ``source_name`` names the record in errors (defaults
    to the file's name). Raises ``DatasetFormatError`` for XML that does not
    parse, declares a DOCTYPE/entities, or whose root is not ``<annotation>``.
    """
    document = _read_document(path_or_bytes, source_name)
    errors: list[RecordError] = []
    image = None
    if document.file_name is None:
        errors.append(RecordError(document.record, "missing <filename>"))
    elif document.declared_size is None:
        errors.append(RecordError(document.record, "missing or invalid <size> (positive <width> and <height>)"))
    else:
        width, height = document.declared_size
        image = _build_image(document, document.file_name, None, width, height, errors)
    return _dataset([image] if image else [], errors, [])


def parse_voc_dir(annotations_dir: Path, images_dir: Path) -> ImportedDataset:
    """Parse every ``*.xml`` in ``annotations_dir`` (sorted) against ``images_dir``.

    Each file's image is its ``<filename>`` inside ``images_dir``, or, when that
    is missing, an image named like the XML file (``a.xml`` -> ``a.jpg``). An
    image must exist and be readable; ``<size>`` may be absent (the file's size
    is used) but, when given, must match the file as stored or as displayed after
    EXIF rotation, since the boxes are meaningless on a differently sized image.
    Images that no XML refers to are not imported (warning): unlike YOLO, VOC has
    no convention that a missing annotation file means "no objects".

    Raises ``DatasetFormatError`` for a missing folder or any XML file that
    ``parse_voc_xml`` would refuse.
    """
    annotations_dir, images_dir = Path(annotations_dir), Path(images_dir)
    require_directories(annotations_dir, images_dir)
    errors: list[RecordError] = []
    images: list[ImportedImage] = []
    referenced_paths: set[Path] = set()
    for xml_path in sorted(annotations_dir.glob("*.xml")):
        document = _read_document(xml_path, xml_path.name)
        image_path = _find_image(document, xml_path, images_dir)
        if image_path is None:
            missing_name = document.file_name or xml_path.stem
            errors.append(RecordError(document.record, f"image {missing_name!r} not found in the image folder"))
            continue
        if image_path.resolve() in referenced_paths:
            errors.append(RecordError(document.record, f"image {image_path.name!r} is annotated by another file too"))
            continue
        referenced_paths.add(image_path.resolve())
        try:
            header = read_image_header(image_path)
        except (OSError, Image.DecompressionBombError) as error:
            errors.append(RecordError(document.record, f"image {image_path.name!r} is not readable: {error}"))
            continue
        width, height = document.declared_size or header.display_size
        if (width, height) not in (header.stored_size, header.display_size):
            errors.append(
                RecordError(
                    document.record,
                    f"<size> {width}x{height} does not match the image file ({header.width}x{header.height})",
                )
            )
            continue
        file_name = image_path.relative_to(images_dir).as_posix()
        images.append(_build_image(document, file_name, image_path, width, height, errors))
    warnings = [
        RecordError(path.relative_to(images_dir).as_posix(), "no annotation file refers to this image; not imported")
        for path in sorted(images_dir.rglob("*"))
        if path.is_file() and is_image_name(path.name) and path.resolve() not in referenced_paths
    ]
    return _dataset(images, errors, warnings)


def _dataset(images: list[ImportedImage], errors: list[RecordError], warnings: list[RecordError]) -> ImportedDataset:
    labels = sorted({box.category for image in images for box in image.boxes})
    # VOC has no hierarchy: every label is top-level.
    categories = tuple(ImportedCategory(label, None) for label in labels)
    return ImportedDataset(tuple(images), categories, tuple(errors), tuple(warnings))


def _build_image(
    document: _VocDocument, file_name: str, path: Path | None, width: int, height: int, errors: list[RecordError]
) -> ImportedImage:
    boxes = []
    for voc_object in document.objects:
        box, problem = _object_box(voc_object, width, height)
        if problem is None:
            boxes.append(box)
        else:
            errors.append(RecordError(voc_object.record, problem))
    return ImportedImage(file_name=file_name, path=path, width=width, height=height, boxes=tuple(boxes))


def _object_box(voc_object: _VocObject, width: int, height: int) -> tuple[ImportedBox | None, str | None]:
    try:
        label = taxonomy_name(voc_object.name)
    except ValueError as error:
        return None, str(error)
    missing = [corner for corner, text in voc_object.corners.items() if text is None]
    if missing:
        return None, f"missing <bndbox> field(s): {', '.join(missing)}"
    try:
        xmin, ymin, xmax, ymax = (float(voc_object.corners[corner]) for corner in _CORNERS)
    except ValueError:
        return None, f"<bndbox> coordinates must be numbers, got {voc_object.corners}"
    box, problem = check_box((xmin - 1, ymin - 1, xmax, ymax), width, height)
    return (ImportedBox(label, box), None) if problem is None else (None, problem)


def _find_image(document: _VocDocument, xml_path: Path, images_dir: Path) -> Path | None:
    if document.file_name is not None and safe_relative_path(document.file_name) is not None:
        named = resolve_inside(images_dir, document.file_name)
        if named is not None and named.is_file():
            return named
    same_stem = sorted(path for path in images_dir.iterdir() if path.stem == xml_path.stem and is_image_name(path.name))
    return same_stem[0] if same_stem else None


def _read_document(path_or_bytes: Path | str | bytes, source_name: str | None) -> _VocDocument:
    if isinstance(path_or_bytes, bytes):
        data, record = path_or_bytes, source_name or "<xml>"
    else:
        path = Path(path_or_bytes)
        data, record = path.read_bytes(), source_name or path.name
    root = _parse_xml_safely(data, record)
    if root.tag != "annotation":
        raise DatasetFormatError(f"{record}: root element is <{root.tag}>, expected <annotation>")
    objects = tuple(
        _VocObject(
            record=f"{record} object {number}",
            name=(element.findtext("name") or "").strip(),
            corners={corner: element.findtext(f"bndbox/{corner}") for corner in _CORNERS},
        )
        for number, element in enumerate(root.iterfind("object"), start=1)
    )
    file_name = (root.findtext("filename") or "").strip() or None
    return _VocDocument(record, file_name, _declared_size(root), objects)


def _declared_size(root: ElementTree.Element) -> tuple[int, int] | None:
    """``<size>`` as ``(width, height)``, or ``None`` when absent, zero or not whole numbers."""
    try:
        width, height = (float(root.findtext(f"size/{key}") or "") for key in ("width", "height"))
    except ValueError:
        return None
    if width <= 0 or height <= 0 or not width.is_integer() or not height.is_integer():
        return None
    return int(width), int(height)


def _parse_xml_safely(data: bytes, record: str) -> ElementTree.Element:
    """Build an ElementTree from ``data`` with expat, refusing DOCTYPE and entity declarations."""
    builder = ElementTree.TreeBuilder()
    parser = expat.ParserCreate()
    parser.buffer_text = True

    def refuse_declaration(*_: object) -> None:
        raise DatasetFormatError(f"{record}: DOCTYPE and entity declarations are not allowed in VOC XML")

    parser.StartDoctypeDeclHandler = refuse_declaration
    parser.EntityDeclHandler = refuse_declaration
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except expat.ExpatError as error:
        raise DatasetFormatError(f"{record}: not well-formed XML ({error})") from error
    return builder.close()
