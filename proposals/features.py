"""Crop and image embeddings from a truncated CNN backbone.

An embedding is the activation map of one backbone layer, average-pooled (or,
configurably, max-pooled) with a square kernel (stride = kernel), flattened and
L2-normalised, so that the inner product of two embeddings is their cosine
similarity. AlexNet's ``features`` block on a 224x224 input gives 256x6x6; a
3x3 pool makes that 256x2x2 = 1024 dims.

Crops are resized to the network input with ``torchvision.ops.roi_align``
directly on the source image tensor, so a batch of boxes needs no per-crop
Python work, and an image is embedded exactly as the crop covering all of it.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.ops import roi_align

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_INIT_SEED = 0
CHECKPOINT_FORMAT_VERSION = 1


class Backbone(StrEnum):
    ALEXNET = "alexnet"
    SQUEEZENET1_1 = "squeezenet1_1"
    RESNET18 = "resnet18"
    RESNET34 = "resnet34"


class Pooling(StrEnum):
    AVERAGE = "avg"
    MAX = "max"


class WeightsSource(StrEnum):
    IMAGENET = "imagenet"
    NONE = "none"


_SEQUENTIAL_BACKBONES = {Backbone.ALEXNET, Backbone.SQUEEZENET1_1}
_RESNET_STEM = ("conv1", "bn1", "relu", "maxpool")
_RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")

DEFAULT_LAYER = {
    Backbone.ALEXNET: "features",
    Backbone.SQUEEZENET1_1: "features",
    Backbone.RESNET18: "layer4",
    Backbone.RESNET34: "layer4",
}


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be loaded (typically: no network and no cached file)."""


class LayerTooSmallError(ValueError):
    """The chosen layer's activation map at this input size is smaller than the pool kernel."""


@dataclass(frozen=True)
class FeatureConfig:
    """What to embed with.

    ``layer``: for alexnet/squeezenet1_1 ``"features"`` (the whole block) or
    ``"features.<i>"`` (up to and including module ``i``); for resnets one of
    ``"layer1"`` .. ``"layer4"``. Empty means the backbone's default.
    ``pooling``: ``"avg"`` (the default: every activation of a cell counts, as the
    embedding index was designed with) or ``"max"``.
    ``weights``: ``"imagenet"``, ``"none"`` (seeded random init) or a path to a
    checkpoint written by :func:`save_checkpoint`.
    """

    backbone: str = Backbone.ALEXNET
    layer: str = ""
    pool_kernel: int = 3
    pooling: str = Pooling.AVERAGE
    weights: str = WeightsSource.IMAGENET
    input_size: int = 224
    batch_size: int = 32

    def __post_init__(self) -> None:
        backbone = Backbone(self.backbone)
        object.__setattr__(self, "backbone", backbone)
        object.__setattr__(self, "pooling", Pooling(self.pooling))
        object.__setattr__(self, "layer", self.layer or DEFAULT_LAYER[backbone])
        _validate_layer(backbone, self.layer)
        if self.pool_kernel < 1 or self.input_size < 16 or self.batch_size < 1:
            raise ValueError(f"invalid FeatureConfig sizes: {self}")


def _validate_layer(backbone: Backbone, layer: str) -> None:
    if backbone in _SEQUENTIAL_BACKBONES:
        head, _, index = layer.partition(".")
        if head == "features" and (not index or index.isdigit()):
            return
    elif layer in _RESNET_STAGES:
        return
    raise ValueError(f"unsupported layer {layer!r} for backbone {backbone}")


def _build_full_model(config: FeatureConfig) -> tuple[nn.Module, str]:
    """Return the torchvision model with its weights, and a description of the weights."""
    if config.weights == WeightsSource.IMAGENET:
        weights_enum = torchvision.models.get_model_weights(config.backbone).DEFAULT
        try:
            model = torchvision.models.get_model(config.backbone, weights=weights_enum)
        except OSError as error:  # URLError is an OSError: no network, no cached file
            raise WeightsUnavailableError(
                f"ImageNet weights for {config.backbone} ({weights_enum}) could not be "
                f"loaded: {error}. Pre-fetch them into $TORCH_HOME or use weights='none'."
            ) from error
        return model, f"ImageNet (torchvision {weights_enum})"
    # Random init, seeded without disturbing the caller's RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        model = torchvision.models.get_model(config.backbone, weights=None)
    if config.weights == WeightsSource.NONE:
        return model, "random initialisation (no weights available)"
    return model, f"checkpoint {config.weights}"


