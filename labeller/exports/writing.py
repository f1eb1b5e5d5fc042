"""Writing an export's file: the selected frames and boxes, streamed into a work folder.

Rows come from server-side cursors in chunks, each frame's boxes are written as soon as its
row arrives, and text goes straight to files: memory holds one chunk of rows and one frame's
boxes, however many boxes the project has. The result is one file, a COCO ``.json`` or a
``.zip`` (YOLO, VOC, a COCO split, or any export with its images), that the caller stores.
"""

from __future__ import annotations

import shutil
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from django.core.files.storage import default_storage

from labeller import ml
from labeller.annotations.importers.types import safe_relative_path
from labeller.exports import formats
from labeller.exports.formats import ExportFrame, JsonArrayWriter
from labeller.exports.models import DatasetExport, ExportFormat
from labeller.exports.selectors import (
    duplicate_still_names,
    frames_with_boxes,
    labels_in_subtrees,
    selected_boxes,
    selected_frames,
    selection_of,
)
from labeller.training.runs import split_salt

JSON = "application/json"
ZIP = "application/zip"
# Rows per round trip of the server-side cursors.
CHUNK_ROWS = 5000
# Progress (and the heartbeat that proves the worker alive) at most this often.
PROGRESS_EVERY_S = 1.0
TRAIN, VAL = "train", "val"


@dataclass(frozen=True)
class WrittenExport:
    path: Path
    suffix: str
    content_type: str
    image_count: int
    annotation_count: int


def export_split_salt(project_id: int) -> str:
    """The salt of the project's split, the one its training runs use (recorded on the export
    row), so that with the same share a frame lands on the same side as in training."""
    return split_salt(project_id)


