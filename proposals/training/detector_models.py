"""The detector's network: torchvision's FCOS on a choice of backbones, and its weights.

Why FCOS. It is one stage and anchor-free: no RoI heads (Faster R-CNN's box head costs more
than a small backbone on CPU, ~13 MMAC per sampled RoI), no anchor shapes to tune per project,
and its head and FPN are plain convolutions with GroupNorm, which train from random
initialisation with batches of 4 (BatchNorm would need larger batches). It is in torchvision,
with COCO weights for the ResNet-50 version, so a real machine can start from COCO.

Why a ``tiny`` backbone by default. Here no pretrained weights can be downloaded and training
runs on 2 shared CPU cores, so the default is a small residual CNN with GroupNorm (stem to
stride 4, three stages to stride 8/16/32, ~1.9 M parameters) with a 64-channel FPN and a 2-conv
head, at 320 pixels on the long side. Measured on this machine (random init, four 320x192
frames a step): Faster R-CNN MobileNetV3-Large-320-FPN ~1.3 s a step, FCOS on MobileNetV3-Large
~2 s, the tiny FCOS ~0.15 s; from scratch the tiny one reaches mAP@0.5 0.87 on BCCD's test
split after 15 epochs of its train split (images at 320x240), and MobileNetV3 is known to need
long schedules from scratch (depthwise convolutions, BatchNorm with tiny batches).
With pretrained weights at hand, ``resnet18`` (ImageNet) or ``resnet50`` (ImageNet or COCO)
are the better start: more capacity, and features that need fewer confirmed boxes.

Weights (``DetectorConfig.weights``): ``"coco"`` (the whole FCOS ResNet-50 from COCO, only its
class logits replaced), ``"imagenet"`` (the backbone), ``"none"`` (seeded random init), or a
checkpoint path written by :func:`proposals.training.detector.save_detector`. When ``coco`` or
``imagenet`` cannot be loaded (no network, no cached file), :func:`build_detector` with
``fallback_to_random`` builds a random-init model and says so (``is_random``), as
``proposals.features`` does; the ``tiny`` backbone has no pretrained weights at all.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum

import torch
import torchvision
from torch import nn
from torchvision.models.detection import FCOS
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN, _resnet_fpn_extractor
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

RANDOM_INIT_SEED = 0


class DetectorBackbone(StrEnum):
    TINY = "tiny"
    RESNET18 = "resnet18"
    RESNET50 = "resnet50"


class DetectorWeights(StrEnum):
    COCO = "coco"
    IMAGENET = "imagenet"
    NONE = "none"


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be loaded (typically: no network and no cached file)."""


@dataclass(frozen=True)
class DetectorConfig:
    """What detector to build and how it sees images.

    ``weights``: ``"coco"`` (resnet50 only), ``"imagenet"`` (resnet backbones), ``"none"``, or
    a detector checkpoint path (its backbone must match). ``max_side``: images are resized so
    that their longer side is this many pixels (boxes are mapped back to the input's pixels).
    ``score_threshold``, ``nms_iou``, ``max_detections``: inference post-processing; a low
    threshold suits mAP, the proposal pipeline may raise it.
    """

    backbone: str = DetectorBackbone.TINY
    weights: str = DetectorWeights.NONE
    max_side: int = 320
    score_threshold: float = 0.05
    nms_iou: float = 0.6
    max_detections: int = 100

    def __post_init__(self) -> None:
        object.__setattr__(self, "backbone", DetectorBackbone(self.backbone))
        if self.weights == DetectorWeights.COCO and self.backbone != DetectorBackbone.RESNET50:
            raise ValueError("COCO weights exist only for the resnet50 FCOS")
        if self.weights == DetectorWeights.IMAGENET and self.backbone == DetectorBackbone.TINY:
            raise ValueError("the tiny backbone has no ImageNet weights; use weights='none'")
        if self.max_side < 32:
            raise ValueError(f"max_side {self.max_side} is too small")

    @property
    def from_checkpoint(self) -> bool:
        return self.weights not in tuple(DetectorWeights)


