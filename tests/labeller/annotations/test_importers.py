"""Dataset importers (COCO, Pascal VOC, YOLO) and the COCO exporter: no database."""

import json
from collections import Counter
from copy import deepcopy
from pathlib import Path

import pytest
from PIL import Image
from pycocotools.coco import COCO

from labeller.annotations.importers import (
    DatasetFormatError,
    ExportAnnotation,
    ExportImage,
    ImportedCategory,
    export_coco,
    parse_coco,
    parse_voc_dir,
    parse_voc_xml,
    parse_yolo_dir,
    taxonomy_name,
)

DATA_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data"
BCCD_DIR = DATA_DIR / "bccd-voc" / "BCCD"
COCO128_DIR = DATA_DIR / "coco128-yolo"


def _write_image(path: Path, width: int, height: int, *, exif_orientation: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    if exif_orientation is not None:
        exif[0x0112] = exif_orientation
    Image.new("RGB", (width, height), "gray").save(path, exif=exif)
    return path


def _messages(dataset) -> list[str]:
    return [f"{error.record}: {error.message}" for error in dataset.errors]


def _all_boxes(dataset) -> list[tuple[str, tuple[float, float, float, float]]]:
    return [(box.category, box.box) for image in dataset.images for box in image.boxes]


# --- real data sets ---------------------------------------------------------------


def test_bccd_voc_imports_every_image_and_box():
    dataset = parse_voc_dir(BCCD_DIR / "Annotations", BCCD_DIR / "JPEGImages")

    assert len(dataset.images) == 364
    assert dataset.box_count == 4888
    assert Counter(category for category, _ in _all_boxes(dataset)) == {"rbc": 4155, "wbc": 372, "platelets": 361}
    assert dataset.categories == (
        ImportedCategory("platelets", None),
        ImportedCategory("rbc", None),
        ImportedCategory("wbc", None),
    )
    assert dataset.errors == () and dataset.warnings == ()
    assert all(image.path is not None and image.path.is_file() for image in dataset.images)
    assert {(image.width, image.height) for image in dataset.images} == {(640, 480)}


def test_bccd_degenerate_looking_boxes_import_as_single_pixels():
    # BloodImage_00338.xml has xmin == xmax == 504, ymin == ymax == 337: one inclusive VOC pixel.
    dataset = parse_voc_xml(BCCD_DIR / "Annotations" / "BloodImage_00338.xml")

    assert ("rbc", (503.0, 336.0, 504.0, 337.0)) in _all_boxes(dataset)


def test_coco128_yolo_imports_128_images_and_929_boxes():
    dataset = parse_yolo_dir(
        COCO128_DIR / "images" / "train2017", COCO128_DIR / "labels" / "train2017", COCO128_DIR / "classes.txt"
    )

    assert len(dataset.images) == 128
    assert dataset.box_count == 929
    assert sorted(image.file_name for image in dataset.images if not image.boxes) == [
        "000000000250.jpg",
        "000000000508.jpg",
    ]
    assert sorted(error.record for error in dataset.errors) == ["000000000656.txt", "000000000659.txt"]
    assert len(dataset.categories) == 80
    assert Counter(category for category, _ in _all_boxes(dataset))["person"] == 254
    assert "teddy_bear" in {category.name for category in dataset.categories}


# --- taxonomy names ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "supercategory", "expected"),
    [
        pytest.param("Car", "Vehicle", "vehicle.car", id="lowercased-parent"),
        pytest.param("person", "person", "person", id="own-supercategory-is-top-level"),
        pytest.param("teddy bear", None, "teddy_bear", id="spaces"),
        pytest.param("U.S. flag", "", "u_s_flag", id="dots-in-name-are-not-levels"),
        pytest.param("Café", "none", "cafe", id="accents-and-roboflow-none"),
        pytest.param("car", "things.vehicle", "things.vehicle.car", id="dotted-supercategory-keeps-levels"),
    ],
)
def test_taxonomy_name(category, supercategory, expected):
    assert taxonomy_name(category, supercategory) == expected


def test_taxonomy_name_refuses_a_name_without_letters_or_digits():
    with pytest.raises(ValueError, match="no letters or digits"):
        taxonomy_name("???", "animal")


# --- COCO -----------------------------------------------------------------------------

