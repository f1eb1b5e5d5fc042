"""Dataset import (COCO, Pascal VOC, YOLO) through the API, with the real BCCD and COCO128 sets."""

import io
import json
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from labeller.annotations import imports
from labeller.annotations.importers import ExportAnnotation, ExportImage, export_coco
from labeller.annotations.models import Annotation, AnnotationAction, AnnotationEvent, Label
from labeller.annotations.services import annotation_snapshot, label_create
from labeller.media.models import Frame
from tests.conftest import api_path, client_for, make_tenant
from tests.factories import AnnotationFactory, FrameFactory, ProjectFactory, jpeg_bytes
from tests.labeller.media.test_images import damaged_zip, rotated_jpeg
from tests.import_jobs import as_report, run_import
from tests.pipeline import stored_files

pytestmark = pytest.mark.django_db

REPO_ROOT = Path(__file__).resolve().parents[3]
DATA_DIR = REPO_ROOT.parent / "shared" / "data"
BCCD_DIR = DATA_DIR / "bccd-voc" / "BCCD"
COCO128_DIR = DATA_DIR / "coco128-yolo"
BCCD_SAMPLE = ["BloodImage_00000", "BloodImage_00001", "BloodImage_00003", "BloodImage_00338"]


def zip_of(members: dict[str, Path | bytes]) -> bytes:
    """Stored, not deflated: the JPEGs would not shrink and the tests stay fast."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, content in members.items():
            archive.writestr(name, content.read_bytes() if isinstance(content, Path) else content)
    return buffer.getvalue()


def tree(folder: Path, prefix: str) -> dict[str, Path]:
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    return {f"{prefix}{path.relative_to(folder).as_posix()}": path for path in files}


def bccd_sample(layout: str = "voc") -> dict[str, Path]:
    members = {}
    for stem in BCCD_SAMPLE:
        if layout == "voc":
            members[f"BCCD/Annotations/{stem}.xml"] = BCCD_DIR / "Annotations" / f"{stem}.xml"
            members[f"BCCD/JPEGImages/{stem}.jpg"] = BCCD_DIR / "JPEGImages" / f"{stem}.jpg"
        else:  # everything in one folder
            members[f"export/{stem}.xml"] = BCCD_DIR / "Annotations" / f"{stem}.xml"
            members[f"export/{stem}.jpg"] = BCCD_DIR / "JPEGImages" / f"{stem}.jpg"
    return members


def post_import(tenant, archive: bytes, dataset_format: str, role: str = "admin", project=None):
    project = project or tenant.project
    return tenant.client(role).post(
        api_path(tenant, f"projects/{project.pk}/imports/"),
        {"format": dataset_format, "archive": SimpleUploadedFile("dataset.zip", archive)},
        format="multipart",
    )


def import_report(tenant, archive: bytes, dataset_format: str, project=None) -> dict:
    """Import through the API: 202 and a queued import, which the bulk worker's task then runs."""
    response = post_import(tenant, archive, dataset_format, project=project)
    assert response.status_code == 202, response.content
    assert response.json()["state"] == "queued"
    return as_report(run_import(tenant.client("admin"), response.json()))


def state() -> tuple:
    return (
        Frame.objects.count(),
        Annotation.objects.count(),
        AnnotationEvent.objects.count(),
        sorted(Label.objects.values_list("project_id", "name")),
        stored_files(),
    )


def label_counts(project) -> Counter:
    return Counter(Annotation.objects.filter(project=project).values_list("label__name", flat=True))


def coco_document(images, annotations, categories) -> bytes:
    return json.dumps({"images": images, "annotations": annotations, "categories": categories}).encode()


# --- the real data sets ---------------------------------------------------------------