def _truncate(model: nn.Module, backbone: Backbone, layer: str) -> nn.Module:
    """Keep the modules up to ``layer``; state-dict keys keep the full model's names."""
    if backbone in _SEQUENTIAL_BACKBONES:
        _, _, index = layer.partition(".")
        if index and int(index) >= len(model.features):
            raise ValueError(f"{backbone}.features has {len(model.features)} modules, no {layer!r}")
        features = model.features if not index else model.features[: int(index) + 1]
        return nn.Sequential(OrderedDict(features=features))
    stages = _RESNET_STAGES[: _RESNET_STAGES.index(layer) + 1]
    return nn.Sequential(OrderedDict((name, getattr(model, name)) for name in _RESNET_STEM + stages))


def _load_checkpoint_into(trunk: nn.Module, config: FeatureConfig) -> None:
    checkpoint = torch.load(config.weights, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{config.weights} is not a checkpoint dict with a 'state_dict'")
    saved_backbone = checkpoint.get("backbone", config.backbone)
    if saved_backbone != config.backbone:
        raise ValueError(f"checkpoint is for {saved_backbone}, config asks for {config.backbone}")
    # Extra keys (e.g. a classifier head from a full-model checkpoint) are ignored;
    # every key of the truncated backbone must be present.
    wanted = trunk.state_dict().keys()
    state = checkpoint["state_dict"]
    missing = [key for key in wanted if key not in state]
    if missing:
        raise ValueError(f"checkpoint {config.weights} lacks {len(missing)} keys, e.g. {missing[:3]}")
    trunk.load_state_dict({key: state[key] for key in wanted})


def resample_boxes(image: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Resample ``boxes`` float32 [B, 4] xyxy of ``image`` float32 [1, 3, H, W] to [B, 3, size, size].

    ``aligned=True`` puts pixel centres at +0.5 (as ``align_corners=False`` resizing does);
    ``sampling_ratio=-1`` averages ceil(box/size) samples per output pixel, which acts as the
    anti-aliasing filter when shrinking. Every crop the extractor embeds, and every crop the
    embedding trainer learns from, is resized by this one function.
    """
    rois = torch.cat([torch.zeros(len(boxes), 1, device=boxes.device, dtype=boxes.dtype), boxes], dim=1)
    return roi_align(image, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)


class FeatureExtractor:
    """A loaded backbone that turns images or boxes into L2-normalised embeddings."""

    def __init__(self, config: FeatureConfig, device: str | torch.device | None = None) -> None:
        self.config = config
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model, self.weights_description = _build_full_model(config)
        self.is_random = config.weights == WeightsSource.NONE
        self.trunk = _truncate(model, config.backbone, config.layer)
        if config.weights not in (WeightsSource.IMAGENET, WeightsSource.NONE):
            _load_checkpoint_into(self.trunk, config)
        self.trunk.eval().to(self.device)
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1) * 255
        self.dim = self._output_dim()

    def _output_dim(self) -> int:
        size = self.config.input_size
        with torch.inference_mode():
            activations = self.trunk(torch.zeros(1, 3, size, size, device=self.device))
        if min(activations.shape[-2:]) < self.config.pool_kernel:
            raise LayerTooSmallError(
                f"{self.config}: layer output {tuple(activations.shape[-2:])} is smaller than the pool kernel")
        return int(self._pool(activations)[0].numel())

    def _pool(self, activations: torch.Tensor) -> torch.Tensor:
        kernel = self.config.pool_kernel
        pool = F.avg_pool2d if self.config.pooling == Pooling.AVERAGE else F.max_pool2d
        return pool(activations, kernel_size=kernel, stride=kernel)

    def embed_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        """``batch``: float32 [B, 3, S, S] in 0..255 RGB on ``self.device`` -> float32 [B, dim]
        unit rows, as a tensor. Differentiable: the embedding trainer calls it with gradients
        on; ``embed_crops`` and ``embed_images`` call it under ``torch.inference_mode``."""
        normalised = (batch - self._mean) / self._std
        pooled = self._pool(self.trunk(normalised)).flatten(1)
        return F.normalize(pooled, dim=1)

    def _embed_resized(self, batch: torch.Tensor) -> np.ndarray:
        """``batch``: float32 [B, 3, S, S] in 0..255 RGB -> float32 [B, dim] unit rows."""
        return self.embed_tensor(batch).float().cpu().numpy()

    def _image_tensor(self, image: np.ndarray) -> torch.Tensor:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected uint8 HxWx3 RGB, got {image.dtype} {image.shape}")
        tensor = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
        return tensor.permute(2, 0, 1).unsqueeze(0).float()

    def _resize_boxes(self, image: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Resample ``boxes`` float32 [B, 4] of ``image`` [1, 3, H, W] to [B, 3, S, S] (see
        :func:`resample_boxes`)."""
        return resample_boxes(image, boxes, self.config.input_size)

    def embed_crops(self, image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Embed regions of one image.

        ``image``: uint8 [H, W, 3] RGB. ``boxes``: float32 [N, 4] xyxy pixels;
        boxes are clipped to the image and widened to at least one pixel.
        Returns float32 [N, dim], rows of unit L2 norm.
        """
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        height, width = image.shape[:2]
        clipped = boxes.copy()
        clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, width)
        clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, height)
        clipped[:, 2] = np.maximum(clipped[:, 2], np.minimum(clipped[:, 0] + 1, width))
        clipped[:, 0] = np.minimum(clipped[:, 0], clipped[:, 2] - 1)
        clipped[:, 3] = np.maximum(clipped[:, 3], np.minimum(clipped[:, 1] + 1, height))
        clipped[:, 1] = np.minimum(clipped[:, 1], clipped[:, 3] - 1)
        with torch.inference_mode():
            tensor = self._image_tensor(image)
            all_boxes = torch.from_numpy(clipped).to(self.device)
            chunks = [
                self._embed_resized(self._resize_boxes(tensor, all_boxes[start:start + self.config.batch_size]))
                for start in range(0, len(clipped), self.config.batch_size)
            ]
        return np.concatenate(chunks)

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Embed whole images (any sizes). ``images``: uint8 [H, W, 3] RGB each.

        Returns float32 [N, dim]; identical to ``embed_crops`` with the full-image box.
        """
        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        embeddings = []
        with torch.inference_mode():
            for start in range(0, len(images), self.config.batch_size):
                resized = []
                for image in images[start:start + self.config.batch_size]:
                    height, width = image.shape[:2]
                    full_box = torch.tensor([[0.0, 0.0, width, height]], device=self.device)
                    resized.append(self._resize_boxes(self._image_tensor(image), full_box))
                embeddings.append(self._embed_resized(torch.cat(resized)))
        return np.concatenate(embeddings)


def load_extractor(
    config: FeatureConfig, *, fallback_to_random: bool = False, device: str | None = None
) -> FeatureExtractor:
    """Build an extractor; with ``fallback_to_random``, missing ImageNet weights give a
    seeded random-init extractor whose ``is_random`` is True and whose
    ``weights_description`` says why, instead of raising."""
    try:
        return FeatureExtractor(config, device=device)
    except WeightsUnavailableError as error:
        if not fallback_to_random:
            raise
        extractor = FeatureExtractor(replace(config, weights=WeightsSource.NONE), device=device)
        extractor.weights_description = f"random initialisation (ImageNet weights unavailable: {error})"
        return extractor


@functools.lru_cache(maxsize=8)
def get_extractor(config: FeatureConfig, *, fallback_to_random: bool = False) -> FeatureExtractor:
    """Per-process cache: Celery workers load each model once. Do not mutate the result."""
    return load_extractor(config, fallback_to_random=fallback_to_random)


def save_checkpoint(extractor: FeatureExtractor, path: str | os.PathLike,
                    metadata: dict | None = None) -> None:
    """Write the truncated backbone's state dict atomically (temp file + rename).

    Load it back with ``FeatureConfig(weights=str(path), backbone=..., layer=...)``.
    ``metadata``: plain values (numbers, strings, lists, dicts) stored under ``"metadata"``,
    e.g. what a fine-tuned backbone was trained on; loading ignores it.
    """
    path = Path(path)
    checkpoint = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "backbone": str(extractor.config.backbone),
        "layer": extractor.config.layer,
        "state_dict": {key: value.detach().cpu() for key, value in extractor.trunk.state_dict().items()},
    }
    if metadata is not None:
        checkpoint["metadata"] = dict(metadata)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as temp_file:
            torch.save(checkpoint, temp_file)
        os.replace(temp_name, path)
    except BaseException:
        os.unlink(temp_name)
        raise
