"""Importing labelled datasets (COCO JSON, Pascal VOC XML, YOLO txt) into a project.

The importers package parses (no Django); this module finds the dataset inside an
uploaded zip, maps its categories into the taxonomy, stores each image as a still
frame and writes each box as a confirmed annotation with its history, in one
transaction. A malformed dataset imports nothing; a bad record is reported and the
rest imported. An image the project already has (same name, same content) is skipped
with its boxes, so importing a dataset twice adds nothing; the report warns of each such
image whose boxes were left out. It runs in a bulk worker
(``labeller.annotations.import_jobs``); only ``dataset_archive_check`` runs in the request.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from django.core.exceptions import ValidationError
from django.db import models, transaction

from labeller.annotations.importers import (
    DatasetFormatError,
    ImportedCategory,
    ImportedDataset,
    ImportedImage,
    RecordError,
    UnsafeArchiveError,
    check_zip,
    parse_coco,
    parse_voc_dir,
    parse_yolo_dir,
)
from labeller.annotations.importers.archive import extract_zip
from labeller.annotations.importers.types import is_image_name, safe_relative_path
from labeller.annotations.models import (
    Annotation,
    AnnotationAction,
    AnnotationEvent,
    AnnotationSource,
    AnnotationStatus,
    Label,
)
from labeller.annotations.services import annotation_snapshot, label_create
from labeller.core.errors import DomainError
from labeller.media.images import (
    Beat,
    Progress,
    file_sha256,
    frame_files_deleted_on_error,
    frames_drop_known,
    image_probe,
    known_still_keys,
    project_lock,
    still_frame_store,
    still_image_prepare,
    zip_limits,
)
from labeller.media.models import Frame
from labeller.media.video import MediaError
from labeller.projects.models import Project
from labeller.training.hooks import learning_after_annotation_change

logger = logging.getLogger(__name__)

# Imported labels get distinct colours, so 80 COCO classes are not all one blue.
LABEL_COLOURS = [
    "#3b82f6", "#ef4444", "#22c55e", "#eab308", "#a855f7", "#06b6d4", "#f97316", "#ec4899", "#84cc16", "#64748b",
]
BULK_BATCH = 1000


class DatasetFormat(models.TextChoices):
    COCO = "coco", "COCO JSON"
    VOC = "voc", "Pascal VOC XML"
    YOLO = "yolo", "YOLO txt"


@dataclass(frozen=True)
class ImportReport:
    """What was imported (counts of new rows) and every record that was not, with why."""

    images: int
    boxes: int
    labels_created: int
    errors: tuple[RecordError, ...]
    warnings: tuple[RecordError, ...]
    skipped: int = 0  # images the project already had (same name and content), with their boxes


def dataset_archive_check(*, archive: Path | IO[bytes], archive_name: str) -> None:
    """Refuse, cheaply (the central directory only), a zip that is unsafe or not a zip at all."""
    try:
        check_zip(archive, **asdict(zip_limits()))
    except UnsafeArchiveError as error:
        raise DomainError(f"{archive_name}: {error}", code="unsafe_archive") from error
    except DatasetFormatError as error:
        raise DomainError(f"{archive_name}: {error}", code="invalid_dataset") from error


def dataset_import_archive(
    *,
    project: Project,
    actor,
    archive: Path,
    archive_name: str,
    dataset_format: DatasetFormat,
    progress: Progress | None = None,
    beat: Beat | None = None,
    before_commit: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Unpack an uploaded zip safely, find the dataset in it and import it.

    An unsafe archive or a dataset its parser refuses raises DomainError naming the
    problem, and nothing is imported. ``beat()`` is called after each file unpacked,
    decoded and hashed; ``progress`` as each image is stored.
    """
    with tempfile.TemporaryDirectory(prefix="labeller-import-") as workdir:
        root = Path(workdir)
        try:
            extract_zip(archive, root, on_file=beat, **asdict(zip_limits()))
            dataset = TREE_PARSERS[DatasetFormat(dataset_format)](root)
        except UnsafeArchiveError as error:
            raise DomainError(f"{archive_name}: {error}", code="unsafe_archive") from error
        except DatasetFormatError as error:
            raise DomainError(f"{archive_name}: {error}", code="invalid_dataset") from error
        return dataset_import(
            project=project, actor=actor, dataset=dataset, progress=progress, beat=beat, before_commit=before_commit
        )


