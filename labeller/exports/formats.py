"""Dataset formats written a record at a time: COCO JSON, YOLO txt, Pascal VOC XML.

Plain Python, no Django. Boxes arrive as ``(x1, y1, x2, y2)`` floats in pixels (0-based,
exclusive far edges, as ``labeller.annotations.importers.types`` reads them back), so each
writer is the inverse of its importer. Coordinates are rounded to a thousandth of a pixel:
an export imported and exported again then gives the same numbers (without rounding,
``x + (x2 - x)`` need not equal ``x2`` in floating point).

Nothing here holds more than one frame's boxes: the callers stream rows in and the text
out, so memory stays flat however large the project.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TextIO
from xml.sax.saxutils import escape

from labeller.annotations.importers.types import parent_name

COORDINATE_DECIMALS = 3
YOLO_DECIMALS = 6


@dataclass(frozen=True)
class ExportFrame:
    """A frame as exported: ``frame_id`` is the COCO image id; ``video_id`` and
    ``frame_index`` say where it came from (``None`` for a still image)."""

    frame_id: int
    file_name: str
    width: int
    height: int
    video_id: int | None
    frame_index: int | None


# (frame id, annotation id, label id, x1, y1, x2, y2), as ``labeller.exports.selectors.BOX_FIELDS``
BoxRow = tuple[int, int, int, float, float, float, float]


def coco_categories(label_names: Sequence[str]) -> list[dict]:
    """COCO categories for dotted label names, ids 1.. in the given order.

    The name is the last level and ``supercategory`` the taxonomy parent
    (``food.dish.dessert`` -> ``dessert`` under ``food.dish``); a top-level label is its own
    supercategory, as COCO does for ``person``. The COCO importer reads them back to the same
    dotted names (as ``importers.coco.export_coco`` writes them).
    """
    return [
        {"id": number, "name": name.rsplit(".", 1)[-1], "supercategory": parent_name(name) or name}
        for number, name in enumerate(label_names, start=1)
    ]


def coco_image_json(frame: ExportFrame) -> str:
    return json.dumps(
        {
            "id": frame.frame_id,
            "file_name": frame.file_name,
            "width": frame.width,
            "height": frame.height,
            "video_id": frame.video_id,
            "frame_index": frame.frame_index,
        },
        separators=(",", ":"),
    )


def coco_annotation_json(annotation_id: int, image_id: int, category_id: int, box: Sequence[float]) -> str:
    """One annotation: ``bbox`` is ``[x, y, width, height]`` in pixels, ``area`` its size."""
    x1, y1, x2, y2 = box
    x, y = round(x1, COORDINATE_DECIMALS), round(y1, COORDINATE_DECIMALS)
    width, height = round(x2 - x1, COORDINATE_DECIMALS), round(y2 - y1, COORDINATE_DECIMALS)
    area = round(width * height, COORDINATE_DECIMALS)
    return (
        f'{{"id":{annotation_id},"image_id":{image_id},"category_id":{category_id},'
        f'"bbox":[{x!r},{y!r},{width!r},{height!r}],"area":{area!r},"iscrowd":0}}'
    )


class JsonArrayWriter:
    """Writes ``[item,item,...]`` to ``stream`` one pre-serialised item at a time."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.count = 0
        stream.write("[")

    def add(self, item_json: str) -> None:
        self.stream.write("," + item_json if self.count else item_json)
        self.count += 1

    def close(self) -> None:
        self.stream.write("]")


def coco_document_head(info: dict) -> str:
    """The start of a COCO file up to the ``images`` array, which the caller streams next."""
    return '{"info":' + json.dumps(info) + ',"licenses":[],"images":'


def coco_document_middle() -> str:
    return ',"annotations":'


def coco_document_tail(categories: list[dict]) -> str:
    return ',"categories":' + json.dumps(categories, separators=(",", ":")) + "}"


def yolo_label_text(frame: ExportFrame, boxes: Sequence[BoxRow], class_index: dict[int, int]) -> str:
    """A YOLO label file: ``class cx cy w h`` per box, normalised by the frame's size."""
    lines = []
    for _, _, label_id, x1, y1, x2, y2 in boxes:
        cx = (x1 + x2) / 2 / frame.width
        cy = (y1 + y2) / 2 / frame.height
        width = (x2 - x1) / frame.width
        height = (y2 - y1) / frame.height
        values = " ".join(f"{value:.{YOLO_DECIMALS}f}" for value in (cx, cy, width, height))
        lines.append(f"{class_index[label_id]} {values}\n")
    return "".join(lines)


def yolo_data_yaml(label_names: Sequence[str], *, split: bool) -> str:
    """Ultralytics' dataset file; class names are quoted, so dotted names stay strings."""
    train, val = ("images/train", "images/val") if split else ("images", "images")
    names = "".join(f"  {number}: {json.dumps(name)}\n" for number, name in enumerate(label_names))
    return f"path: .\ntrain: {train}\nval: {val}\nnames:\n{names}"


def voc_xml(frame: ExportFrame, boxes: Sequence[BoxRow], label_names: dict[int, str]) -> str:
    """A Pascal VOC annotation: 1-based inclusive corners, so ``xmin = x1 + 1, xmax = x2``."""
    objects = []
    for _, _, label_id, x1, y1, x2, y2 in boxes:
        corners = (x1 + 1, y1 + 1, x2, y2)
        xmin, ymin, xmax, ymax = (repr(round(value, COORDINATE_DECIMALS)) for value in corners)
        objects.append(
            f"  <object>\n    <name>{escape(label_names[label_id])}</name>\n    <pose>Unspecified</pose>\n"
            f"    <truncated>0</truncated>\n    <difficult>0</difficult>\n"
            f"    <bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>\n"
            "  </object>\n"
        )
    return (
        "<annotation>\n"
        f"  <folder>JPEGImages</folder>\n  <filename>{escape(frame.file_name)}</filename>\n"
        f"  <size><width>{frame.width}</width><height>{frame.height}</height><depth>3</depth></size>\n"
        "  <segmented>0</segmented>\n" + "".join(objects) + "</annotation>\n"
    )


def flat_stem(file_name: str) -> str:
    """One file name for a frame's label or XML file: VOC reads ``Annotations/*.xml`` from one
    folder, so ``videos/3/000012.jpg`` becomes ``videos__3__000012``."""
    return str(PurePosixPath(file_name).with_suffix("")).replace("/", "__")
