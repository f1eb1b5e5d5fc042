"""Exports: what they select, valid COCO (pycocotools), the learning loop's split, the
round trip through the importers, YOLO and VOC, and the job's life (claim, heartbeat, beat)."""

import contextlib
import io
import json
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from labeller.annotations.imports import DatasetFormat, dataset_import_archive
from labeller.annotations.models import AnnotationStatus
from labeller.annotations.services import label_create
from labeller.exports import services
from labeller.exports.models import DatasetExport, ExportFormat, ExportState
from labeller.exports.services import ExportRequest, export_run, export_start
from labeller.media.models import FrameStatus
from labeller.training.runs import VALIDATION_SHARE, split_salt
from labeller.training.runs import frame_split as training_split
from tests.factories import AnnotationFactory, FrameFactory, ProjectFactory, ShotFactory, VideoFactory


@pytest.fixture
def scene(tenant):
    """Two videos (one with two shots), a still image, a taxonomy tree, and boxes of every status."""
    project = tenant.project
    labels = {name: label_create(project=project, name=name) for name in ("food.dish.dessert", "food.drink", "vehicle")}
    labels = {label.name: label for label in project.labels.all()}  # with the ancestors food, food.dish
    video_a, video_b = VideoFactory(project=project), VideoFactory(project=project)
    shot_a1, shot_a2 = ShotFactory(video=video_a, index=0), ShotFactory(video=video_a, index=1)
    shot_b = ShotFactory(video=video_b, index=0)
    frames = {
        "a1": FrameFactory(project=project, video=video_a, shot=shot_a1, index=3, status=FrameStatus.COMPLETE),
        "a2": FrameFactory(project=project, video=video_a, shot=shot_a2, index=40),
        "b": FrameFactory(project=project, video=video_b, shot=shot_b, index=7, status=FrameStatus.COMPLETE),
        "still": FrameFactory(project=project, original_name="kitchen/table.jpg", index=0),
        "empty complete": FrameFactory(
            project=project, video=video_b, shot=shot_b, index=9, status=FrameStatus.COMPLETE
        ),
        "empty open": FrameFactory(project=project, video=video_b, shot=shot_b, index=10),
    }

    def box(frame, label, corners, status=AnnotationStatus.CONFIRMED):
        x1, y1, x2, y2 = corners
        return AnnotationFactory(frame=frames[frame], label=labels[label], x1=x1, y1=y1, x2=x2, y2=y2, status=status)

    boxes = {
        "dessert a1": box("a1", "food.dish.dessert", (4.0, 5.0, 20.5, 30.25)),
        "drink a1": box("a1", "food.drink", (0.0, 0.0, 64.0, 48.0)),
        "vehicle a2": box("a2", "vehicle", (10.1, 10.2, 30.3, 40.4)),
        "dessert b": box("b", "food.dish.dessert", (1.0, 2.0, 3.0, 4.0)),
        "still": box("still", "vehicle", (8.0, 8.0, 16.0, 24.0)),
        "proposed a2": box("a2", "food.drink", (5.0, 5.0, 9.0, 9.0), AnnotationStatus.PROPOSED),
        "rejected a1": box("a1", "vehicle", (30.0, 30.0, 40.0, 40.0), AnnotationStatus.REJECTED),
    }
    return type("Scene", (), {"tenant": tenant, "project": project, "labels": labels, "frames": frames, "boxes": boxes,
                              "videos": (video_a, video_b), "shots": (shot_a1, shot_a2, shot_b)})


def run(project, actor=None, **options) -> DatasetExport:
    export = export_start(project=project, actor=actor, request=ExportRequest(**options))
    export_run(export_id=export.pk)
    export.refresh_from_db()
    assert export.state == ExportState.DONE, export.error
    return export


def stored_bytes(export) -> bytes:
    with default_storage.open(export.file, "rb") as handle:
        return handle.read()


def coco_of(export) -> dict:
    return json.loads(stored_bytes(export))


def zip_of(export) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(stored_bytes(export)))