COCO_DOCUMENT = {
    "images": [
        {"id": 1, "file_name": "a.jpg", "width": 100, "height": 80},
        {"id": 2, "file_name": "b.jpg", "width": 50, "height": 50},
    ],
    "categories": [
        {"id": 1, "name": "car", "supercategory": "vehicle"},
        {"id": 2, "name": "person", "supercategory": "person"},
    ],
    "annotations": [
        {"id": 10, "image_id": 1, "category_id": 1, "bbox": [10, 20, 30, 40], "iscrowd": 0},
        {"id": 11, "image_id": 2, "category_id": 2, "bbox": [0, 0, 50, 50]},
    ],
}


def _coco_bytes(document: dict) -> bytes:
    return json.dumps(document).encode()


def test_parse_coco_converts_xywh_to_xyxy_and_supercategory_to_parent():
    dataset = parse_coco(_coco_bytes(COCO_DOCUMENT))

    assert dataset.errors == () and dataset.warnings == ()
    assert [(image.file_name, image.width, image.height, image.path) for image in dataset.images] == [
        ("a.jpg", 100, 80, None),
        ("b.jpg", 50, 50, None),
    ]
    assert _all_boxes(dataset) == [("vehicle.car", (10.0, 20.0, 40.0, 60.0)), ("person", (0.0, 0.0, 50.0, 50.0))]
    assert dataset.categories == (ImportedCategory("vehicle.car", "vehicle"), ImportedCategory("person", None))


def test_parse_coco_reads_a_file_path(tmp_path):
    json_path = tmp_path / "instances.json"
    json_path.write_bytes(_coco_bytes(COCO_DOCUMENT))

    assert parse_coco(json_path).box_count == 2


def _with_annotation(**changes) -> dict:
    document = deepcopy(COCO_DOCUMENT)
    document["annotations"][0].update(changes)
    return document


def _without_annotation_field(field: str) -> dict:
    document = deepcopy(COCO_DOCUMENT)
    del document["annotations"][0][field]
    return document


@pytest.mark.parametrize(
    ("document", "expected_error"),
    [
        pytest.param(
            _with_annotation(bbox=[10, 20, 0, 40]), "annotation id 10: box [10, 20, 10, 60] has zero", id="zero-width"
        ),
        pytest.param(
            _with_annotation(bbox=[10, 20, 30, -5]), "annotation id 10: box [10, 20, 40, 15] has zero", id="negative-height"
        ),
        pytest.param(
            _with_annotation(bbox=[80, 20, 30, 40]),
            "annotation id 10: box [80, 20, 110, 60] lies outside the 100x80 image by 10 px",
            id="outside-image",
        ),
        pytest.param(_with_annotation(bbox=[10, 20, 30]), "annotation id 10: 'bbox' must be a list", id="short-bbox"),
        pytest.param(_with_annotation(bbox=[10, "20", 30, 40]), "annotation id 10: 'bbox' must be a list", id="text-bbox"),
        pytest.param(_with_annotation(category_id=99), "annotation id 10: unknown category id 99", id="unknown-category"),
        pytest.param(_with_annotation(image_id=99), "annotation id 10: unknown image id 99", id="unknown-image"),
        pytest.param(_with_annotation(id=11), "annotation id 11: duplicate annotation id", id="duplicate-annotation-id"),
        pytest.param(_without_annotation_field("bbox"), "annotations[0]: missing field(s): bbox", id="missing-bbox"),
        pytest.param(
            _without_annotation_field("image_id"), "annotations[0]: missing field(s): image_id", id="missing-image-id"
        ),
    ],
)
def test_parse_coco_reports_a_bad_annotation_and_keeps_the_rest(document, expected_error):
    dataset = parse_coco(_coco_bytes(document))

    assert any(message.startswith(expected_error) for message in _messages(dataset)), _messages(dataset)
    assert len(dataset.images) == 2
    # The duplicate-id case rejects both annotations sharing the id.
    assert dataset.box_count == (0 if "duplicate" in expected_error else 1)


def test_parse_coco_clips_an_overshoot_under_one_pixel():
    dataset = parse_coco(_coco_bytes(_with_annotation(bbox=[-0.5, 0, 100.9, 80.4])))

    assert dataset.errors == ()
    assert _all_boxes(dataset)[0] == ("vehicle.car", (0.0, 0.0, 100.0, 80.0))


