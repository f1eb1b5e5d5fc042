import os

import numpy as np
import pytest
import torch
from torchvision.ops.misc import FrozenBatchNorm2d

from proposals.boxes import iou_matrix
from proposals.regions import propose_regions
from proposals.training import detector_models
from proposals.training.data import TrainingFrame
from proposals.training.detector import (DetectorTrainingOptions, TrainedDetector, evaluate, load_detector,
                                         save_detector, train_detector)
from proposals.training.detector_models import (DetectorConfig, WeightsUnavailableError, backbone_stages,
                                                build_network)
from tests.proposals.training.stills import training_stills

CLASSES = ("food.fruit.apple", "food.dish.dessert")
LABEL_IDS = {"food.fruit.apple": 11, "food.dish.dessert": 42}
CONFIG = DetectorConfig(max_side=128)
QUICK = DetectorTrainingOptions(epochs=2, batch_size=4, learning_rate=3e-3, scale_jitter=(1.0, 1.0))


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """Eight 128x96 stills, two objects each (red discs and checkered squares), all complete."""
    return training_stills(tmp_path_factory.mktemp("stills"), 8, label_ids=LABEL_IDS, seed=3, width=128, height=96,
                           objects_per_image=2)


@pytest.fixture(scope="module")
def trained(frames):
    options = DetectorTrainingOptions(epochs=25, batch_size=4, learning_rate=4e-3, scale_jitter=(0.9, 1.1))
    return train_detector(frames, CONFIG, options, device="cpu")


def test_training_lowers_the_loss_and_learns_the_frames(trained, frames):
    losses = [epoch.losses["total"] for epoch in trained.epochs]
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3])
    assert trained.trained_frames == 8 and trained.frozen == []  # random init: nothing frozen
    assert trained.detector.is_random
    scores = evaluate(trained.detector, frames)
    assert scores.map50 > 0.3, scores


def test_trained_model_is_a_regions_detector(trained, frames):
    detector = trained.detector
    boxes, scores, labels = detector(frames[0].image)
    assert boxes.dtype == np.float32 and boxes.shape[1:] == (4,)
    assert scores.dtype == np.float32 and labels.dtype == np.int64
    assert len(boxes) == len(scores) == len(labels) > 0
    assert set(labels.tolist()) <= set(LABEL_IDS.values())
    assert np.all(np.diff(scores) <= 0)  # best first
    best = iou_matrix(frames[0].boxes, boxes[scores >= 0.3]).max(axis=1)
    assert (best >= 0.5).any()  # found at least one of its training objects
    proposals = propose_regions(frames[0].image, detector=detector, top_k=5)
    assert any(proposal.source == "detector" for proposal in proposals)


def test_checkpoint_round_trip_is_exact_and_atomic(trained, frames, tmp_path):
    path = save_detector(trained.detector, tmp_path / "detector.pt", map50=0.5)
    assert os.listdir(tmp_path) == ["detector.pt"]
    loaded = load_detector(path, device="cpu")
    assert loaded.label_ids.tolist() == sorted(LABEL_IDS.values())
    for expected, got in zip(trained.detector(frames[1].image), loaded(frames[1].image)):
        np.testing.assert_allclose(expected, got, atol=1e-5)
    assert torch.load(path, weights_only=True)["metadata"] == {"map50": 0.5}


def test_fine_tuning_carries_class_rows_by_label_id(trained, frames, tmp_path):
    path = save_detector(trained.detector, tmp_path / "detector.pt")
    relabelled = [TrainingFrame(f.frame_id, f.image, f.boxes, np.where(f.label_ids == 42, 7, f.label_ids), True)
                  for f in frames[:4]]
    no_steps = DetectorTrainingOptions(epochs=0)
    result = train_detector(relabelled, DetectorConfig(max_side=128, weights=str(path)), no_steps, device="cpu")
    assert result.detector.label_ids.tolist() == [7, 11, 42]  # 42 kept from the checkpoint, 7 new
    old_rows = trained.detector.model.head.classification_head.cls_logits.weight  # rows: 11, 42
    new_rows = result.detector.model.head.classification_head.cls_logits.weight  # rows: 7, 11, 42
    assert torch.equal(new_rows[1], old_rows[0]) and torch.equal(new_rows[2], old_rows[1])
    assert not torch.equal(new_rows[0], old_rows[0])  # label 7 starts fresh


def test_fine_tuning_with_scarce_data_freezes_the_early_layers(trained, frames, tmp_path):
    path = save_detector(trained.detector, tmp_path / "detector.pt")
    result = train_detector(frames[:4], DetectorConfig(max_side=128, weights=str(path)), QUICK, device="cpu")
    assert result.frozen == ["stem", "stage1"]  # scarce data: everything up to stride 8
    body, before = result.detector.model.backbone.body, trained.detector.model.backbone.body
    assert torch.equal(body.stem[0][0].weight, before.stem[0][0].weight)
    assert torch.equal(body.stage1[0].conv1.weight, before.stage1[0].conv1.weight)
    assert not torch.equal(body.stage2[0].conv1.weight, before.stage2[0].conv1.weight)
    assert result.detector.is_random  # its lineage started from random init: still no pretrained features