def dataset_import(
    *,
    project: Project,
    actor,
    dataset: ImportedDataset,
    progress: Progress | None = None,
    beat: Beat | None = None,
    before_commit: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Write a parsed dataset into ``project``; every image needs its ``path``.

    Boxes become confirmed annotations with source "import" and author ``actor``,
    each with a "created" history event. Categories map to labels by dotted name:
    existing ones are reused, missing ones created with their ancestors; a deprecated
    label refuses its boxes (reported).
    """
    started = time.perf_counter()
    errors, warnings = list(dataset.errors), list(dataset.warnings)
    accepted = _checked_images(dataset.images, errors, warnings, beat)
    keyed = []
    for image, upright in accepted:
        keyed.append((image, upright, file_sha256(image.path)))
        if beat is not None:
            beat()
    known = known_still_keys(project, [(image.file_name[:255], sha256) for image, _, sha256 in keyed])
    todo = []
    for image, upright, sha256 in keyed:
        key = (image.file_name[:255], sha256)
        if key not in known:
            known.add(key)
            todo.append((image, upright, sha256))
        else:
            _warn_boxes_left_out(image, warnings)
    skipped = len(keyed) - len(todo)
    with frame_files_deleted_on_error() as frames:
        image_of: dict[int, ImportedImage] = {}
        for number, (image, upright, sha256) in enumerate(todo, start=1):
            prepared = still_image_prepare(image.path, quality=project.jpeg_quality, upright=upright)
            still_frame_store(frames, project=project, original_name=image.file_name, image=prepared, sha256=sha256)
            image_of[id(frames[-1])] = image
            if progress is not None:
                progress(number, len(todo))
        with transaction.atomic():
            project_lock(project)
            storing = list(frames)
            skipped += frames_drop_known(frames, project)  # written by another import meanwhile
            kept = {id(frame) for frame in frames}
            for frame in storing:
                if id(frame) not in kept:
                    _warn_boxes_left_out(image_of[id(frame)], warnings)
            labels_before = Label.objects.filter(project=project).count()
            labels = _labels_for(project, dataset.categories, errors)
            Frame.objects.bulk_create(frames, batch_size=BULK_BATCH)
            boxes = _annotations_create(
                project=project,
                actor=actor,
                images=[image_of[id(frame)] for frame in frames],
                frames=frames,
                labels=labels,
            )
            labels_created = Label.objects.filter(project=project).count() - labels_before
            if boxes:
                # Once for the whole import, where annotation_create would ask once per box.
                learning_after_annotation_change(project_id=project.pk)
            report = ImportReport(len(frames), boxes, labels_created, tuple(errors), tuple(warnings), skipped)
            if before_commit is not None:
                before_commit(report)
    logger.info(
        "%s imported %d images, %d boxes into project %s in %.1fs (%d errors, %d already there)",
        actor, len(frames), boxes, project.pk, time.perf_counter() - started, len(errors), skipped,
    )
    return report


def _warn_boxes_left_out(image: ImportedImage, warnings: list[RecordError]) -> None:
    """Skipping an image the project already has skips its boxes too: say so, where it has any."""
    if image.boxes:
        count = len(image.boxes)
        warnings.append(
            RecordError(
                image.file_name, f"already in the project; {count} box{'es' if count != 1 else ''} not imported"
            )
        )


def _checked_images(
    images: tuple[ImportedImage, ...],
    errors: list[RecordError],
    warnings: list[RecordError],
    beat: Beat | None = None,
) -> list[tuple[ImportedImage, bool]]:
    """The images to import, each with whether to store it upright so that its boxes fit."""
    accepted = []
    for image in images:
        if beat is not None:
            beat()
        if image.path is None:
            errors.append(RecordError(image.file_name, "not imported: the image file is missing"))
            continue
        try:
            probe = image_probe(image.path)
        except MediaError as error:
            errors.append(RecordError(image.file_name, f"not imported: {error.message}"))
            continue
        size = (image.width, image.height)
        if size == (probe.width, probe.height):
            accepted.append((image, True))
        elif size == (probe.height, probe.width):
            # Sized like the pixels before the EXIF rotation: the boxes were drawn on those.
            warnings.append(
                RecordError(image.file_name, "boxes fit the image before its EXIF rotation; stored unrotated")
            )
            accepted.append((image, False))
        else:
            declared, actual = f"{image.width}x{image.height}", f"{probe.width}x{probe.height}"
            message = f"not imported: the dataset says {declared}, the image is {actual}"
            errors.append(RecordError(image.file_name, message))
    return accepted


def _labels_for(
    project: Project, categories: tuple[ImportedCategory, ...], errors: list[RecordError]
) -> dict[str, Label]:
    """Label per category name, created where missing; deprecated labels are left out (reported)."""
    names = [category.name for category in categories]
    existing = {label.name: label for label in Label.objects.filter(project=project, name__in=names)}
    colour_index = Label.objects.filter(project=project).count()
    labels = {}
    for category in categories:
        label = existing.get(category.name)
        if label is None:
            try:
                label = label_create(
                    project=project, name=category.name, color=LABEL_COLOURS[colour_index % len(LABEL_COLOURS)]
                )
            except ValidationError as error:
                errors.append(RecordError(f"category {category.name!r}", f"not imported: {' '.join(error.messages)}"))
                continue
            colour_index += 1
        if label.deprecated:
            errors.append(
                RecordError(
                    f"category {category.name!r}",
                    "its label is deprecated in this project; its boxes were not imported",
                )
            )
            continue
        labels[category.name] = label
    return labels


def _annotations_create(
    *, project: Project, actor, images: list[ImportedImage], frames: list[Frame], labels: dict[str, Label]
) -> int:
    """Bulk insert of confirmed boxes and their "created" events, as ``annotation_create`` records them.

    The importers validated each box against its image (clipped, positive area) and
    ``_checked_images`` made each frame that size, which is what ``annotation_create``
    would check; one row at a time would cost two round trips per box.
    """
    annotations = [
        Annotation(
            project=project,
            frame=frame,
            label=labels[imported.category],
            x1=imported.box[0],
            y1=imported.box[1],
            x2=imported.box[2],
            y2=imported.box[3],
            status=AnnotationStatus.CONFIRMED,
            source=AnnotationSource.IMPORT,
            author=actor,
        )
        for image, frame in zip(images, frames, strict=True)
        for imported in image.boxes
        if imported.category in labels
    ]
    Annotation.objects.bulk_create(annotations, batch_size=BULK_BATCH)
    AnnotationEvent.objects.bulk_create(
        (
            AnnotationEvent(
                project=project,
                annotation_id=annotation.pk,
                frame_id=annotation.frame_id,
                actor=actor,
                action=AnnotationAction.CREATED,
                before=None,
                after=annotation_snapshot(annotation),
            )
            for annotation in annotations
        ),
        batch_size=BULK_BATCH,
    )
    return len(annotations)


# --- finding the dataset inside an unpacked archive -------------------------------------


def _dataset_files(root: Path) -> list[Path]:
    """Files under ``root``, shallowest first, without macOS metadata (``__MACOSX/``, ``._*``)."""
    files = [
        path
        for path in root.rglob("*")
        if path.is_file() and "__MACOSX" not in path.relative_to(root).parts and not path.name.startswith("._")
    ]
    return sorted(files, key=lambda path: (len(path.relative_to(root).parts), path.as_posix()))


def _sibling(folder: Path, *names: str) -> Path | None:
    """The first folder next to ``folder`` named one of ``names`` (any case), in the order given."""
    siblings = {path.name.lower(): path for path in sorted(folder.parent.iterdir()) if path.is_dir()}
    return next((siblings[name] for name in names if name in siblings), None)


def _parse_coco_tree(root: Path) -> ImportedDataset:
    files = _dataset_files(root)
    json_files = [path for path in files if path.suffix.lower() == ".json"]
    if len(json_files) != 1:
        found = ", ".join(path.relative_to(root).as_posix() for path in json_files) or "none"
        raise DatasetFormatError(f"a COCO archive holds exactly one .json file (found: {found})")
    raw = json_files[0].read_bytes()
    return parse_coco(raw, images_dir=_coco_images_dir(raw, root, files, default=json_files[0].parent))


def _coco_images_dir(raw: bytes, root: Path, files: list[Path], *, default: Path) -> Path:
    """The folder the images' ``file_name``s are relative to: the one most of them are found in."""
    try:
        names = [
            image["file_name"]
            for image in json.loads(raw)["images"]
            if isinstance(image, dict) and isinstance(image.get("file_name"), str)
        ]
    except (ValueError, TypeError, KeyError, RecursionError):
        return default  # parse_coco says what is wrong with the file
    found_by_base_name: dict[str, list[str]] = defaultdict(list)
    for path in files:
        if is_image_name(path.name):
            found_by_base_name[path.name].append(path.relative_to(root).as_posix())
    votes: Counter[str] = Counter()
    for name in names:
        relative = safe_relative_path(name)
        if relative is None:
            continue
        wanted = relative.as_posix()
        for found in found_by_base_name.get(relative.name, ()):
            if found == wanted or found.endswith("/" + wanted):
                votes[found.removesuffix(wanted)] += 1
    return root / votes.most_common(1)[0][0] if votes else default


def _parse_voc_tree(root: Path) -> ImportedDataset:
    xml_counts = Counter(path.parent for path in _dataset_files(root) if path.suffix.lower() == ".xml")
    if not xml_counts:
        raise DatasetFormatError("no Pascal VOC .xml annotation files in the archive")
    named = [folder for folder in xml_counts if folder.name.lower() == "annotations"]
    annotations_dir = named[0] if named else xml_counts.most_common(1)[0][0]
    images_dir = _sibling(annotations_dir, "jpegimages", "images") or annotations_dir
    return parse_voc_dir(annotations_dir, images_dir)


def _parse_yolo_tree(root: Path) -> ImportedDataset:
    files = _dataset_files(root)
    classes_file = next(
        (path for path in files if path.name.lower() == "classes.txt" or path.suffix.lower() == ".names"), None
    )
    image_folders = {
        root / folder for path in files for folder in path.relative_to(root).parents if folder.name.lower() == "images"
    }
    images_dir = min(image_folders, key=lambda folder: (len(folder.parts), folder.as_posix()), default=None)
    labels_dir = _sibling(images_dir, "labels") if images_dir is not None else None
    if classes_file is None or labels_dir is None:
        raise DatasetFormatError("a YOLO archive needs the folders images/ and labels/ side by side, and a classes.txt")
    return parse_yolo_dir(images_dir, labels_dir, classes_file)


TREE_PARSERS = {
    DatasetFormat.COCO: _parse_coco_tree,
    DatasetFormat.VOC: _parse_voc_tree,
    DatasetFormat.YOLO: _parse_yolo_tree,
}