def test_parse_coco_skips_crowd_regions_with_a_warning():
    dataset = parse_coco(_coco_bytes(_with_annotation(iscrowd=1)))

    assert dataset.errors == ()
    assert dataset.box_count == 1
    assert [warning.record for warning in dataset.warnings] == ["annotation id 10"]


def test_parse_coco_rejects_every_image_sharing_an_id_and_their_annotations():
    document = deepcopy(COCO_DOCUMENT)
    document["images"][1]["id"] = 1

    dataset = parse_coco(_coco_bytes(document))

    assert dataset.images == ()
    assert sum("duplicate image id" in message for message in _messages(dataset)) == 2
    assert "annotation id 10: its image (id 1) was rejected" in _messages(dataset)
    assert "annotation id 11: unknown image id 2" in _messages(dataset)


def test_parse_coco_rejects_every_category_sharing_an_id():
    document = deepcopy(COCO_DOCUMENT)
    document["categories"][1]["id"] = 1

    dataset = parse_coco(_coco_bytes(document))

    assert dataset.categories == ()
    assert dataset.box_count == 0
    assert sum("duplicate category id" in message for message in _messages(dataset)) == 2


def test_parse_coco_rejects_an_id_shared_with_an_invalid_record():
    # The invalid twin still makes id 1 ambiguous, so the valid image must not claim it.
    document = deepcopy(COCO_DOCUMENT)
    document["images"].append({"id": 1, "file_name": "c.jpg"})
    document["categories"].append({"id": 2, "name": "???"})

    dataset = parse_coco(_coco_bytes(document))

    assert [image.file_name for image in dataset.images] == ["b.jpg"]
    assert dataset.box_count == 0
    assert "annotation id 10: its image (id 1) was rejected" in _messages(dataset)
    assert "annotation id 11: its category (id 2) was rejected" in _messages(dataset)


def test_parse_coco_reports_annotations_of_an_invalid_category_as_rejected():
    document = deepcopy(COCO_DOCUMENT)
    document["categories"][0]["name"] = 42

    dataset = parse_coco(_coco_bytes(document))

    assert "categories[0]: 'name' and 'supercategory' must be strings" in _messages(dataset)
    assert "annotation id 10: its category (id 1) was rejected" in _messages(dataset)


@pytest.mark.parametrize(
    ("image_changes", "message"),
    [
        pytest.param({"width": 0}, "'width' must be a positive whole number", id="zero-width"),
        pytest.param({"height": 12.5}, "'height' must be a positive whole number", id="fractional-height"),
        pytest.param({"file_name": "../../etc/passwd"}, "relative path without '..'", id="path-traversal"),
        pytest.param({"id": None}, "'id' must be an integer", id="null-id"),
        pytest.param({"width": float("nan")}, "'width' must be a positive whole number", id="nan-width"),
        pytest.param({"height": float("inf")}, "'height' must be a positive whole number", id="infinite-height"),
        pytest.param({"width": float("-inf")}, "'width' must be a positive whole number", id="minus-infinite-width"),
    ],
)
def test_parse_coco_reports_a_bad_image(image_changes, message):
    document = deepcopy(COCO_DOCUMENT)
    document["images"][0].update(image_changes)

    dataset = parse_coco(_coco_bytes(document))

    assert [image.file_name for image in dataset.images] == ["b.jpg"]
    assert any(message in text for text in _messages(dataset)), _messages(dataset)


@pytest.mark.parametrize(
    "raw_number",
    [pytest.param("NaN", id="nan"), pytest.param("Infinity", id="infinity"), pytest.param("1e999", id="overflow")],
)
def test_parse_coco_reports_non_finite_numbers_per_record(raw_number):
    document = _coco_bytes(COCO_DOCUMENT).replace(b'"width": 100', b'"width": ' + raw_number.encode())
    document = document.replace(b'"bbox": [0, 0, 50, 50]', b'"bbox": [0, 0, ' + raw_number.encode() + b", 50]")

    dataset = parse_coco(document)

    assert [(image.file_name, image.boxes) for image in dataset.images] == [("b.jpg", ())]
    assert "'width' must be a positive whole number" in _messages(dataset)[0]
    assert any(message.startswith("annotation id 11:") and "non-finite" in message for message in _messages(dataset))


