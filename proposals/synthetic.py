"""Synthetic videos and images with exact ground truth (numpy, Pillow, PyAV).

A video is a sequence of shots separated by hard cuts. Each shot has its own
smooth texture (its own hue, brightness and stripe pattern, so a content
detector sees every cut) viewed by a slowly panning camera, and a few
objects that move and change size. Objects of one class share a shape and a
colour scheme, e.g. "food.fruit.apple" is a red disc, "food.dish.dessert" a
textured square, "body.hand" a skin-tone blob. Every object stays inside its
own vertical band of the frame, so objects never occlude each other and
every ground-truth box is the exact tight box of the object's pixels.

Everything is deterministic given ``seed``.
"""

from __future__ import annotations

import colorsys
import functools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

DEFAULT_CLASSES = ("food.fruit.apple", "food.fruit.banana", "food.dish.dessert", "body.hand")
# Shots shorter than this would fall under the shot detector's minimum shot
# length (15 frames) and flash filter; keep a margin.
MIN_SHOT_FRAMES = 24
# Box side as a fraction of the frame's shorter side, before the per-frame
# size oscillation of +-25 %.
_OBJECT_SIZE_RANGE = (0.14, 0.26)
_SIZE_OSCILLATION = 0.25


@dataclass(frozen=True)
class GroundTruthBox:
    """``box``: (x0, y0, x1, y1) pixels, exclusive right/bottom edges, i.e.
    the object covers columns x0..x1-1. ``track_id`` is unique per object
    within a video (a new id after every cut) or within an image set."""

    label: str
    box: tuple[float, float, float, float]
    track_id: int


@dataclass(frozen=True)
class SyntheticVideo:
    """``cuts``: first frame of shots 2..n (0-based); ``boxes``: frame index
    -> the objects visible in it (every frame has an entry)."""

    path: Path
    fps: float
    frame_count: int
    width: int
    height: int
    cuts: list[int]
    classes: list[str]
    boxes: dict[int, list[GroundTruthBox]]


@dataclass(frozen=True)
class SyntheticImage:
    path: Path
    width: int
    height: int
    boxes: list[GroundTruthBox]