def test_bccd_voc_imports_every_image_and_box_with_history(tenant):
    report = import_report(tenant, zip_of(tree(BCCD_DIR, "BCCD/")), "voc")

    assert report == {"images": 364, "boxes": 4888, "labels_created": 3, "errors": [], "warnings": []}
    frames = Frame.objects.filter(project=tenant.project)
    assert frames.count() == 364
    assert set(frames.values_list("video", "is_keyframe", "width", "height")) == {(None, True, 640, 480)}
    assert frames.filter(original_name="BloodImage_00338.jpg").count() == 1
    labels = Label.objects.filter(project=tenant.project)
    assert sorted(labels.values_list("name", flat=True)) == ["platelets", "rbc", "wbc"]
    assert label_counts(tenant.project) == {"rbc": 4155, "wbc": 372, "platelets": 361}
    annotations = Annotation.objects.filter(project=tenant.project)
    assert set(annotations.values_list("status", "source", "author")) == {("confirmed", "import", tenant.admin.pk)}
    # VOC's 1-based inclusive pixel 504,337 is our 0-based box [503, 336, 504, 337].
    assert annotations.filter(frame__original_name="BloodImage_00338.jpg", x1=503, y1=336, x2=504, y2=337).exists()
    events = AnnotationEvent.objects.filter(project=tenant.project)
    assert events.count() == 4888
    assert set(events.values_list("action", "actor", "before")) == {(AnnotationAction.CREATED, tenant.admin.pk, None)}
    sample = annotations.order_by("?").first()
    assert events.get(annotation_id=sample.pk).after == annotation_snapshot(sample)


def test_coco128_yolo_imports_128_images_929_boxes_and_reports_the_orphan_labels(tenant):
    archive = zip_of(
        {
            **tree(COCO128_DIR / "images", "coco128/images/"),
            **tree(COCO128_DIR / "labels", "coco128/labels/"),
            "coco128/classes.txt": COCO128_DIR / "classes.txt",
        }
    )

    report = import_report(tenant, archive, "yolo")

    assert (report["images"], report["boxes"], report["labels_created"]) == (128, 929, 80)
    assert report["errors"] == [
        {"record": f"train2017/{stem}.txt", "message": "label file has no matching image; not imported"}
        for stem in ("000000000656", "000000000659")
    ]
    assert Frame.objects.filter(project=tenant.project).count() == 128
    assert Frame.objects.filter(project=tenant.project, annotations=None).count() == 2  # background images
    assert Annotation.objects.filter(project=tenant.project).count() == 929
    assert AnnotationEvent.objects.filter(project=tenant.project, action=AnnotationAction.CREATED).count() == 929
    assert Label.objects.filter(project=tenant.project).count() == 80
    assert label_counts(tenant.project)["person"] == 254
    assert Label.objects.filter(project=tenant.project, name="teddy_bear").exists()


# --- layouts --------------------------------------------------------------------------


def test_voc_files_in_one_flat_folder_are_found(tenant):
    report = import_report(tenant, zip_of(bccd_sample(layout="flat")), "voc")

    assert report["images"] == 4 and report["errors"] == []