def test_plentiful_data_freezes_only_the_stem(trained, frames, tmp_path):
    path = save_detector(trained.detector, tmp_path / "detector.pt")
    options = DetectorTrainingOptions(epochs=1, scarce_frames=4, scale_jitter=(1.0, 1.0))
    result = train_detector(frames[:4], DetectorConfig(max_side=128, weights=str(path)), options, device="cpu")
    assert result.frozen == ["stem"]


def test_incomplete_frames_do_not_train_the_detector(frames):
    mixed = [TrainingFrame(f.frame_id, f.image, f.boxes, f.label_ids, complete=(i < 3)) for i, f in enumerate(frames)]
    result = train_detector(mixed, CONFIG, QUICK, device="cpu")
    assert result.trained_frames == 3 and result.skipped_incomplete_frames == 5
    with pytest.raises(ValueError, match="complete"):
        train_detector([f for f in mixed if not f.complete], CONFIG, QUICK, device="cpu")


def test_training_is_deterministic_with_a_seed(frames):
    first = train_detector(frames[:4], CONFIG, QUICK, device="cpu")
    second = train_detector(frames[:4], CONFIG, QUICK, device="cpu")
    assert [e.losses for e in first.epochs] == [e.losses for e in second.epochs]
    other_seed = train_detector(frames[:4], CONFIG, DetectorTrainingOptions(**{**QUICK.__dict__, "seed": 1}),
                                device="cpu")
    assert [e.losses for e in other_seed.epochs] != [e.losses for e in first.epochs]


def test_missing_pretrained_weights_fall_back_to_random_init_and_say_so(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(detector_models.torchvision.models.detection, "fcos_resnet50_fpn", offline)
    config = DetectorConfig(backbone="resnet50", weights="coco", max_side=64)
    with pytest.raises(WeightsUnavailableError):
        build_network(config, 3)
    model, description, is_random = build_network(config, 3, fallback_to_random=True)
    assert is_random and "unavailable" in description
    assert model.head.classification_head.num_classes == 3


def test_coco_weights_keep_the_network_and_replace_the_class_logits(monkeypatch):
    original = detector_models.torchvision.models.detection.fcos_resnet50_fpn

    def coco_without_download(*, weights, **kwargs):
        assert str(weights).endswith("COCO_V1")
        return original(weights=None, weights_backbone=None, num_classes=91, **kwargs)

    monkeypatch.setattr(detector_models.torchvision.models.detection, "fcos_resnet50_fpn", coco_without_download)
    model, description, is_random = build_network(DetectorConfig(backbone="resnet50", weights="coco", max_side=64), 3)
    assert not is_random and "coco" in description
    head = model.head.classification_head
    assert head.num_classes == 3 and head.cls_logits.out_channels == 3


def test_a_resnet_from_pretrained_weights_round_trips_with_its_frozen_batch_norm(frames, tmp_path):
    # What weights="imagenet" builds, without downloading: FrozenBatchNorm2d in the backbone.
    config = DetectorConfig(backbone="resnet18", max_side=64)
    model, _, _ = build_network(config, 2, frozen_batch_norm=True)
    path = save_detector(TrainedDetector(model, [11, 42], config, weights_description="test", is_random=False),
                         tmp_path / "detector.pt")
    loaded = load_detector(path, device="cpu")
    assert isinstance(loaded.model.backbone.body.bn1, FrozenBatchNorm2d)
    result = train_detector(frames[:2], DetectorConfig(backbone="resnet18", max_side=64, weights=str(path)),
                            DetectorTrainingOptions(epochs=1, scale_jitter=(1.0, 1.0)), device="cpu")
    assert isinstance(result.detector.model.backbone.body.bn1, FrozenBatchNorm2d)
    assert result.frozen == ["conv1+bn1", "layer1", "layer2"]  # pretrained, scarce data: up to stride 8


def test_resnet_backbone_stages_for_freezing():
    model, _, _ = build_network(DetectorConfig(backbone="resnet18", max_side=64), 2)
    assert [stride for stride, _ in backbone_stages(model)] == [4, 4, 8, 16, 32]


@pytest.mark.parametrize("config", [
    pytest.param(dict(backbone="tiny", weights="imagenet"), id="tiny-has-no-imagenet"),
    pytest.param(dict(backbone="resnet18", weights="coco"), id="coco-only-for-resnet50"),
])
def test_impossible_weight_choices_are_refused(config):
    with pytest.raises(ValueError):
        DetectorConfig(**config)