def test_a_project_exports_as_valid_coco(scene):
    export = run(scene.project, scene.tenant.admin)
    coco = coco_of(export)
    assert export.content_type == "application/json" and export.file.endswith(".json")
    assert (export.image_count, export.annotation_count) == (6, 5)

    images = {image["file_name"]: image for image in coco["images"]}
    a1, b = scene.frames["a1"], scene.frames["b"]
    # Every frame of the selection, with boxes or not.
    assert set(images) == {
        f"videos/{a1.video_id}/000003.jpg",
        f"videos/{a1.video_id}/000040.jpg",
        f"videos/{b.video_id}/000007.jpg",
        f"videos/{b.video_id}/000009.jpg",
        f"videos/{b.video_id}/000010.jpg",
        "kitchen/table.jpg",
    }
    assert images[f"videos/{a1.video_id}/000003.jpg"] == {
        "id": a1.pk, "file_name": f"videos/{a1.video_id}/000003.jpg", "width": 64, "height": 48,
        "video_id": a1.video_id, "frame_index": 3,
    }
    assert images["kitchen/table.jpg"]["video_id"] is None and images["kitchen/table.jpg"]["frame_index"] is None

    categories = {category["id"]: category for category in coco["categories"]}
    assert [(c["name"], c["supercategory"]) for c in coco["categories"]] == [
        ("food", "food"), ("dish", "food"), ("dessert", "food.dish"), ("drink", "food"), ("vehicle", "vehicle"),
    ]
    dessert = next(a for a in coco["annotations"] if a["id"] == scene.boxes["dessert a1"].pk)
    assert dessert == {
        "id": scene.boxes["dessert a1"].pk, "image_id": a1.pk, "category_id": 3,
        "bbox": [4.0, 5.0, 16.5, 25.25], "area": 416.625, "iscrowd": 0,
    }
    assert categories[dessert["category_id"]]["name"] == "dessert"
    exported_ids = {a["id"] for a in coco["annotations"]}
    assert scene.boxes["proposed a2"].pk not in exported_ids and scene.boxes["rejected a1"].pk not in exported_ids