def test_parse_coco_reports_an_image_missing_a_field():
    document = deepcopy(COCO_DOCUMENT)
    del document["images"][0]["width"]

    dataset = parse_coco(_coco_bytes(document))

    assert "images[0]: missing field(s): width" in _messages(dataset)


def test_parse_coco_merges_categories_that_normalise_to_one_label():
    document = deepcopy(COCO_DOCUMENT)
    document["categories"][1] = {"id": 2, "name": "Car", "supercategory": "Vehicle"}

    dataset = parse_coco(_coco_bytes(document))

    assert dataset.categories == (ImportedCategory("vehicle.car", "vehicle"),)
    assert {category for category, _ in _all_boxes(dataset)} == {"vehicle.car"}
    assert "merged" in dataset.warnings[0].message


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"{not json", id="invalid-json"),
        pytest.param(b"\xff\xfe\x00", id="not-utf8"),
        pytest.param(b"[]", id="top-level-list"),
        pytest.param(b'{"images": {}, "categories": []}', id="images-not-a-list"),
        pytest.param(b'{"images": []}', id="no-categories"),
        pytest.param(b'{"images": [], "categories": [], "annotations": 3}', id="annotations-not-a-list"),
    ],
)
def test_parse_coco_refuses_a_malformed_file(raw):
    with pytest.raises(DatasetFormatError):
        parse_coco(raw)


def test_parse_coco_checks_image_files_when_given_a_folder(tmp_path):
    _write_image(tmp_path / "a.jpg", 100, 80)
    _write_image(tmp_path / "b.jpg", 60, 50)

    dataset = parse_coco(_coco_bytes(COCO_DOCUMENT), images_dir=tmp_path)

    assert [image.path for image in dataset.images] == [tmp_path / "a.jpg"]
    assert "image id 2: declared size 50x50 does not match the image file (60x50)" in _messages(dataset)


def test_parse_coco_reports_a_missing_image_file(tmp_path):
    _write_image(tmp_path / "a.jpg", 100, 80)

    dataset = parse_coco(_coco_bytes(COCO_DOCUMENT), images_dir=tmp_path)

    assert [image.file_name for image in dataset.images] == ["a.jpg"]
    assert "image id 2: image file 'b.jpg' not found" in _messages(dataset)


def test_export_coco_round_trips_through_pycocotools_and_parse_coco(tmp_path):
    images = [ExportImage(id=7, file_name="frames/a.jpg", width=640, height=480), ExportImage(8, "b.jpg", 320, 240)]
    annotations = [
        ExportAnnotation(id=1, image_id=7, category="vehicle.car", box=(10.5, 20.25, 110.0, 220.75)),
        ExportAnnotation(id=2, image_id=7, category="person", box=(0.0, 0.0, 640.0, 480.0)),
        ExportAnnotation(id=3, image_id=8, category="things.vehicle.bike", box=(1.0, 2.0, 3.0, 4.0)),
    ]
    categories = ["person", "vehicle.car", "things.vehicle.bike"]

    document = export_coco(images, annotations, categories)
    json_path = tmp_path / "export.json"
    json_path.write_text(json.dumps(document))

    coco = COCO(str(json_path))
    assert sorted(coco.getImgIds()) == [7, 8]
    assert coco.loadAnns(1)[0]["bbox"] == pytest.approx([10.5, 20.25, 99.5, 200.5])
    assert coco.loadAnns(1)[0]["area"] == pytest.approx(99.5 * 200.5)
    assert coco.loadCats(coco.getCatIds(catNms=["car"]))[0]["supercategory"] == "vehicle"

    dataset = parse_coco(json_path)
    assert dataset.errors == () and dataset.warnings == ()
    assert [category.name for category in dataset.categories] == categories
    parsed = _all_boxes(dataset)
    assert [category for category, _ in parsed] == [annotation.category for annotation in annotations]
    for (_, box), annotation in zip(parsed, annotations, strict=True):
        assert box == pytest.approx(annotation.box)


