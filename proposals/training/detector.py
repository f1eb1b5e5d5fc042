"""Train a project's detector on its confirmed boxes; run it as a ``proposals.regions.Detector``.

Shape after torchvision's detection references: :func:`train_one_epoch` and :func:`evaluate`
(under ``torch.inference_mode()``), checkpoints as dicts written atomically, explicit seeds.
:func:`train_detector` ties them together:

* Only complete frames train the detector (see :mod:`proposals.training.data`).
* Each epoch samples images with LVIS repeat factors, so frames holding a rare label come back
  more often (``repeat_threshold``).
* AdamW under a one-cycle schedule (warm up 30 % of the steps, cosine down), stepped per batch.
* Augmentation: horizontal flips and a random working size per batch (``scale_jitter``).
* Deterministic with ``seed``: model init, sampling, augmentation and the optimiser draw from
  seeded generators (the caller's global RNG state is left as it was). Runs repeat bit for bit
  on the same CPU and thread count; on a GPU some cuDNN kernels are not bitwise reproducible.
* Fine-tuning: ``config.weights`` names a previous checkpoint; rows of the class logits are
  carried over by label id, so a taxonomy that grew keeps what it knew. Pretrained or
  fine-tuned backbones freeze their early layers while data is scarce: with fewer than
  ``scarce_frames`` training frames every stage up to stride 8 (the stem and first stage: edges,
  colours, textures) stays fixed; with more, only the stride-4 stem. A random-init backbone
  freezes nothing (random filters are no features to keep).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torchvision.models.detection import FCOS

from proposals.training.checkpoints import CHECKPOINT_FORMAT_VERSION, load_checkpoint, save_checkpoint
from proposals.training.data import TrainingFrame, detector_frames, repeat_factor_epoch, repeat_factors
from proposals.training.detector_models import (DetectorConfig, build_network, freeze_early_stages,
                                                has_frozen_batch_norm, set_frozen_eval)
from proposals.training.evaluation import DetectionScores, detection_scores

CHECKPOINT_KIND = "detector"


@dataclass(frozen=True)
class DetectorTrainingOptions:
    """How to train. ``learning_rate`` is the one-cycle peak; ``scale_jitter`` multiplies the
    config's ``max_side`` per batch; ``scarce_frames``: see the module doc."""

    epochs: int = 12
    batch_size: int = 4
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    repeat_threshold: float = 0.1
    scale_jitter: tuple[float, float] = (0.8, 1.2)
    horizontal_flip: bool = True
    scarce_frames: int = 200
    gradient_clip: float = 10.0
    seed: int = 0


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    losses: dict[str, float]  # mean per batch: classification, bbox_regression, bbox_ctrness, total
    images: int
    seconds: float


class TrainedDetector:
    """A detector ready to propose boxes: ``rgb -> (boxes, scores, label ids)``.

    Satisfies ``proposals.regions.Detector``. ``label_ids`` int64 [C]: the project's label id
    of each class index.
    """

    def __init__(self, model: FCOS, label_ids: Sequence[int], config: DetectorConfig, *,
                 weights_description: str, is_random: bool, device: str | torch.device = "cpu") -> None:
        self.model = model.eval()
        self.label_ids = np.asarray(label_ids, np.int64)
        self.config = config
        self.weights_description = weights_description
        self.is_random = is_random  # trained from random initialisation, no pretrained features
        self.device = torch.device(device)

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``rgb`` uint8 [H, W, 3] -> (float32 [N, 4] xyxy pixels, float32 [N] scores in [0, 1],
        int64 [N] label ids), best first."""
        return self.predict([rgb])[0]

    def predict(self, images: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """:meth:`__call__` for several images at once (one forward pass)."""
        if not images:
            return []
        detections = _detect(self.model, images, self.device)
        return [(boxes, scores, self.label_ids[classes]) for boxes, scores, classes in detections]


@dataclass
class DetectorTrainingResult:
    detector: TrainedDetector
    epochs: list[EpochStats] = field(default_factory=list)
    trained_frames: int = 0
    skipped_incomplete_frames: int = 0
    frozen: list[str] = field(default_factory=list)

    @property
    def seconds_per_epoch(self) -> float:
        return float(np.mean([epoch.seconds for epoch in self.epochs])) if self.epochs else math.nan


# --- tensors -----------------------------------------------------------------------------------


def _image_tensor(rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 [H, W, 3] -> float32 [3, H, W] in [0, 1] (FCOS normalises with ImageNet statistics)."""
    array = np.ascontiguousarray(rgb)
    if not array.flags.writeable:  # e.g. np.asarray of a PIL image; torch wants writable memory
        array = array.copy()
    return torch.from_numpy(array).to(device).permute(2, 0, 1).float().div_(255.0)