# --- the tiny backbone -------------------------------------------------------------------------


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels // 4), channels)


class _ResidualBlock(nn.Module):
    """Two 3x3 convolutions with GroupNorm and a (projected when needed) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.norm1 = _group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.norm2 = _group_norm(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          _group_norm(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(self.norm2(self.conv2(out)) + self.shortcut(x))


def _conv_norm_relu(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
                         _group_norm(out_channels), nn.ReLU(inplace=True))


TINY_WIDTHS = (32, 64, 128, 192)  # stem (stride 4), stage1 (8), stage2 (16), stage3 (32)
TINY_FPN_CHANNELS = 64


def tiny_body() -> nn.Sequential:
    """A small residual CNN: ``stem`` to stride 4, ``stage1``..``stage3`` to strides 8, 16, 32."""
    stem_width, *stage_widths = TINY_WIDTHS
    stages: OrderedDict[str, nn.Module] = OrderedDict(
        stem=nn.Sequential(_conv_norm_relu(3, stem_width // 2, 2), _conv_norm_relu(stem_width // 2, stem_width, 2)))
    previous = stem_width
    for number, width in enumerate(stage_widths, start=1):
        stages[f"stage{number}"] = nn.Sequential(_ResidualBlock(previous, width, 2), _ResidualBlock(width, width, 1))
        previous = width
    body = nn.Sequential(stages)
    for module in body.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return body


def _tiny_fcos(num_classes: int, config: DetectorConfig) -> FCOS:
    backbone = BackboneWithFPN(tiny_body(), return_layers={"stage1": "0", "stage2": "1", "stage3": "2"},
                               in_channels_list=list(TINY_WIDTHS[1:]), out_channels=TINY_FPN_CHANNELS,
                               extra_blocks=LastLevelMaxPool())
    # One anchor a location, its size the level's stride: FCOS uses it only to assign objects
    # to levels (max regression distance in [4, 8] x size; P3 takes everything below 64 px).
    anchors = AnchorGenerator(((8,), (16,), (32,), (64,)), ((1.0,),) * 4)
    head = torchvision.models.detection.fcos.FCOSHead(TINY_FPN_CHANNELS, 1, num_classes, num_convs=2)
    return FCOS(backbone, num_classes, anchor_generator=anchors, head=head, **_fcos_options(config))


def _fcos_options(config: DetectorConfig) -> dict:
    # min_size = max_size = max_side: the resize factor is max_side / longer side.
    return {"min_size": config.max_side, "max_size": config.max_side, "score_thresh": config.score_threshold,
            "nms_thresh": config.nms_iou, "detections_per_img": config.max_detections}


# --- resnet backbones --------------------------------------------------------------------------


def _resnet_fcos(num_classes: int, config: DetectorConfig, weights: str, frozen_batch_norm: bool = False) -> FCOS:
    if weights == DetectorWeights.COCO:
        coco = torchvision.models.detection.FCOS_ResNet50_FPN_Weights.COCO_V1
        model = torchvision.models.detection.fcos_resnet50_fpn(weights=coco, trainable_backbone_layers=5,
                                                                **_fcos_options(config))
        _replace_class_logits(model, num_classes)
        return model
    backbone_weights = None
    if weights == DetectorWeights.IMAGENET:
        backbone_weights = torchvision.models.get_model_weights(str(config.backbone)).DEFAULT
    # Pretrained statistics stay fixed (as torchvision does): batches of 4 would only blur them.
    frozen = backbone_weights is not None or frozen_batch_norm
    norm_layer = torchvision.ops.misc.FrozenBatchNorm2d if frozen else nn.BatchNorm2d
    resnet = torchvision.models.get_model(str(config.backbone), weights=backbone_weights, norm_layer=norm_layer)
    # All layers trainable here; what to freeze is decided by train_detector (see freeze_early_stages).
    backbone = _resnet_fpn_extractor(resnet, 5, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
    return FCOS(backbone, num_classes, **_fcos_options(config))


def _replace_class_logits(model: FCOS, num_classes: int) -> None:
    """A fresh class-logit conv for this project's classes (torchvision's init: prior 0.01)."""
    head = model.head.classification_head
    old = head.cls_logits
    head.cls_logits = nn.Conv2d(old.in_channels, head.num_anchors * num_classes, 3, 1, 1)
    nn.init.normal_(head.cls_logits.weight, std=0.01)
    nn.init.constant_(head.cls_logits.bias, -math.log((1 - 0.01) / 0.01))
    head.num_classes = num_classes


# --- building and freezing -----------------------------------------------------------------------


def build_network(config: DetectorConfig, num_classes: int, *, fallback_to_random: bool = False,
                  frozen_batch_norm: bool = False) -> tuple[FCOS, str, bool]:
    """``(model, weights description, is_random)`` for ``num_classes`` classes (indices
    0..num_classes-1). A checkpoint path builds a random-init network of the config's backbone;
    the caller loads the checkpoint into it, with ``frozen_batch_norm`` as the checkpoint's
    network had (a resnet started from pretrained weights keeps FrozenBatchNorm2d). Random
    init is seeded without disturbing the caller's RNG state."""
    if num_classes < 1:
        raise ValueError("a detector needs at least one class")
    pretrained = config.weights in (DetectorWeights.COCO, DetectorWeights.IMAGENET)
    if pretrained:
        try:
            model = _resnet_fcos(num_classes, config, config.weights)
            return model, f"{config.weights} ({config.backbone})", False
        except OSError as error:  # URLError is an OSError: no network, no cached file
            if not fallback_to_random:
                raise WeightsUnavailableError(
                    f"{config.weights} weights for the {config.backbone} FCOS could not be loaded: {error}. "
                    "Pre-fetch them into $TORCH_HOME or use weights='none'.") from error
            description = f"random initialisation ({config.weights} weights unavailable: {error})"
    elif config.from_checkpoint:
        description = f"checkpoint {config.weights}"
    else:
        description = "random initialisation"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        if config.backbone == DetectorBackbone.TINY:
            model = _tiny_fcos(num_classes, config)
        else:
            model = _resnet_fcos(num_classes, config, DetectorWeights.NONE, frozen_batch_norm)
    return model, description, not config.from_checkpoint