@pytest.mark.parametrize(
    ("annotation", "categories", "message"),
    [
        pytest.param(ExportAnnotation(1, 7, "dog", (0, 0, 1, 1)), ["cat"], "unknown category", id="unknown-category"),
        pytest.param(ExportAnnotation(1, 99, "cat", (0, 0, 1, 1)), ["cat"], "unknown image", id="unknown-image"),
        pytest.param(
            ExportAnnotation(1, 7, "cat", (0, 0, 1, 1)), ["cat", "cat"], "duplicate category", id="duplicate-category"
        ),
    ],
)
def test_export_coco_refuses_inconsistent_input(annotation, categories, message):
    with pytest.raises(ValueError, match=message):
        export_coco([ExportImage(7, "a.jpg", 10, 10)], [annotation], categories)


# --- Pascal VOC -------------------------------------------------------------------------


VOC_SIZE_100_BY_80 = "<size><width>100</width><height>80</height></size>"


def _voc_xml(*objects: str, filename: str = "a.jpg", size: str = VOC_SIZE_100_BY_80) -> bytes:
    return f"<annotation><filename>{filename}</filename>{size}{''.join(objects)}</annotation>".encode()


def _voc_object(name: str = "Dog", xmin="1", ymin="1", xmax="10", ymax="20") -> str:
    values = {"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax}
    corners = "".join(f"<{tag}>{value}</{tag}>" for tag, value in values.items() if value is not None)
    return f"<object><name>{name}</name><bndbox>{corners}</bndbox></object>"


def test_parse_voc_xml_shifts_one_based_inclusive_corners():
    dataset = parse_voc_xml(_voc_xml(_voc_object(), _voc_object("Cat", "5", "6", "5", "6")))

    assert _all_boxes(dataset) == [("dog", (0.0, 0.0, 10.0, 20.0)), ("cat", (4.0, 5.0, 5.0, 6.0))]
    assert [(image.file_name, image.width, image.height) for image in dataset.images] == [("a.jpg", 100, 80)]
    assert [category.name for category in dataset.categories] == ["cat", "dog"]


def test_parse_voc_xml_clips_the_off_by_one_edges():
    dataset = parse_voc_xml(_voc_xml(_voc_object(xmin="0", ymin="0", xmax="101", ymax="81")))

    assert dataset.errors == ()
    assert _all_boxes(dataset) == [("dog", (0.0, 0.0, 100.0, 80.0))]


@pytest.mark.parametrize(
    ("voc_object", "message"),
    [
        pytest.param(_voc_object(xmin="10", xmax="9"), "zero or negative area", id="xmax-before-xmin"),
        pytest.param(_voc_object(xmax="150"), "outside the 100x80 image by 50", id="outside-image"),
        pytest.param(_voc_object(ymax=None), "missing <bndbox> field(s): ymax", id="missing-corner"),
        pytest.param(_voc_object(xmin="left"), "must be numbers", id="non-numeric-corner"),
        pytest.param(_voc_object(name="  "), "no letters or digits", id="blank-name"),
    ],
)
def test_parse_voc_xml_reports_a_bad_object_and_keeps_the_rest(voc_object, message):
    dataset = parse_voc_xml(_voc_xml(_voc_object("cat"), voc_object), source_name="a.xml")

    assert [error.record for error in dataset.errors] == ["a.xml object 2"]
    assert message in dataset.errors[0].message
    assert _all_boxes(dataset) == [("cat", (0.0, 0.0, 10.0, 20.0))]


def test_parse_voc_xml_reports_a_missing_size():
    dataset = parse_voc_xml(_voc_xml(_voc_object(), size=""), source_name="a.xml")

    assert dataset.images == ()
    assert _messages(dataset) == ["a.xml: missing or invalid <size> (positive <width> and <height>)"]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"<annotation><filename>a.jpg</annotation>", id="mismatched-tags"),
        pytest.param(b"", id="empty"),
        pytest.param(b"<root><filename>a.jpg</filename></root>", id="wrong-root"),
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
            b"<annotation><filename>&lol2;</filename></annotation>",
            id="billion-laughs",
        ),
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            b"<annotation><filename>&xxe;</filename></annotation>",
            id="external-entity",
        ),
    ],
)
def test_parse_voc_xml_refuses_a_malformed_or_unsafe_file(raw):
    with pytest.raises(DatasetFormatError):
        parse_voc_xml(raw)


def test_parse_voc_xml_names_the_doctype_as_the_reason():
    with pytest.raises(DatasetFormatError, match="DOCTYPE"):
        parse_voc_xml(b'<!DOCTYPE annotation [<!ENTITY x "y">]><annotation/>')