def _local_grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1] over a width x height box."""
    u = (np.arange(width, dtype=np.float32) + 0.5) / width * 2 - 1
    v = (np.arange(height, dtype=np.float32) + 0.5) / height * 2 - 1
    return u[None, :], v[:, None]


def _shade(colour: tuple[int, int, int], light: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(colour, np.float32) * light[..., None], 0, 255)


@functools.lru_cache(maxsize=1024)
def _sprite(label: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """uint8 [h, w, 3] RGB, bool [h, w, 1] mask and the mask's tight box
    (x0, y0, x1, y1 within the sprite) of one object of ``label``.

    Cached: objects oscillate in size, so the same sprites come back often.
    """
    u, v = _local_grid(width, height)
    radius2 = u * u + v * v
    kind = _shape_of(label)
    if kind == "disc":  # apple: shaded red disc
        mask = radius2 <= 1.0
        rgb = _shade((200, 25, 30), 1.15 - 0.45 * np.sqrt(np.minimum(radius2, 1.0)))
    elif kind == "crescent":  # banana: yellow crescent
        mask = (radius2 <= 1.0) & ((u + 0.15) ** 2 + (v + 0.55) ** 2 >= 0.75)
        rgb = _shade((235, 205, 40), 0.85 + 0.15 * (v + 1))
    elif kind == "square":  # dessert: cream/brown checker, whole box
        mask = np.ones((height, width), dtype=bool)
        checker = ((np.floor((u + 1) * 4) + np.floor((v + 1) * 4)) % 2).astype(np.float32)
        rgb = np.where(checker[..., None] > 0, np.float32([110, 60, 25]), np.float32([240, 225, 190]))
    else:  # hand: skin-tone blob, an ellipse with a smooth bump
        mask = (u * u / 0.8 + v * v) <= 1.0 - 0.25 * np.cos(5 * np.arctan2(v, u)) ** 2
        rgb = _shade((225, 170, 135), 1.05 - 0.2 * np.sqrt(np.minimum(radius2, 1.0)))
    rgb = np.broadcast_to(rgb, (height, width, 3)).astype(np.uint8)
    mask = np.ascontiguousarray(np.broadcast_to(mask, (height, width))[..., None])
    rows, cols = np.flatnonzero(mask.any(axis=(1, 2))), np.flatnonzero(mask.any(axis=(0, 2)))
    tight = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    return rgb, mask, tight


_SHAPE_OF_CLASS = {
    "food.fruit.apple": "disc",
    "food.fruit.banana": "crescent",
    "food.dish.dessert": "square",
    "body.hand": "blob",
}
# Aspect ratio (width / height) of each shape's box.
_ASPECT_OF_SHAPE = {"disc": 1.0, "crescent": 1.6, "square": 1.0, "blob": 0.75}


def _fallback_shape(label: str) -> str:
    """Shape for a class outside the built-in four, stable across runs."""
    shapes = sorted(_ASPECT_OF_SHAPE)
    return shapes[sum(label.encode()) % len(shapes)]


def _shape_of(label: str) -> str:
    return _SHAPE_OF_CLASS.get(label) or _fallback_shape(label)


def _texture(rng: np.random.Generator, width: int, height: int, shot_number: int) -> np.ndarray:
    """uint8 [height, width, 3] smooth background, distinct per shot: a coarse
    random colour field around one hue, blown up, times oriented stripes."""
    # Golden-ratio hue steps and alternating brightness keep neighbours apart.
    hue = (rng.random() * 0.1 + shot_number * 0.382) % 1.0
    value = 0.9 if shot_number % 2 == 0 else 0.4
    coarse = np.empty((6, 10, 3), dtype=np.uint8)
    for y in range(6):
        for x in range(10):
            r, g, b = colorsys.hsv_to_rgb(
                (hue + rng.uniform(-0.04, 0.04)) % 1.0, rng.uniform(0.45, 0.95), value * rng.uniform(0.75, 1.1)
            )
            coarse[y, x] = np.clip(np.array([r, g, b]) * 255, 0, 255)
    field = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(0.03, 0.12) * min(width, height)
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    stripes = 0.8 + 0.2 * np.sin((xs * np.cos(angle) + ys * np.sin(angle)) * (2 * np.pi / period))
    return np.clip(field * stripes[..., None], 0, 255).astype(np.uint8)


@dataclass
class _MovingObject:
    label: str
    track_id: int
    band: tuple[int, int]  # horizontal extent it stays in
    base_size: float
    phase: float
    period_frames: float
    centre: np.ndarray  # float [2] x, y
    velocity: np.ndarray  # float [2] pixels per frame

    def box_size(self, frame_in_shot: int) -> tuple[int, int]:
        scale = 1 + _SIZE_OSCILLATION * np.sin(2 * np.pi * frame_in_shot / self.period_frames + self.phase)
        height = self.base_size * scale
        width = height * _ASPECT_OF_SHAPE[_shape_of(self.label)]
        band_width = self.band[1] - self.band[0]
        return max(4, min(int(round(width)), band_width)), max(4, int(round(height)))

    def step(self, frame_height: int, size: tuple[int, int]) -> tuple[int, int]:
        """Advance one frame, bouncing off the band's edges; returns the top-left."""
        half = np.array(size, np.float32) / 2
        low = np.array([self.band[0], 0], np.float32) + half
        high = np.array([self.band[1], frame_height], np.float32) - half
        self.centre = self.centre + self.velocity
        for axis in range(2):
            if self.centre[axis] < low[axis] or self.centre[axis] > high[axis]:
                self.velocity[axis] = -self.velocity[axis]
            self.centre[axis] = min(max(self.centre[axis], low[axis]), high[axis])
        return int(round(self.centre[0] - half[0])), int(round(self.centre[1] - half[1]))


def _paste(frame: np.ndarray, label: str, left: int, top: int, size: tuple[int, int], track_id: int) -> GroundTruthBox:
    """Draw the object into ``frame`` (in place); return its tight box."""
    rgb, mask, (x0, y0, x1, y1) = _sprite(label, *size)
    height, width = mask.shape[:2]
    np.copyto(frame[top:top + height, left:left + width], rgb, where=mask)
    box = (left + x0, top + y0, left + x1, top + y1)
    return GroundTruthBox(label=label, box=tuple(float(value) for value in box), track_id=track_id)


def _new_objects(
    rng: np.random.Generator, count: int, classes: list[str], width: int, height: int, first_track_id: int
) -> list[_MovingObject]:
    band_width = width / max(count, 1)
    objects = []
    for number in range(count):
        band = (int(number * band_width), int((number + 1) * band_width))
        base_size = rng.uniform(*_OBJECT_SIZE_RANGE) * min(width, height)
        speed = rng.uniform(0.004, 0.012) * min(width, height)
        angle = rng.uniform(0, 2 * np.pi)
        objects.append(
            _MovingObject(
                label=str(rng.choice(classes)),
                track_id=first_track_id + number,
                band=band,
                base_size=base_size,
                phase=rng.uniform(0, 2 * np.pi),
                period_frames=rng.uniform(40, 120),
                centre=np.array([(band[0] + band[1]) / 2, rng.uniform(0.3, 0.7) * height], np.float32),
                velocity=np.array([np.cos(angle) * speed, np.sin(angle) * speed], np.float32),
            )
        )
    return objects