def test_pycocotools_loads_the_export_and_scores_the_truth_perfectly(scene, tmp_path):
    path = tmp_path / "instances.json"
    path.write_bytes(stored_bytes(run(scene.project)))
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(path))
        detections = truth.loadRes(
            [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0}
             for a in truth.dataset["annotations"]]
        )
        evaluation = COCOeval(truth, detections, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert len(truth.getImgIds()) == 6 and len(truth.getAnnIds()) == 5
    assert evaluation.stats[1] == pytest.approx(1.0)  # AP at IoU 0.5


def exported_box_ids(export) -> set[int]:
    return {a["id"] for a in coco_of(export)["annotations"]}


@pytest.mark.parametrize(
    "case",
    ["video", "shot", "label subtree", "complete frames", "proposals too", "video or shot"],
)
def test_a_selection_exports_only_what_it_names(scene, case):
    b = scene.boxes
    video_a, video_b = scene.videos
    shot_a1, _, shot_b = scene.shots
    options, expected = {
        "video": ({"video_ids": [video_a.pk]}, {"dessert a1", "drink a1", "vehicle a2"}),
        "shot": ({"shot_ids": [shot_a1.pk]}, {"dessert a1", "drink a1"}),
        "label subtree": ({"label_ids": [scene.labels["food.dish"].pk]}, {"dessert a1", "dessert b"}),
        "complete frames": ({"complete_frames_only": True}, {"dessert a1", "drink a1", "dessert b"}),
        "proposals too": (
            {"confirmed_only": False},
            {"dessert a1", "drink a1", "vehicle a2", "dessert b", "still", "proposed a2"},
        ),
        "video or shot": (
            {"video_ids": [video_b.pk], "shot_ids": [shot_a1.pk]}, {"dessert a1", "drink a1", "dessert b"}
        ),
    }[case]
    export = run(scene.project, **options)
    assert exported_box_ids(export) == {b[name].pk for name in expected}
    if case == "label subtree":
        names = [c["name"] for c in coco_of(export)["categories"]]
        assert names == ["dish", "dessert"]


def test_ids_of_another_project_are_refused_by_field(scene, other_tenant):
    foreign_video = VideoFactory(project=other_tenant.project)
    with pytest.raises(Exception) as refused:
        export_start(project=scene.project, actor=None, request=ExportRequest(video_ids=[foreign_video.pk]))
    assert refused.value.extra["errors"] == {"video_ids": [f"not videos of this project: [{foreign_video.pk}]"]}
    assert not DatasetExport.objects.exists()


def test_the_split_is_the_learning_loops(scene):
    export = run(scene.project, val_share=VALIDATION_SHARE)
    assert export.split_salt == split_salt(scene.project.pk)
    archive = zip_of(export)
    assert sorted(archive.namelist()) == ["annotations/instances_train.json", "annotations/instances_val.json"]
    parts = {part: json.loads(archive.read(f"annotations/instances_{part}.json")) for part in ("train", "val")}
    for part, coco in parts.items():
        expected = "validation" if part == "val" else "train"
        # The very function training runs use to split the project's frames.
        assert all(training_split(project_id=scene.project.pk, frame_id=i["id"]) == expected for i in coco["images"])
        image_ids = {i["id"] for i in coco["images"]}
        assert all(a["image_id"] in image_ids for a in coco["annotations"])
        assert coco["categories"] == parts["train"]["categories"]
    assert sum(len(c["images"]) for c in parts.values()) == 6
    assert sum(len(c["annotations"]) for c in parts.values()) == 5


def canonical(coco: dict, *, provenance: bool = True) -> dict:
    """The content of a COCO file without its ids (database ids differ between projects)."""
    names = {image["id"]: image["file_name"] for image in coco["images"]}
    categories = {c["id"]: (c["supercategory"], c["name"]) for c in coco["categories"]}
    fields = ("file_name", "width", "height") + (("video_id", "frame_index") if provenance else ())
    return {
        "images": sorted(tuple(image[field] for field in fields) for image in coco["images"]),
        "annotations": sorted(
            (names[a["image_id"]], categories[a["category_id"]], a["bbox"], a["area"], a["iscrowd"])
            for a in coco["annotations"]
        ),
        "categories": coco["categories"],
    }


def import_zip(export, project, tmp_path, dataset_format=DatasetFormat.COCO, actor=None):
    path = tmp_path / f"export-{export.pk}.zip"
    path.write_bytes(stored_bytes(export))
    return dataset_import_archive(
        project=project, actor=actor, archive=path, archive_name=path.name, dataset_format=dataset_format
    )


def test_export_import_export_gives_the_same_content(scene, tmp_path):
    first = run(scene.project, include_images=True)
    assert {"annotations/instances_default.json", "images/kitchen/table.jpg"} <= set(zip_of(first).namelist())
    second_project = ProjectFactory(organization=scene.project.organization)
    report = import_zip(first, second_project, tmp_path)
    assert (report.images, report.boxes, report.errors) == (6, 5, ())
    second = run(second_project, include_images=True)
    third_project = ProjectFactory(organization=scene.project.organization)
    import_zip(second, third_project, tmp_path)
    third = run(third_project, include_images=True)

    contents = [
        json.loads(zip_of(export).read("annotations/instances_default.json")) for export in (first, second, third)
    ]
    # Imported images become still images: where a video frame came from is not carried over.
    assert canonical(contents[0], provenance=False) == canonical(contents[1], provenance=False)
    assert all(image["video_id"] is None for image in contents[1]["images"])
    assert canonical(contents[1]) == canonical(contents[2])


@pytest.mark.parametrize("dataset_format", [ExportFormat.YOLO, ExportFormat.VOC])
def test_yolo_and_voc_exports_import_back_with_the_same_boxes(scene, tmp_path, dataset_format):
    export = run(scene.project, format=dataset_format, include_images=True)
    again = ProjectFactory(organization=scene.project.organization)
    report = import_zip(export, again, tmp_path, DatasetFormat(dataset_format))
    assert report.errors == ()
    assert (report.images, report.boxes) == (6, 5)
    original = sorted(
        (round(b.x1, 3), round(b.y1, 3), round(b.x2, 3), round(b.y2, 3)) for name, b in scene.boxes.items()
        if b.status == AnnotationStatus.CONFIRMED
    )
    imported = sorted((round(b.x1, 3), round(b.y1, 3), round(b.x2, 3), round(b.y2, 3)) for b in again.annotations.all())
    assert imported == pytest.approx(original, abs=1e-3)


def test_a_larger_validation_share_moves_frames_from_train_to_validation_only(scene):
    def validation_ids(share):
        archive = zip_of(run(scene.project, val_share=share))
        return {image["id"] for image in json.loads(archive.read("annotations/instances_val.json"))["images"]}

    assert validation_ids(0.2) <= validation_ids(0.6) <= validation_ids(1.0)
    assert validation_ids(1.0) == {frame.pk for frame in scene.frames.values()}


def test_yolo_split_layout(scene):
    names = set(zip_of(run(scene.project, format=ExportFormat.YOLO, val_share=0.5)).namelist())
    assert {"classes.txt", "data.yaml"} <= names
    assert all(name.startswith(("labels/train/", "labels/val/")) for name in names - {"classes.txt", "data.yaml"})


def test_running_an_export_twice_or_a_missing_one_does_nothing(scene):
    export = run(scene.project)
    file_name, finished = export.file, export.finished_at
    export_run(export_id=export.pk)
    export_run(export_id=10**9)
    export.refresh_from_db()
    assert (export.file, export.finished_at, export.state) == (file_name, finished, ExportState.DONE)


def test_beat_fails_an_export_whose_worker_went_silent(scene):
    export = export_start(project=scene.project, actor=None, request=ExportRequest())
    long_ago = timezone.now() - timedelta(minutes=10)
    DatasetExport.objects.filter(pk=export.pk).update(
        state=ExportState.RUNNING, started_at=long_ago, heartbeat_at=long_ago
    )
    alive = export_start(project=scene.project, actor=None, request=ExportRequest())
    DatasetExport.objects.filter(pk=alive.pk).update(state=ExportState.RUNNING, heartbeat_at=timezone.now())

    assert services.exports_fail_stalled(silent_for=timedelta(minutes=5)) == [export.pk]
    export.refresh_from_db()
    alive.refresh_from_db()
    assert export.state == ExportState.FAILED and "worker went silent for over 5 minutes" in export.error
    assert alive.state == ExportState.RUNNING


def test_a_worker_whose_export_was_failed_meanwhile_stops_and_stores_nothing(scene, monkeypatch):
    export = export_start(project=scene.project, actor=None, request=ExportRequest())
    original = services._heartbeat

    def beat_fails_it_first(export_id, percent):
        DatasetExport.objects.filter(pk=export_id).update(state=ExportState.FAILED, error="silent")
        original(export_id, percent)

    monkeypatch.setattr("labeller.exports.writing.PROGRESS_EVERY_S", 0.0)
    monkeypatch.setattr(services, "_heartbeat", beat_fails_it_first)
    for index in range(500):  # progress is reported every 500 frames
        FrameFactory(project=scene.project, status=FrameStatus.COMPLETE, original_name=f"extra/{index}.jpg")
    export_run(export_id=export.pk)
    export.refresh_from_db()
    assert (export.state, export.error, export.file) == (ExportState.FAILED, "silent", "")


def test_an_error_fails_the_export_with_its_reason(scene, monkeypatch):
    def broken(**_):
        raise OSError("disk full")

    monkeypatch.setattr(services, "export_file_write", broken)
    export = export_start(project=scene.project, actor=None, request=ExportRequest())
    export_run(export_id=export.pk)
    export.refresh_from_db()
    assert (export.state, export.error) == (ExportState.FAILED, "The export failed: disk full")


def test_beat_resends_queued_exports_whose_message_was_lost(scene):
    export = export_start(project=scene.project, actor=None, request=ExportRequest())
    assert services.exports_overdue(waited=timedelta(minutes=10)) == []
    DatasetExport.objects.filter(pk=export.pk).update(enqueued_at=timezone.now() - timedelta(minutes=11))
    assert services.exports_overdue(waited=timedelta(minutes=10)) == [export.pk]
    assert services.exports_overdue(waited=timedelta(minutes=10)) == []  # marked as sent again


def test_the_file_lives_under_the_project_so_deleting_the_project_removes_it(scene):
    export = run(scene.project)
    assert export.file.startswith(f"orgs/{scene.project.organization_id}/projects/{scene.project.pk}/exports/")
    assert Path(default_storage.path(export.file)).is_file()