def _voc_dir(tmp_path: Path, files: dict[str, bytes]) -> tuple[Path, Path]:
    annotations_dir, images_dir = tmp_path / "Annotations", tmp_path / "JPEGImages"
    annotations_dir.mkdir()
    images_dir.mkdir(exist_ok=True)
    for name, content in files.items():
        (annotations_dir / name).write_bytes(content)
    return annotations_dir, images_dir


def test_parse_voc_dir_checks_each_file_against_its_image(tmp_path):
    _write_image(tmp_path / "JPEGImages" / "a.jpg", 100, 80)
    _write_image(tmp_path / "JPEGImages" / "b.jpg", 100, 80)
    _write_image(tmp_path / "JPEGImages" / "c.png", 30, 20)
    _write_image(tmp_path / "JPEGImages" / "unlabelled.jpg", 10, 10)
    annotations_dir, images_dir = _voc_dir(
        tmp_path,
        {
            "a.xml": _voc_xml(_voc_object()),
            "b.xml": _voc_xml(_voc_object(), filename="b.jpg", size=VOC_SIZE_100_BY_80.replace("100", "640")),
            "c.xml": _voc_xml(_voc_object(xmax="30"), filename="", size=""),
            "d.xml": _voc_xml(_voc_object(), filename="d.jpg"),
        },
    )

    dataset = parse_voc_dir(annotations_dir, images_dir)

    assert [(image.file_name, image.width, image.height, image.path) for image in dataset.images] == [
        ("a.jpg", 100, 80, images_dir / "a.jpg"),
        ("c.png", 30, 20, images_dir / "c.png"),
    ]
    assert _messages(dataset) == [
        "b.xml: <size> 640x80 does not match the image file (100x80)",
        "d.xml: image 'd.jpg' not found in the image folder",
    ]
    assert [warning.record for warning in dataset.warnings] == ["unlabelled.jpg"]


# --- YOLO -------------------------------------------------------------------------------


def _yolo_dir(tmp_path: Path, labels: dict[str, str], classes: str = "cat\nDog\n\n") -> tuple[Path, Path, Path]:
    images_dir, labels_dir = tmp_path / "images", tmp_path / "labels"
    labels_dir.mkdir(parents=True)
    for name, text in labels.items():
        (labels_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (labels_dir / name).write_text(text)
    classes_file = tmp_path / "classes.txt"
    classes_file.write_text(classes)
    return images_dir, labels_dir, classes_file


def test_parse_yolo_dir_converts_normalised_centres_to_pixels(tmp_path):
    images_dir, labels_dir, classes_file = _yolo_dir(
        tmp_path, {"sub/a.txt": "0 0.5 0.5 0.5 0.25\n1 0.25 0.75 0.5 0.5\n", "orphan.txt": "0 0.5 0.5 0.1 0.1\n"}
    )
    _write_image(images_dir / "sub" / "a.jpg", 200, 100)
    _write_image(images_dir / "background.png", 20, 10)
    (images_dir / "notes.md").write_text("not an image")

    dataset = parse_yolo_dir(images_dir, labels_dir, classes_file)

    assert [(image.file_name, image.width, image.height, len(image.boxes)) for image in dataset.images] == [
        ("background.png", 20, 10, 0),
        ("sub/a.jpg", 200, 100, 2),
    ]
    assert _all_boxes(dataset) == [("cat", (50.0, 37.5, 150.0, 62.5)), ("dog", (0.0, 50.0, 100.0, 100.0))]
    assert [category.name for category in dataset.categories] == ["cat", "dog"]
    assert _messages(dataset) == ["orphan.txt: label file has no matching image; not imported"]
    assert [warning.record for warning in dataset.warnings] == ["notes.md"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        pytest.param("0 0.5 0.5 0.5", "expected 5 fields", id="too-few-fields"),
        pytest.param("0 0.5 0.5 0.5 0.5 0.9", "expected 5 fields", id="too-many-fields"),
        pytest.param("0 0.5 half 0.5 0.5", "not all numbers", id="non-number"),
        pytest.param("0 0.5 0.5 nan 0.5", "must all lie in [0, 1]", id="nan"),
        pytest.param("0 1.5 0.5 0.2 0.2", "must all lie in [0, 1]", id="above-one"),
        pytest.param("0 0.5 -0.1 0.2 0.2", "must all lie in [0, 1]", id="negative"),
        pytest.param("0 0.5 0.5 0 0.2", "zero size", id="zero-width"),
        pytest.param("2 0.5 0.5 0.2 0.2", "unknown class id 2", id="unknown-class"),
        pytest.param("-1 0.5 0.5 0.2 0.2", "not a non-negative integer", id="negative-class"),
        pytest.param("0.0 0.5 0.5 0.2 0.2", "not a non-negative integer", id="fractional-class"),
        pytest.param("0 0.05 0.5 0.5 0.2", "outside the 200x100 image by 40", id="box-beyond-image"),
    ],
)
def test_parse_yolo_dir_reports_a_bad_line_and_keeps_the_rest(tmp_path, line, message):
    images_dir, labels_dir, classes_file = _yolo_dir(tmp_path, {"a.txt": f"1 0.5 0.5 0.5 0.5\n\n{line}\n"})
    _write_image(images_dir / "a.jpg", 200, 100)

    dataset = parse_yolo_dir(images_dir, labels_dir, classes_file)

    assert [error.record for error in dataset.errors] == ["a.txt:3"]
    assert message in dataset.errors[0].message
    assert _all_boxes(dataset) == [("dog", (50.0, 25.0, 150.0, 75.0))]