def test_coco_images_are_found_in_a_sub_folder_and_supercategories_become_parents(tenant):
    members = {
        "set/annotations/instances.json": coco_document(
            images=[{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
            annotations=[{"id": 7, "image_id": 1, "category_id": 3, "bbox": [4, 5, 10, 20]}],
            categories=[{"id": 3, "name": "Sports Car", "supercategory": "Vehicle"}],
        ),
        "set/images/a.jpg": jpeg_bytes(64, 48),
    }

    report = import_report(tenant, zip_of(members), "coco")

    assert report["labels_created"] == 2
    annotation = Annotation.objects.get(project=tenant.project)
    assert (annotation.label.name, annotation.x1, annotation.y1, annotation.x2, annotation.y2) == (
        "vehicle.sports_car", 4, 5, 14, 25,
    )
    assert Label.objects.filter(project=tenant.project, name="vehicle").exists()


def test_coco_round_trip_gives_the_same_boxes(tenant):
    source = ProjectFactory(organization=tenant.organization)
    labels = {name: label_create(project=source, name=name) for name in ("vehicle.car", "animal.dog", "person")}
    frames = [FrameFactory(project=source, original_name=name, width=64, height=48) for name in ("a.jpg", "b.jpg")]
    boxes = [
        (frames[0], "vehicle.car", (1.5, 2, 30, 40)),
        (frames[0], "person", (0, 0, 64, 48)),
        (frames[1], "animal.dog", (10, 10, 11, 11)),
    ]
    annotations = [
        AnnotationFactory(frame=frame, label=labels[name], x1=x1, y1=y1, x2=x2, y2=y2)
        for frame, name, (x1, y1, x2, y2) in boxes
    ]
    document = export_coco(
        [ExportImage(frame.pk, frame.original_name, frame.width, frame.height) for frame in frames],
        [ExportAnnotation(a.pk, a.frame_id, a.label.name, (a.x1, a.y1, a.x2, a.y2)) for a in annotations],
        sorted(labels),
    )
    members = {"export/instances.json": json.dumps(document).encode()}
    members.update({f"export/images/{frame.original_name}": frame.image.read() for frame in frames})

    report = import_report(tenant, zip_of(members), "coco")

    assert report["labels_created"] == 5  # animal, animal.dog, person, vehicle, vehicle.car

    def boxes_of(project):
        fields = ("frame__original_name", "label__name", "x1", "y1", "x2", "y2")
        return sorted(Annotation.objects.filter(project=project).values_list(*fields))

    assert boxes_of(tenant.project) == boxes_of(source)


def test_an_exif_rotated_image_is_stored_the_way_its_boxes_were_drawn(tenant):
    # Stored 60x20, shown 20x60. YOLO sizes by the displayed image; this COCO file by the stored one.
    members = {
        "yolo/images/p.jpg": rotated_jpeg(),
        "yolo/labels/p.txt": b"0 0.5 0.5 0.5 0.5\n",
        "yolo/classes.txt": b"thing\n",
    }
    import_report(tenant, zip_of(members), "yolo")
    upright = Annotation.objects.get(project=tenant.project)
    assert (upright.frame.width, upright.frame.height) == (20, 60)
    assert (upright.x1, upright.y1, upright.x2, upright.y2) == (5, 15, 15, 45)

    other = ProjectFactory(organization=tenant.organization)
    coco = coco_document(
        images=[{"id": 1, "file_name": "p.jpg", "width": 60, "height": 20}],
        annotations=[{"id": 1, "image_id": 1, "category_id": 1, "bbox": [40, 0, 20, 20]}],
        categories=[{"id": 1, "name": "thing"}],
    )
    report = import_report(tenant, zip_of({"c.json": coco, "p.jpg": rotated_jpeg()}), "coco", project=other)
    assert report["warnings"] == [
        {"record": "p.jpg", "message": "boxes fit the image before its EXIF rotation; stored unrotated"}
    ]
    frame = Frame.objects.get(project=other)
    assert (frame.width, frame.height) == (60, 20)
    with frame.image.open("rb") as handle:
        assert Image.open(handle).size == (60, 20)


def test_the_learning_loop_is_told_once_per_import(tenant, monkeypatch):
    calls = []
    monkeypatch.setattr(imports, "learning_after_annotation_change", lambda **kwargs: calls.append(kwargs))

    report = import_report(tenant, zip_of(bccd_sample()), "voc")

    assert report["boxes"] > 1
    assert calls == [{"project_id": tenant.project.pk}]


# --- records with problems --------------------------------------------------------------


def test_a_zero_area_box_is_reported_and_the_rest_imported(tenant):
    coco = coco_document(
        images=[{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
        annotations=[
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 10, 10]},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [20, 20, 0, 5]},
            {"id": 3, "image_id": 1, "category_id": 1, "bbox": [30, 30, 5, 5]},
        ],
        categories=[{"id": 1, "name": "cell"}],
    )

    report = import_report(tenant, zip_of({"a.json": coco, "a.jpg": jpeg_bytes(64, 48)}), "coco")

    assert (report["images"], report["boxes"]) == (1, 2)
    assert report["errors"] == [
        {"record": "annotation id 2", "message": "box [20, 20, 20, 25] has zero or negative area"}
    ]
    assert sorted(Annotation.objects.values_list("x1", flat=True)) == [4, 30]
    assert AnnotationEvent.objects.count() == 2


def test_a_non_finite_image_size_is_reported_and_the_rest_imported(tenant):
    coco = json.dumps(
        {
            "images": [
                {"id": 1, "file_name": "a.jpg", "width": float("nan"), "height": 48},
                {"id": 2, "file_name": "b.jpg", "width": 64, "height": float("inf")},
                {"id": 3, "file_name": "c.jpg", "width": 64, "height": 48},
            ],
            "annotations": [{"id": 1, "image_id": 3, "category_id": 1, "bbox": [4, 4, 10, 10]}],
            "categories": [{"id": 1, "name": "cell"}],
        }
    ).encode()  # json.dumps writes NaN and Infinity, as many exporters do
    members = {"a.json": coco, "a.jpg": jpeg_bytes(64, 48), "b.jpg": jpeg_bytes(64, 48), "c.jpg": jpeg_bytes(64, 48)}

    report = import_report(tenant, zip_of(members), "coco")

    assert (report["images"], report["boxes"]) == (1, 1)
    assert [error["record"] for error in report["errors"]] == ["image id 1", "image id 2"]
    assert "'width' must be a positive whole number, got nan" in report["errors"][0]["message"]


def test_a_category_that_cannot_be_a_label_is_reported_and_the_rest_imported(tenant):
    long_name = "x" * 250
    coco = coco_document(
        images=[{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
        annotations=[
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 10, 10]},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [20, 20, 5, 5]},
        ],
        categories=[{"id": 1, "name": "cell"}, {"id": 2, "name": long_name}],
    )

    report = import_report(tenant, zip_of({"a.json": coco, "a.jpg": jpeg_bytes(64, 48)}), "coco")

    assert (report["boxes"], report["labels_created"]) == (1, 1)
    [error] = report["errors"]
    assert error["record"] == f"category {long_name!r}" and "at most 200 characters" in error["message"]
    assert list(Annotation.objects.values_list("label__name", flat=True)) == ["cell"]