def _shot_cuts(rng: np.random.Generator, frame_count: int, n_shots: int) -> list[int]:
    if n_shots < 1 or frame_count < n_shots * MIN_SHOT_FRAMES:
        raise ValueError(f"{frame_count} frames cannot hold {n_shots} shots of >= {MIN_SHOT_FRAMES} frames")
    spare = frame_count - n_shots * MIN_SHOT_FRAMES
    weights = rng.dirichlet(np.ones(n_shots))
    lengths = MIN_SHOT_FRAMES + np.floor(weights * spare).astype(int)
    lengths[-1] = frame_count - lengths[:-1].sum()
    return [int(cut) for cut in np.cumsum(lengths)[:-1]]


def _pick_codec() -> str:
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def write_synthetic_video(
    path: str | Path,
    *,
    seconds: float = 10.0,
    fps: float = 25.0,
    width: int = 640,
    height: int = 360,
    n_shots: int = 4,
    seed: int = 0,
    objects_per_shot: int = 2,
    classes: list[str] | tuple[str, ...] = DEFAULT_CLASSES,
    crf: int = 23,
    preset: str = "veryfast",
) -> SyntheticVideo:
    """Write an H.264 (libx264, else MPEG-4 part 2) yuv420p MP4 with known
    cuts and per-frame object boxes.

    ``width``/``height`` must be even; ``seconds * fps`` frames must allow
    ``n_shots`` shots of at least :data:`MIN_SHOT_FRAMES`. ``crf``/``preset``
    are x264's quality/speed knobs (veryfast keeps CABAC and B-frames, so
    the file decodes like a typical camera upload).
    """
    if width % 2 or height % 2:
        raise ValueError("width and height must be even (yuv420p)")
    path = Path(path)
    rng = np.random.default_rng(seed)
    rate = Fraction(fps).limit_denominator(1001)
    frame_count = int(round(seconds * rate))
    cuts = _shot_cuts(rng, frame_count, n_shots)
    shot_starts = [0, *cuts]
    shot_ends = [*cuts, frame_count]
    classes = list(classes)
    pan = max(8, min(width, height) // 12)  # camera travel, pixels

    boxes: dict[int, list[GroundTruthBox]] = {}
    codec = _pick_codec()
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": preset}
        else:
            stream.bit_rate = width * height * 4
        next_track_id = 1
        for shot_number, (start, end) in enumerate(zip(shot_starts, shot_ends, strict=True)):
            background = _texture(rng, width + 2 * pan, height + 2 * pan, shot_number)
            objects = _new_objects(rng, objects_per_shot, classes, width, height, next_track_id)
            next_track_id += len(objects)
            pan_direction = rng.uniform(-1, 1, size=2)
            for frame_in_shot in range(end - start):
                progress = frame_in_shot / max(1, end - start - 1)
                offset_x = int(round(pan + pan * pan_direction[0] * (progress - 0.5) * 2 * 0.9))
                offset_y = int(round(pan + pan * pan_direction[1] * (progress - 0.5) * 2 * 0.9))
                image = background[offset_y:offset_y + height, offset_x:offset_x + width].copy()
                frame_boxes = []
                for obj in objects:
                    size = obj.box_size(frame_in_shot)
                    left, top = obj.step(height, size)
                    frame_boxes.append(_paste(image, obj.label, left, top, size, obj.track_id))
                boxes[start + frame_in_shot] = frame_boxes
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = start + frame_in_shot
                container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return SyntheticVideo(
        path=path,
        fps=float(rate),
        frame_count=frame_count,
        width=width,
        height=height,
        cuts=cuts,
        classes=classes,
        boxes=boxes,
    )


def write_synthetic_images(
    directory: str | Path,
    n: int,
    seed: int,
    *,
    width: int = 640,
    height: int = 480,
    objects_per_image: int = 3,
    classes: list[str] | tuple[str, ...] = DEFAULT_CLASSES,
    jpeg_quality: int = 92,
) -> list[SyntheticImage]:
    """Write ``n`` JPEG stills (``image_0000.jpg`` ...) into ``directory``,
    each a textured background with ``objects_per_image`` objects, and
    return them with their boxes. Deterministic given ``seed``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    classes = list(classes)
    images = []
    next_track_id = 1
    for number in range(n):
        image = _texture(rng, width, height, number)
        objects = _new_objects(rng, objects_per_image, classes, width, height, next_track_id)
        next_track_id += len(objects)
        boxes = []
        for obj in objects:
            size = obj.box_size(int(rng.integers(0, 120)))
            left, top = obj.step(height, size)
            boxes.append(_paste(image, obj.label, left, top, size, obj.track_id))
        path = directory / f"image_{number:04d}.jpg"
        Image.fromarray(image).save(path, format="JPEG", quality=jpeg_quality)
        images.append(SyntheticImage(path=path, width=width, height=height, boxes=boxes))
    return images