def _training_example(frame: TrainingFrame, class_index: dict[int, int], flip: bool, device: torch.device
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    image = _image_tensor(frame.image, device)
    boxes = torch.from_numpy(frame.boxes.copy()).to(device)
    keep = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    labels = torch.tensor([class_index[int(label)] for label in frame.label_ids], dtype=torch.int64,
                          device=device)
    boxes, labels = boxes[keep], labels[keep]
    if flip:
        image = image.flip(-1)
        width = image.shape[-1]
        boxes = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], dim=1)
    return image, {"boxes": boxes, "labels": labels}


@contextlib.contextmanager
def _working_size(model: FCOS, size: int) -> Iterator[None]:
    """Resize this batch's images to ``size`` on the long side instead of the configured size."""
    transform = model.transform
    saved = transform.min_size, transform.max_size
    transform.min_size, transform.max_size = (size,), size
    try:
        yield
    finally:
        transform.min_size, transform.max_size = saved


def _detect(model: FCOS, images: Sequence[np.ndarray], device: torch.device
            ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    model.eval()
    with torch.inference_mode():
        outputs = model([_image_tensor(image, device) for image in images])
    return [(output["boxes"].float().cpu().numpy().reshape(-1, 4), output["scores"].float().cpu().numpy(),
             output["labels"].cpu().numpy().astype(np.int64)) for output in outputs]


# --- the reference-style loop ------------------------------------------------------------------


def train_one_epoch(model: FCOS, optimizer: torch.optim.Optimizer, scheduler, frames: Sequence[TrainingFrame],
                    order: np.ndarray, class_index: dict[int, int], options: DetectorTrainingOptions,
                    max_side: int, rng: np.random.Generator, device: torch.device, epoch: int = 0) -> EpochStats:
    """One pass over ``frames[order]`` in batches; the scheduler steps after every batch.

    Raises ``FloatingPointError`` on a non-finite loss (the run is lost; the caller keeps the
    previous model).
    """
    model.train()
    set_frozen_eval(model)
    started = time.perf_counter()
    totals: dict[str, float] = {}
    batches = 0
    for start in range(0, len(order), options.batch_size):
        chosen = order[start:start + options.batch_size]
        flips = rng.random(len(chosen)) < 0.5 if options.horizontal_flip else np.zeros(len(chosen), bool)
        size = round(max_side * rng.uniform(*options.scale_jitter))
        examples = [_training_example(frames[i], class_index, bool(flip), device) for i, flip in zip(chosen, flips)]
        images, targets = [image for image, _ in examples], [target for _, target in examples]
        with _working_size(model, size):
            losses = model(images, targets)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            parts = {name: float(value) for name, value in losses.items()}
            raise FloatingPointError(f"epoch {epoch}: loss is {float(loss)} ({parts})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if options.gradient_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), options.gradient_clip)
        optimizer.step()
        scheduler.step()
        for name, value in {**losses, "total": loss}.items():
            totals[name] = totals.get(name, 0.0) + float(value.detach())
        batches += 1
    return EpochStats(epoch=epoch, losses={name: value / max(batches, 1) for name, value in totals.items()},
                      images=len(order), seconds=time.perf_counter() - started)


def evaluate(detector: TrainedDetector, frames: Sequence[TrainingFrame], *, batch_size: int = 8) -> DetectionScores:
    """mAP@0.5 (overall and per label id) of ``detector`` on ``frames``, which should be
    complete frames (a missing box would count a correct detection as a false positive)."""
    predictions = []
    for start in range(0, len(frames), batch_size):
        chunk = frames[start:start + batch_size]
        predictions += detector.predict([frame.image for frame in chunk])
    return detection_scores(frames, predictions, detector.label_ids)


# --- fitting -----------------------------------------------------------------------------------


def _parameter_groups(model: FCOS, weight_decay: float) -> list[dict]:
    """No weight decay on biases and normalisation parameters (1-D tensors)."""
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    return [{"params": [p for p in trainable if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in trainable if p.ndim <= 1], "weight_decay": 0.0}]


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train_detector(frames: Sequence[TrainingFrame], config: DetectorConfig = DetectorConfig(),
                   options: DetectorTrainingOptions = DetectorTrainingOptions(), *,
                   label_ids: Sequence[int] | None = None, fallback_to_random: bool = False,
                   device: str | torch.device | None = None,
                   log: Callable[[EpochStats], None] | None = None) -> DetectorTrainingResult:
    """Train a detector on the complete ones among ``frames`` (see the module doc).

    ``label_ids``: the classes to detect (default: every label in the complete frames, plus
    those of a checkpoint being fine-tuned). ``log`` is called after every epoch.
    Raises ``ValueError`` when no complete frame is given.
    """
    device = torch.device(device) if device is not None else _default_device()
    usable = detector_frames(frames)
    if not usable:
        raise ValueError("no complete frame to train on")
    previous = load_checkpoint(config.weights, kind=CHECKPOINT_KIND) if config.from_checkpoint else None
    if previous is not None and previous["config"]["backbone"] != config.backbone:
        raise ValueError(f"checkpoint is for {previous['config']['backbone']}, config asks for {config.backbone}")
    if label_ids is None:
        known = set(previous["label_ids"]) if previous is not None else set()
        label_ids = sorted(known | {int(label) for frame in usable for label in frame.label_ids})
    label_ids = [int(label) for label in label_ids]
    class_index = {label: index for index, label in enumerate(label_ids)}
    missing = {int(label) for frame in usable for label in frame.label_ids} - set(class_index)
    if missing:
        raise ValueError(f"frames hold labels outside label_ids: {sorted(missing)[:5]}")

    rng = np.random.default_rng(options.seed)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(options.seed)
        model, description, is_random = build_network(
            config, len(label_ids), fallback_to_random=fallback_to_random,
            frozen_batch_norm=previous is not None and bool(previous.get("frozen_batch_norm", False)))
        if previous is not None:
            _load_state(model, previous, label_ids)
            is_random = bool(previous.get("is_random", False))
        model.to(device)
        frozen = []
        if not is_random or previous is not None:
            frozen = freeze_early_stages(model, 8 if len(usable) < options.scarce_frames else 4)

        factors = repeat_factors([frame.label_ids for frame in usable], options.repeat_threshold)
        orders = [repeat_factor_epoch(factors, rng) for _ in range(options.epochs)]
        steps = sum(math.ceil(len(order) / options.batch_size) for order in orders)
        optimizer = torch.optim.AdamW(_parameter_groups(model, options.weight_decay), lr=options.learning_rate)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=options.learning_rate,
                                                        total_steps=max(steps, 1), pct_start=0.3)
        detector = TrainedDetector(model, label_ids, config, weights_description=description,
                                   is_random=is_random, device=device)
        result = DetectorTrainingResult(detector=detector, trained_frames=len(usable),
                                        skipped_incomplete_frames=len(frames) - len(usable), frozen=frozen)
        for epoch, order in enumerate(orders):
            stats = train_one_epoch(model, optimizer, scheduler, usable, order, class_index, options,
                                    config.max_side, rng, device, epoch)
            result.epochs.append(stats)
            if log is not None:
                log(stats)
    model.eval()
    return result


# --- checkpoints -------------------------------------------------------------------------------


def _load_state(model: FCOS, checkpoint: dict, label_ids: Sequence[int]) -> None:
    """Load a detector checkpoint, mapping class-logit rows by label id (new labels keep their
    fresh init, labels gone are dropped)."""
    state = dict(checkpoint["state_dict"])
    old_index = {int(label): index for index, label in enumerate(checkpoint["label_ids"])}
    own = model.state_dict()
    for suffix in ("weight", "bias"):
        key = f"head.classification_head.cls_logits.{suffix}"
        merged = own[key].clone()
        for new, label in enumerate(label_ids):
            if int(label) in old_index:
                merged[new] = state[key][old_index[int(label)]]
        state[key] = merged
    model.load_state_dict(state)


def detector_checkpoint(detector: TrainedDetector, **metadata) -> dict:
    """The checkpoint dict of ``detector``; ``metadata`` (plain values) is stored alongside."""
    config = replace(detector.config, weights="none")  # the weights are in the checkpoint itself
    return {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "kind": CHECKPOINT_KIND,
        "config": {key: str(value) if key == "backbone" else value for key, value in asdict(config).items()},
        "label_ids": [int(label) for label in detector.label_ids],
        "is_random": detector.is_random,
        "frozen_batch_norm": has_frozen_batch_norm(detector.model),
        "weights_description": detector.weights_description,
        "state_dict": {key: value.detach().cpu() for key, value in detector.model.state_dict().items()},
        "metadata": dict(metadata),
    }


def save_detector(detector: TrainedDetector, path: str | Path, **metadata) -> Path:
    """Write ``detector`` atomically (temp file + rename); see :func:`detector_checkpoint`."""
    return save_checkpoint(detector_checkpoint(detector, **metadata), path)


def load_detector(path: str | Path, *, device: str | torch.device | None = None, **overrides) -> TrainedDetector:
    """A :class:`TrainedDetector` from a checkpoint; ``overrides`` replace inference fields of
    its config (``score_threshold``, ``nms_iou``, ``max_detections``, ``max_side``)."""
    checkpoint = load_checkpoint(path, kind=CHECKPOINT_KIND)
    config = replace(DetectorConfig(**checkpoint["config"]), **overrides)
    model, _, _ = build_network(config, len(checkpoint["label_ids"]),
                                frozen_batch_norm=bool(checkpoint.get("frozen_batch_norm", False)))
    model.load_state_dict(checkpoint["state_dict"])
    device = torch.device(device) if device is not None else _default_device()
    return TrainedDetector(model.to(device), checkpoint["label_ids"], replace(config, weights=str(path)),
                           weights_description=f"checkpoint {path}", is_random=bool(checkpoint["is_random"]),
                           device=device)