def test_an_unreadable_image_is_reported_and_the_rest_imported(tenant):
    members = bccd_sample()
    whole = (BCCD_DIR / "JPEGImages" / "BloodImage_00001.jpg").read_bytes()
    members["BCCD/JPEGImages/BloodImage_00001.jpg"] = whole[:3000]

    report = import_report(tenant, zip_of(members), "voc")

    assert report["images"] == 3
    assert report["errors"] == [
        {"record": "BloodImage_00001.jpg", "message": "not imported: The image is damaged or incomplete."}
    ]
    assert not Frame.objects.filter(original_name="BloodImage_00001.jpg").exists()


def test_existing_labels_are_reused_and_deprecated_ones_refuse_their_boxes(tenant):
    rbc = label_create(project=tenant.project, name="rbc")
    platelets = label_create(project=tenant.project, name="platelets")
    platelets.deprecated = True
    platelets.save()

    report = import_report(tenant, zip_of(bccd_sample()), "voc")

    assert report["labels_created"] == 1  # wbc
    assert report["errors"] == [
        {
            "record": "category 'platelets'",
            "message": "its label is deprecated in this project; its boxes were not imported",
        }
    ]
    assert Annotation.objects.filter(label=rbc).exists()
    assert not Annotation.objects.filter(label=platelets).exists()
    assert report["boxes"] == Annotation.objects.count()


# --- refused uploads: nothing is imported -------------------------------------------------


def broken_voc() -> bytes:
    members = bccd_sample()
    members["BCCD/Annotations/BloodImage_00001.xml"] = b"<annotation><object>"
    return zip_of(members)


def voc_with_entities() -> bytes:
    members = bccd_sample()
    members["BCCD/Annotations/BloodImage_00001.xml"] = b'<!DOCTYPE a [<!ENTITY x "xx">]><annotation>&x;</annotation>'
    return zip_of(members)


REFUSED_AT_ONCE = {"traversal", "not-a-zip"}  # the central directory tells; the rest needs the worker


