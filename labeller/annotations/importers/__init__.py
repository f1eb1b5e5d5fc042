"""Dataset import parsers and export helpers: plain Python, no Django.

Parsers turn COCO, Pascal VOC and YOLO datasets into frozen records
(``ImportedDataset``) that the annotations service writes to the database;
``iter_zip_images`` reads uploaded image archives safely.
"""

from .archive import UnsafeArchiveError, check_zip, iter_zip_images
from .coco import export_coco, parse_coco
from .types import (
    DatasetFormatError,
    ExportAnnotation,
    ExportImage,
    ImportedBox,
    ImportedCategory,
    ImportedDataset,
    ImportedImage,
    RecordError,
    taxonomy_name,
)
from .voc import parse_voc_dir, parse_voc_xml
from .yolo import parse_yolo_dir

__all__ = [
    "DatasetFormatError",
    "ExportAnnotation",
    "ExportImage",
    "ImportedBox",
    "ImportedCategory",
    "ImportedDataset",
    "ImportedImage",
    "RecordError",
    "UnsafeArchiveError",
    "check_zip",
    "export_coco",
    "iter_zip_images",
    "parse_coco",
    "parse_voc_dir",
    "parse_voc_xml",
    "parse_yolo_dir",
    "taxonomy_name",
]