def test_parse_yolo_dir_uses_the_exif_rotated_size(tmp_path):
    images_dir, labels_dir, classes_file = _yolo_dir(tmp_path, {"a.txt": "0 0.5 0.5 1 1\n"})
    _write_image(images_dir / "a.jpg", 200, 100, exif_orientation=6)

    dataset = parse_yolo_dir(images_dir, labels_dir, classes_file)

    assert (dataset.images[0].width, dataset.images[0].height) == (100, 200)
    assert _all_boxes(dataset) == [("cat", (0.0, 0.0, 100.0, 200.0))]


def test_parse_yolo_dir_reports_an_unreadable_image(tmp_path):
    images_dir, labels_dir, classes_file = _yolo_dir(tmp_path, {})
    images_dir.mkdir()
    (images_dir / "broken.jpg").write_bytes(b"not a jpeg")

    dataset = parse_yolo_dir(images_dir, labels_dir, classes_file)

    assert dataset.images == ()
    assert [error.record for error in dataset.errors] == ["broken.jpg"]


@pytest.mark.parametrize(
    "classes",
    [
        pytest.param("", id="empty"),
        pytest.param("cat\n\ndog\n", id="blank-line-between-names"),
        pytest.param("cat\n???\n", id="name-without-letters"),
    ],
)
def test_parse_yolo_dir_refuses_an_unusable_classes_file(tmp_path, classes):
    images_dir, labels_dir, classes_file = _yolo_dir(tmp_path, {}, classes=classes)

    with pytest.raises(DatasetFormatError):
        parse_yolo_dir(images_dir, labels_dir, classes_file)


def test_parse_yolo_dir_refuses_a_missing_labels_folder(tmp_path):
    # Importing every image as background would silently drop all labels.
    _write_image(tmp_path / "images" / "a.jpg", 20, 10)
    (tmp_path / "classes.txt").write_text("cat\n")

    with pytest.raises(DatasetFormatError, match="'labels' not found"):
        parse_yolo_dir(tmp_path / "images", tmp_path / "labels", tmp_path / "classes.txt")


def test_parse_voc_dir_refuses_a_missing_folder(tmp_path):
    (tmp_path / "Annotations").mkdir()

    with pytest.raises(DatasetFormatError, match="'JPEGImages' not found"):
        parse_voc_dir(tmp_path / "Annotations", tmp_path / "JPEGImages")


def test_parse_yolo_dir_refuses_a_label_file_that_is_not_text(tmp_path):
    images_dir, labels_dir, classes_file = _yolo_dir(tmp_path, {})
    (labels_dir / "a.txt").write_bytes(b"\xff\xd8\xff\xe0 binary")
    _write_image(images_dir / "a.jpg", 20, 10)

    with pytest.raises(DatasetFormatError, match="not UTF-8"):
        parse_yolo_dir(images_dir, labels_dir, classes_file)