@pytest.mark.parametrize(
    "archive,dataset_format,code,message",
    [
        pytest.param(
            zip_of({"a.json": b"{not json", "a.jpg": jpeg_bytes()}), "coco", "invalid_dataset", "not a valid JSON file",
            id="coco-bad-json",
        ),
        pytest.param(
            zip_of({"a.json": b'{"images": {}}'}), "coco", "invalid_dataset", "needs a list under 'images'",
            id="coco-no-list",
        ),
        pytest.param(
            zip_of({"a.json": b"{}", "b.json": b"{}"}), "coco", "invalid_dataset", "exactly one .json file",
            id="coco-two-files",
        ),
        pytest.param(
            broken_voc(), "voc", "invalid_dataset", "BloodImage_00001.xml: not well-formed XML", id="voc-broken-xml"
        ),
        pytest.param(
            voc_with_entities(), "voc", "invalid_dataset", "DOCTYPE and entity declarations", id="voc-entities"
        ),
        pytest.param(zip_of(bccd_sample()), "yolo", "invalid_dataset", "images/ and labels/", id="voc-sent-as-yolo"),
        pytest.param(
            zip_of({"images/a.jpg": jpeg_bytes(), "labels/a.txt": b"0 0.5 0.5 0.1 0.1\n", "classes.txt": b"\n"}),
            "yolo", "invalid_dataset", "classes.txt: no class names", id="yolo-empty-classes",
        ),
        pytest.param(zip_of({"../a.json": b"{}"}), "coco", "unsafe_archive", "'..' are not allowed", id="traversal"),
        pytest.param(b"not a zip at all", "coco", "invalid_dataset", "not a readable zip archive", id="not-a-zip"),
        pytest.param(
            damaged_zip("a.json", b'{"images": []}' * 10), "coco", "invalid_dataset", "'a.json' is damaged",
            id="bad-crc",
        ),
    ],
)
def test_a_malformed_dataset_or_unsafe_archive_imports_nothing(request, tenant, archive, dataset_format, code, message):
    before = state()

    response = post_import(tenant, archive, dataset_format)

    if request.node.callspec.id in REFUSED_AT_ONCE:
        assert response.status_code == 400, response.content
        assert response.json()["code"] == code
        assert response.json()["detail"].startswith("dataset.zip: ") and message in response.json()["detail"]
    else:
        assert response.status_code == 202, response.content
        status = run_import(tenant.client("admin"), response.json())
        assert (status["state"], status["error_code"]) == ("failed", code), status
        assert status["error"].startswith("dataset.zip: ") and message in status["error"]
        assert status["frames_created"] == status["boxes_created"] == 0
    assert state() == before  # no frame, box or label, and no stored file (the archive is gone too)


def test_a_zip_bomb_is_refused(tenant):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.json", b" " * 5_000_000)
    before = state()

    response = post_import(tenant, buffer.getvalue(), "coco")

    assert response.status_code == 400 and response.json()["code"] == "unsafe_archive"
    assert "expands" in response.json()["detail"]
    assert state() == before


def test_an_unknown_format_is_refused(tenant):
    response = post_import(tenant, zip_of(bccd_sample()), "labelme")

    assert response.status_code == 400
    assert "format" in response.json()
    assert not Frame.objects.exists()


# --- tenancy and roles ----------------------------------------------------------------------


def test_another_organisations_admin_gets_404_and_nothing_changes(tenant):
    intruder = make_tenant("intruder")
    before = state()

    for org in ("acme", "intruder"):
        response = client_for(intruder.admin).post(
            f"/api/v1/orgs/{org}/projects/{tenant.project.pk}/imports/",
            {"format": "voc", "archive": SimpleUploadedFile("d.zip", zip_of(bccd_sample()))},
            format="multipart",
        )
        assert response.status_code == 404

    assert state() == before


@pytest.mark.parametrize("role", ["reviewer", "annotator"])
def test_only_admins_import(tenant, role):
    before = state()

    response = post_import(tenant, zip_of(bccd_sample()), "voc", role=role)

    assert response.status_code == 403
    assert state() == before