def export_file_write(
    *, export: DatasetExport, workdir: Path, report_progress: Callable[[int], None]
) -> WrittenExport:
    """Write ``export``'s file under ``workdir``; ``report_progress(percent)`` is called about
    once a second and may raise to stop the export."""
    selection = selection_of(export)
    labels = labels_in_subtrees(project_id=export.project_id, label_ids=export.label_ids)
    writer_class = {ExportFormat.COCO: CocoFiles, ExportFormat.YOLO: YoloFiles, ExportFormat.VOC: VocFiles}
    writer = writer_class[ExportFormat(export.format)](
        workdir,
        label_names={label.pk: label.name for label in labels},
        split=export.val_share is not None,
        include_images=export.include_images,
    )
    total_frames = max(selected_frames(selection).count(), 1)
    duplicates = duplicate_still_names(selection)
    frames = selected_frames(selection).iterator(chunk_size=CHUNK_ROWS)
    boxes = selected_boxes(selection).iterator(chunk_size=CHUNK_ROWS)
    last_report = time.monotonic()
    for done, (row, frame_boxes) in enumerate(frames_with_boxes(frames, boxes), start=1):
        # Every frame of the selection, with or without boxes: what the project holds, and
        # what an import of the file gives back. "Only complete frames" is how a person asks
        # for frames whose missing boxes mean "nothing there".
        frame_id, video_id, _, index, original_name, width, height, _, image_name = row
        frame = ExportFrame(
            frame_id=frame_id,
            file_name=frame_file_name(frame_id, video_id, index, original_name, duplicates, image_name=image_name),
            width=width,
            height=height,
            video_id=video_id,
            frame_index=index if video_id is not None else None,
        )
        split = _split_of(frame_id, export) if writer.split else None
        writer.add(frame, frame_boxes, split=split, image_name=image_name)
        if done % 500 == 0 and time.monotonic() - last_report >= PROGRESS_EVERY_S:
            report_progress(min(99, 100 * done // total_frames))
            last_report = time.monotonic()
    return writer.finish()


def frame_file_name(
    frame_id: int, video_id: int | None, index: int, original_name: str, duplicates: set[str], *, image_name: str = ""
) -> str:
    """The frame's file name inside the export, unique within it.

    A video frame is named by where it came from; a still image keeps the name it was
    uploaded (or imported) under, so an export imported and exported again keeps its
    names. A still whose name is unsafe, missing or shared gets one from its id, with the
    suffix of its stored file ``image_name`` (a PNG kept as it came stays ``.png``).
    """
    if video_id is not None:
        return f"videos/{video_id}/{index:06d}.jpg"
    relative = safe_relative_path(original_name) if original_name else None
    if relative is None or original_name in duplicates:
        return f"stills/{frame_id}{PurePosixPath(image_name).suffix.lower() or '.jpg'}"
    return relative.as_posix()


def _split_of(frame_id: int, export: DatasetExport) -> str:
    split = ml.frame_split(frame_id, salt=export.split_salt, val_share=export.val_share)
    return VAL if split == "validation" else TRAIN


class ExportFiles:
    """The files of one export in a work folder; subclasses write one format."""

    suffix = ".zip"
    content_type = ZIP

    def __init__(self, workdir: Path, *, label_names: dict[int, str], split: bool, include_images: bool):
        self.workdir = workdir
        self.label_names = label_names
        self.ordered_names = sorted(label_names.values())
        self.split = split
        self.include_images = include_images
        self.image_count = 0
        self.annotation_count = 0
        self._zip: zipfile.ZipFile | None = None

    @property
    def zip(self) -> zipfile.ZipFile:
        if self._zip is None:
            # Entries are written one after another as they come; only the directory
            # (a few hundred bytes per entry) stays in memory until close.
            self._zip = zipfile.ZipFile(self.workdir / "export.zip", "w", allowZip64=True)
        return self._zip

    def add(self, frame: ExportFrame, boxes: list[tuple], *, split: str | None, image_name: str) -> None:
        self.image_count += 1
        self.annotation_count += len(boxes)
        self.write_frame(frame, boxes, split)
        if self.include_images:
            self.add_image(self.image_path(frame, split), image_name)

    def add_image(self, arcname: str, image_name: str) -> None:
        """Copy a stored frame image into the zip as it is (JPEG: stored, not compressed again)."""
        with default_storage.open(image_name, "rb") as source, self.zip.open(
            zipfile.ZipInfo(arcname, date_time=_zip_time()), "w", force_zip64=True
        ) as target:
            shutil.copyfileobj(source, target, 1 << 20)

    def add_text(self, arcname: str, text: str) -> None:
        self.zip.writestr(zipfile.ZipInfo(arcname, date_time=_zip_time()), text, compress_type=zipfile.ZIP_DEFLATED)

    def add_file(self, arcname: str, path: Path) -> None:
        self.zip.write(path, arcname, compress_type=zipfile.ZIP_DEFLATED)

    def finish(self) -> WrittenExport:
        self.write_rest()
        self.zip.close()
        return self.written(self.workdir / "export.zip")

    def written(self, path: Path) -> WrittenExport:
        return WrittenExport(path, self.suffix, self.content_type, self.image_count, self.annotation_count)

    def write_frame(self, frame: ExportFrame, boxes: list[tuple], split: str | None) -> None:
        raise NotImplementedError

    def image_path(self, frame: ExportFrame, split: str | None) -> str:
        raise NotImplementedError

    def write_rest(self) -> None:
        """What comes after the last frame (class lists, split lists, the JSON files)."""


def _zip_time() -> tuple[int, int, int, int, int, int]:
    return datetime.now(UTC).timetuple()[:6]


class CocoFiles(ExportFiles):
    """COCO: ``instances.json`` alone, or in a zip as ``annotations/instances_<split>.json``
    beside ``images/<file_name>``.

    Each part's images and annotations arrays are streamed into their own files and joined
    at the end, so that the file reads images first, as people expect, from one pass.
    """

    def __init__(self, workdir: Path, **options):
        super().__init__(workdir, **options)
        self.category_ids = {name: number for number, name in enumerate(self.ordered_names, start=1)}
        self.category_of_label = {label_id: self.category_ids[name] for label_id, name in self.label_names.items()}
        self.parts = {}
        for part in (TRAIN, VAL) if self.split else ("default",):
            images = (workdir / f"{part}.images.json").open("w", encoding="utf-8", buffering=1 << 20)
            annotations = (workdir / f"{part}.annotations.json").open("w", encoding="utf-8", buffering=1 << 20)
            self.parts[part] = (JsonArrayWriter(images), JsonArrayWriter(annotations))
        if not self.split and not self.include_images:
            self.suffix, self.content_type = ".json", JSON

    def write_frame(self, frame: ExportFrame, boxes: list[tuple], split: str | None) -> None:
        images, annotations = self.parts[split or "default"]
        images.add(formats.coco_image_json(frame))
        category_of_label = self.category_of_label
        for box in boxes:
            annotations.add(formats.coco_annotation_json(box[1], frame.frame_id, category_of_label[box[2]], box[3:]))

    def image_path(self, frame: ExportFrame, split: str | None) -> str:
        return f"images/{frame.file_name}"

    def finish(self) -> WrittenExport:
        info = {
            "description": "Exported from Labeller",
            "version": "1.0",
            "date_created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        categories = formats.coco_categories(self.ordered_names)
        documents = {}
        for part, (images, annotations) in self.parts.items():
            images.close()
            annotations.close()
            images.stream.close()
            annotations.stream.close()
            document = self.workdir / f"instances_{part}.json"
            with document.open("w", encoding="utf-8", buffering=1 << 20) as out:
                out.write(formats.coco_document_head(info))
                _append(out, self.workdir / f"{part}.images.json")
                out.write(formats.coco_document_middle())
                _append(out, self.workdir / f"{part}.annotations.json")
                out.write(formats.coco_document_tail(categories))
            documents[part] = document
        if self.suffix == ".json":
            return self.written(documents["default"])
        for part, document in documents.items():
            self.add_file(f"annotations/instances_{part}.json", document)
        self.zip.close()
        return self.written(self.workdir / "export.zip")


def _append(out, path: Path) -> None:
    with path.open("r", encoding="utf-8") as part:
        shutil.copyfileobj(part, out, 1 << 20)
    path.unlink()


class YoloFiles(ExportFiles):
    """YOLO (Ultralytics): ``images/[split/]<file_name>`` beside ``labels/[split/]<name>.txt``,
    ``classes.txt`` (line N names class N) and ``data.yaml``."""

    def __init__(self, workdir: Path, **options):
        super().__init__(workdir, **options)
        position = {name: number for number, name in enumerate(self.ordered_names)}
        self.class_index = {label_id: position[name] for label_id, name in self.label_names.items()}

    def write_frame(self, frame: ExportFrame, boxes: list[tuple], split: str | None) -> None:
        folder = f"labels/{split}/" if split else "labels/"
        stem = str(Path(frame.file_name).with_suffix(""))
        self.add_text(f"{folder}{stem}.txt", formats.yolo_label_text(frame, boxes, self.class_index))

    def image_path(self, frame: ExportFrame, split: str | None) -> str:
        return f"images/{split}/{frame.file_name}" if split else f"images/{frame.file_name}"

    def write_rest(self) -> None:
        self.add_text("classes.txt", "".join(f"{name}\n" for name in self.ordered_names))
        self.add_text("data.yaml", formats.yolo_data_yaml(self.ordered_names, split=self.split))


class VocFiles(ExportFiles):
    """Pascal VOC: ``Annotations/<name>.xml``, ``JPEGImages/<file_name>``, and with a split
    ``ImageSets/Main/train.txt`` and ``val.txt``."""

    def __init__(self, workdir: Path, **options):
        super().__init__(workdir, **options)
        self.split_lists = {}
        if self.split:
            self.split_lists = {part: (workdir / f"{part}.txt").open("w", encoding="utf-8") for part in (TRAIN, VAL)}

    def write_frame(self, frame: ExportFrame, boxes: list[tuple], split: str | None) -> None:
        stem = formats.flat_stem(frame.file_name)
        self.add_text(f"Annotations/{stem}.xml", formats.voc_xml(frame, boxes, self.label_names))
        if split:
            self.split_lists[split].write(stem + "\n")

    def image_path(self, frame: ExportFrame, split: str | None) -> str:
        return f"JPEGImages/{frame.file_name}"

    def write_rest(self) -> None:
        for part, handle in self.split_lists.items():
            handle.close()
            self.add_file(f"ImageSets/Main/{part}.txt", self.workdir / f"{part}.txt")