def has_frozen_batch_norm(model: FCOS) -> bool:
    return any(isinstance(module, torchvision.ops.misc.FrozenBatchNorm2d) for module in model.modules())


def backbone_stages(model: FCOS) -> list[tuple[int, nn.Module]]:
    """The backbone body's stages in order, each with the stride of its output."""
    body = model.backbone.body
    if "stem" in body:
        return [(4, body["stem"]), (8, body["stage1"]), (16, body["stage2"]), (32, body["stage3"])]
    stem = nn.ModuleList([body["conv1"], body["bn1"]])
    return [(4, stem), (4, body["layer1"]), (8, body["layer2"]), (16, body["layer3"]), (32, body["layer4"])]


def freeze_early_stages(model: FCOS, max_stride: int) -> list[str]:
    """Stop training the backbone stages whose output stride is at most ``max_stride``
    (0 freezes nothing). Returns their names. Call :func:`set_frozen_eval` after every
    ``model.train()`` so their normalisation statistics stay put."""
    frozen = []
    names = {id(module): name for name, module in model.backbone.body.named_children()}
    for stride, stage in backbone_stages(model):
        if stride <= max_stride:
            stage.requires_grad_(False)
            frozen.append(names.get(id(stage), "conv1+bn1"))
    return frozen


def set_frozen_eval(model: FCOS) -> None:
    """Frozen stages run in eval mode (BatchNorm keeps its statistics)."""
    for _, stage in backbone_stages(model):
        if not any(parameter.requires_grad for parameter in stage.parameters()):
            stage.eval()
