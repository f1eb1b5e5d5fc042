"""Synthetic videos and images with exact ground truth (numpy, Pillow, PyAV).

A video is a sequence of shots separated by hard cuts. Each shot has its own
background (its own hue, brightness and pattern, so a content detector sees
every cut) viewed by a slowly panning camera, and a few objects that move and
change size.

The ``plain`` look (the default) is easy on purpose: objects of one class share
a shape and a colour scheme, e.g. "food.fruit.apple" is a red disc, every object
stays inside its own vertical band of the frame, so objects never occlude each
other and every ground-truth box is the exact tight box of the object's pixels.

The other looks (see :data:`LOOKS`) are harder and differ strongly from each
other: ``counter`` is a bright counter top (wood, marble, tiles, steel) with
food, hands and knives; ``night`` is a dark, noisy, low-contrast street with
cars, people and signs. Each class has a shape, a texture and two colours, and
every object varies around them (hue, saturation, brightness, texture scale,
size). Objects roam the whole frame at different depths, so they occlude each
other: a ground-truth box is the tight box of the pixels still visible, and an
object more than :data:`MAX_HIDDEN` hidden has no ground-truth box in that
frame. The camera zooms within every shot (objects grow or shrink by 1.4-1.8x),
and one shot can be made shorter than a second (``short_shot_seconds``).

Everything is deterministic given ``seed``.
"""

from __future__ import annotations

import colorsys
import functools
import zlib
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


def _shot_cuts(rng: np.random.Generator, frame_count: int, n_shots: int, short_frames: int | None = None) -> list[int]:
    """First frames of shots 2..n. With ``short_frames``, one shot (not the first)
    lasts exactly that many frames and the others at least :data:`MIN_SHOT_FRAMES`."""
    if short_frames is None:
        if n_shots < 1 or frame_count < n_shots * MIN_SHOT_FRAMES:
            raise ValueError(f"{frame_count} frames cannot hold {n_shots} shots of >= {MIN_SHOT_FRAMES} frames")
        spare = frame_count - n_shots * MIN_SHOT_FRAMES
        weights = rng.dirichlet(np.ones(n_shots))
        lengths = MIN_SHOT_FRAMES + np.floor(weights * spare).astype(int)
        lengths[-1] = frame_count - lengths[:-1].sum()
        return [int(cut) for cut in np.cumsum(lengths)[:-1]]
    if n_shots < 2 or short_frames < 1 or frame_count < short_frames + (n_shots - 1) * MIN_SHOT_FRAMES:
        raise ValueError(
            f"{frame_count} frames cannot hold one shot of {short_frames} frames"
            f" and {n_shots - 1} of >= {MIN_SHOT_FRAMES}"
        )
    others = _shot_cuts(rng, frame_count - short_frames, n_shots - 1)
    lengths = np.diff([0, *others, frame_count - short_frames]).tolist()
    lengths.insert(int(rng.integers(1, n_shots)), short_frames)
    return [int(cut) for cut in np.cumsum(lengths)[:-1]]


# --- looks ----------------------------------------------------------------------------

# An object with less than this share of its pixels in view has no ground-truth box.
MAX_HIDDEN = 0.7
_VARIANTS_PER_CLASS = 8  # within-class variation: each object is one of these variants


@dataclass(frozen=True)
class _Style:
    """How a class looks: a mask ``shape``, a ``texture`` mixing two HSV colours,
    the box's ``aspect`` (width / height) and its height as a fraction of the
    frame's shorter side (``size``, before zoom). ``hue_spread`` scales the
    hue variation between objects (cars come in every colour, apples do not)."""

    shape: str
    colour: tuple[float, float, float]
    accent: tuple[float, float, float]
    texture: str
    aspect: float = 1.0
    size: tuple[float, float] = (0.12, 0.18)
    hue_spread: float = 1.0


_LOOK_STYLES: dict[str, dict[str, _Style]] = {
    "counter": {
        "food.fruit.apple": _Style("disc", (0.0, 0.85, 0.8), (0.0, 0.6, 0.55), "shade", 1.0, (0.11, 0.16)),
        "food.fruit.orange": _Style("disc", (0.07, 0.9, 0.95), (0.06, 0.95, 0.7), "dots", 1.0, (0.11, 0.16)),
        "food.fruit.banana": _Style("crescent", (0.15, 0.8, 0.92), (0.1, 0.8, 0.5), "gradient", 1.6, (0.1, 0.15)),
        "food.dish.dessert": _Style("rounded", (0.11, 0.2, 0.95), (0.06, 0.75, 0.45), "checker", 1.0, (0.13, 0.2)),
        "food.dish.soup": _Style("disc", (0.0, 0.0, 0.97), (0.05, 0.8, 0.75), "rim", 1.35, (0.14, 0.2)),
        "food.dish.pizza": _Style("triangle", (0.13, 0.7, 0.95), (0.0, 0.85, 0.7), "dots", 0.9, (0.13, 0.19)),
        "food.drink.coffee": _Style("cup", (0.08, 0.7, 0.35), (0.1, 0.1, 0.95), "rim", 1.1, (0.12, 0.17)),
        "food.bread.croissant": _Style("crescent", (0.09, 0.75, 0.8), (0.07, 0.8, 0.5), "stripes", 1.9, (0.09, 0.13)),
        "body.hand": _Style("blob", (0.06, 0.4, 0.88), (0.06, 0.45, 0.7), "shade", 0.75, (0.18, 0.26), 0.5),
        "tool.knife": _Style("bar", (0.6, 0.05, 0.8), (0.05, 0.6, 0.3), "handle", 4.5, (0.05, 0.07)),
    },
    "night": {
        "vehicle.car": _Style("rounded", (0.6, 0.5, 0.45), (0.15, 0.3, 1.0), "lights", 2.2, (0.12, 0.18), 12.0),
        "vehicle.bike": _Style("bike", (0.0, 0.1, 0.65), (0.0, 0.0, 0.3), "shade", 1.8, (0.12, 0.17), 6.0),
        "person.pedestrian": _Style("person", (0.65, 0.3, 0.35), (0.07, 0.35, 0.6), "person", 0.42, (0.26, 0.36), 6.0),
        "animal.cat": _Style("blob", (0.08, 0.15, 0.3), (0.3, 0.9, 0.9), "eyes", 1.2, (0.09, 0.13)),
        "sign.stop": _Style("octagon", (0.0, 0.85, 0.6), (0.0, 0.0, 0.85), "band", 1.0, (0.1, 0.14)),
        "light.street": _Style("disc", (0.12, 0.5, 1.0), (0.12, 0.2, 1.0), "glow", 1.0, (0.07, 0.1)),
        "bin.trash": _Style("square", (0.35, 0.5, 0.4), (0.35, 0.5, 0.22), "stripes", 0.7, (0.16, 0.22)),
        "bag.backpack": _Style("rounded", (0.75, 0.5, 0.45), (0.75, 0.6, 0.25), "speckle", 0.85, (0.12, 0.16), 8.0),
        "plant.bush": _Style("star", (0.33, 0.6, 0.35), (0.3, 0.7, 0.18), "speckle", 1.3, (0.16, 0.24)),
    },
}
LOOKS = ("plain", *_LOOK_STYLES)


def look_classes(look: str) -> list[str]:
    """The classes a look draws by default (dotted names)."""
    if look == "plain":
        return list(DEFAULT_CLASSES)
    return list(_LOOK_STYLES[look])


def _style_of(look: str, label: str) -> _Style:
    """The look's style for ``label``; a class the look does not know gets a stable made-up one."""
    known = _LOOK_STYLES[look].get(label)
    if known is not None:
        return known
    code = zlib.crc32(label.encode())
    shapes = ("disc", "rounded", "triangle", "diamond", "star", "octagon")
    textures = ("shade", "stripes", "checker", "dots", "speckle")
    hue = (code % 997) / 997
    texture = textures[(code >> 8) % len(textures)]
    return _Style(shapes[code % len(shapes)], (hue, 0.7, 0.8), ((hue + 0.5) % 1, 0.6, 0.5), texture)


def _hsv(colour: tuple[float, float, float]) -> np.ndarray:
    hue, saturation, value = colour
    return np.float32(colorsys.hsv_to_rgb(hue % 1.0, min(max(saturation, 0), 1), min(max(value, 0), 1))) * 255


def _look_mask(shape: str, u: np.ndarray, v: np.ndarray, aspect: float) -> np.ndarray:
    """bool [h, w]: which pixels of the box belong to the object (u, v in [-1, 1])."""
    radius2 = u * u + v * v
    wide = u * aspect  # u in units of the box height, for round parts of wide shapes
    if shape == "disc":
        mask = radius2 <= 1
    elif shape == "crescent":
        mask = (radius2 <= 1) & ((u + 0.15) ** 2 + (v + 0.55) ** 2 >= 0.75)
    elif shape == "rounded":
        mask = u**4 + v**4 <= 1
    elif shape == "blob":
        mask = (u * u / 0.8 + v * v) <= 1.0 - 0.25 * np.cos(5 * np.arctan2(v, u)) ** 2
    elif shape == "triangle":
        mask = np.abs(u) <= (v + 1) / 2
    elif shape == "cup":
        handle = ((u - 0.55) / 0.45) ** 2 + (v / 0.5) ** 2
        mask = ((np.abs(u + 0.25) <= 0.75) & (np.abs(v) <= 0.95)) | ((handle <= 1) & (handle >= 0.35) & (u > 0.5))
    elif shape == "octagon":
        mask = (np.abs(u) + np.abs(v)) <= 1.45
    elif shape == "diamond":
        mask = (np.abs(u) + np.abs(v)) <= 1
    elif shape == "star":
        mask = np.sqrt(radius2) <= 0.55 + 0.45 * np.abs(np.cos(2.5 * np.arctan2(v, u)))
    elif shape == "person":
        mask = ((u / 0.9) ** 2 + ((v - 0.3) / 0.7) ** 2 <= 1) | (wide**2 + (v + 0.7) ** 2 <= 0.3**2)
    elif shape == "bike":
        centre = aspect - 0.95
        wheels = np.minimum(np.sqrt((wide - centre) ** 2 + v * v), np.sqrt((wide + centre) ** 2 + v * v))
        mask = ((wheels >= 0.6) & (wheels <= 0.95)) | ((np.abs(v + 0.25) <= 0.12) & (np.abs(wide) <= centre))
    else:  # "square", "bar"
        mask = np.ones_like(radius2, dtype=bool)
    return np.broadcast_to(mask, np.broadcast_shapes(u.shape, v.shape))


def _look_paint(style: _Style, variant: int, label: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """float32 [h, w, 3] RGB of one variant of the class, before masking."""
    rng = np.random.default_rng(zlib.crc32(label.encode()) * _VARIANTS_PER_CLASS + variant)
    jitter = rng.uniform(-1, 1) * 0.03 * style.hue_spread
    scale_s, scale_v = rng.uniform(0.8, 1.15, size=2)
    base = _hsv((style.colour[0] + jitter, style.colour[1] * scale_s, style.colour[2] * scale_v))
    scale_s, scale_v = rng.uniform(0.85, 1.1, size=2)
    accent = _hsv((style.accent[0] + jitter / 2, style.accent[1] * scale_s, style.accent[2] * scale_v))
    frequency, angle = rng.uniform(0.8, 1.3), rng.uniform(0, np.pi)
    u, v = np.broadcast_arrays(u, v)
    radius = np.sqrt(np.minimum(u * u + v * v, 1.0))
    wide = u * style.aspect
    texture = style.texture
    if texture == "stripes":
        accent_share = np.sin((u * np.cos(angle) + v * np.sin(angle)) * 9 * frequency) > 0.3
    elif texture == "checker":
        cells = np.round(4 * frequency)
        accent_share = ((np.floor((u + 1) * cells) + np.floor((v + 1) * cells)) % 2) > 0
    elif texture == "dots":
        accent_share = np.sin(wide * 11 * frequency + angle) * np.sin(v * 11 * frequency) > 0.75
    elif texture == "gradient":
        accent_share = np.clip((v + 1) / 2 - 0.3, 0, 1)
    elif texture == "rim":  # a bowl's or a cup's rim (base) around its content (accent)
        accent_share = (u * u + v * v < 0.55) if style.shape != "cup" else (v < -0.62)
    elif texture == "handle":
        accent_share = u < -0.35 * frequency
    elif texture == "lights":  # dark windows, two headlights
        lights = np.minimum((wide - (style.aspect - 0.4)) ** 2, (wide + style.aspect - 0.4) ** 2) + (v - 0.2) ** 2
        base = np.where((v < -0.35)[..., None], base * 0.45, base)
        accent_share = lights < 0.05
    elif texture == "person":  # the face
        accent_share = v < -0.45
    elif texture == "eyes":
        accent_share = np.minimum((wide - 0.35) ** 2, (wide + 0.35) ** 2) + (v + 0.2) ** 2 < 0.02
    elif texture == "band":
        accent_share = np.abs(v) < 0.2
    elif texture == "speckle":
        accent_share = rng.random(u.shape) < 0.35
    elif texture == "glow":
        return np.clip(base * (1.4 - 0.9 * radius)[..., None], 0, 255)
    else:  # "shade": lit from the front
        accent_share = np.clip(radius - 0.6, 0, 1)
    mix = np.asarray(accent_share, np.float32)[..., None]
    light = (1.1 - 0.25 * radius)[..., None]
    return np.clip((base * (1 - mix) + accent * mix) * light, 0, 255)


@functools.lru_cache(maxsize=2048)
def _look_sprite(look: str, label: str, variant: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [h, w, 3] RGB and bool [h, w] mask of one variant of ``label`` at this size."""
    style = _style_of(look, label)
    u, v = _local_grid(width, height)
    mask = np.ascontiguousarray(_look_mask(style.shape, u, v, style.aspect))
    rgb = _look_paint(style, variant, label, u, v).astype(np.uint8)
    return rgb, mask


def _look_background(rng: np.random.Generator, look: str, width: int, height: int, shot_number: int) -> np.ndarray:
    """uint8 [height, width, 3]: a counter top (wood, marble, tiles, steel, in turn) or a
    dark street (asphalt, bricks, wet road, in turn), so neighbouring shots differ."""
    ys, xs = np.meshgrid(np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32), indexing="ij")
    scale = min(width, height)
    if look == "counter":
        material = ("wood", "marble", "tiles", "steel")[shot_number % 4]
        hue, saturation, value = {"wood": (0.08, 0.5, 0.82), "marble": (0.1, 0.05, 0.95),
                                  "tiles": (0.55, 0.25, 0.9), "steel": (0.6, 0.06, 0.72)}[material]
    else:
        material = ("asphalt", "bricks", "wet")[shot_number % 3]
        hue, saturation, value = {"asphalt": (0.62, 0.25, 0.22), "bricks": (0.03, 0.45, 0.3),
                                  "wet": (0.72, 0.35, 0.16)}[material]
    hue += rng.uniform(-0.03, 0.03)
    coarse = np.empty((6, 10, 3), dtype=np.uint8)
    for y in range(6):
        for x in range(10):
            jitter = (rng.uniform(-0.02, 0.02), rng.uniform(0.7, 1.2), rng.uniform(0.85, 1.1))
            coarse[y, x] = _hsv((hue + jitter[0], saturation * jitter[1], value * jitter[2]))
    field = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), np.float32)
    period = rng.uniform(0.05, 0.12) * scale
    if material == "wood":
        pattern = 0.85 + 0.15 * np.sin(ys / period * 6 + 2.5 * np.sin(xs / (period * 5)))
    elif material == "marble":
        pattern = 1 - 0.3 * np.exp(-8 * np.abs(np.sin((xs + 0.6 * ys + 20 * np.sin(ys / period)) / (period * 2))))
    elif material == "tiles":
        side = period * 2.5
        pattern = np.where(((xs % side) < 3) | ((ys % side) < 3), 0.6, 1.0)
    elif material == "bricks":
        row = np.floor(ys / (period * 0.8))
        pattern = np.where(((ys % (period * 0.8)) < 2) | (((xs + (row % 2) * period) % (period * 2)) < 2), 0.45, 1.0)
    elif material == "wet":
        pattern = 0.8 + 0.6 * np.exp(-((xs - rng.uniform(0.2, 0.8) * width) / (0.05 * width)) ** 2)
    else:  # steel or asphalt: fine grain
        pattern = 0.85 + 0.3 * rng.random((height, 1 if material == "steel" else width), dtype=np.float32)
    return np.clip(field * np.broadcast_to(pattern, (height, width))[..., None], 0, 255).astype(np.uint8)


@dataclass
class _Actor:
    """An object of a look: roams the whole frame at a fixed depth (larger = nearer)."""

    label: str
    track_id: int
    variant: int
    depth: float
    base_size: float  # box height at zoom 1, pixels
    aspect: float
    phase: float
    centre: np.ndarray  # float [2] x, y
    velocity: np.ndarray  # float [2] pixels per frame

    def box_size(self, frame_in_shot: int, zoom: float, width: int, height: int) -> tuple[int, int]:
        box_height = self.base_size * zoom * (1 + 0.08 * np.sin(frame_in_shot / 9 + self.phase))
        return max(4, min(int(round(box_height * self.aspect)), width)), max(4, min(int(round(box_height)), height))

    def step(self, width: int, height: int, size: tuple[int, int]) -> tuple[int, int]:
        half = np.array(size, np.float32) / 2
        high = np.array([width, height], np.float32) - half
        self.centre = self.centre + self.velocity
        for axis in range(2):
            if self.centre[axis] < half[axis] or self.centre[axis] > high[axis]:
                self.velocity[axis] = -self.velocity[axis]
            self.centre[axis] = min(max(self.centre[axis], half[axis]), high[axis])
        return int(round(self.centre[0] - half[0])), int(round(self.centre[1] - half[1]))


def _new_actors(rng, count: int, look: str, class_cycle, width: int, height: int, first_track_id: int) -> list[_Actor]:
    actors = []
    for number in range(count):
        label = next(class_cycle)
        style = _style_of(look, label)
        speed = rng.uniform(0.006, 0.02) * min(width, height)
        angle = rng.uniform(0, 2 * np.pi)
        actors.append(
            _Actor(
                label=label,
                track_id=first_track_id + number,
                variant=int(rng.integers(_VARIANTS_PER_CLASS)),
                depth=float(rng.random()),
                base_size=rng.uniform(*style.size) * min(width, height) * rng.uniform(0.85, 1.15),
                aspect=style.aspect * rng.uniform(0.9, 1.1),
                phase=rng.uniform(0, 2 * np.pi),
                centre=np.array([rng.uniform(0.15, 0.85) * width, rng.uniform(0.2, 0.8) * height], np.float32),
                velocity=np.array([np.cos(angle) * speed, np.sin(angle) * speed], np.float32),
            )
        )
    return actors


def _class_cycle(rng: np.random.Generator, classes: list[str]):
    """Every class once in a random order, then again: a video with at least as many
    objects as classes shows every class."""
    while True:
        yield from (classes[i] for i in rng.permutation(len(classes)))


def _composite(
    image: np.ndarray, actors: list[_Actor], frame_in_shot: int, zoom: float, look: str
) -> list[GroundTruthBox]:
    """Draw the actors far to near into ``image`` (in place); return the boxes of what stays visible."""
    height, width = image.shape[:2]
    owner = np.full((height, width), -1, np.int16)
    placed = []
    for number, actor in sorted(enumerate(actors), key=lambda item: item[1].depth):
        size = actor.box_size(frame_in_shot, zoom, width, height)
        left, top = actor.step(width, height, size)
        rgb, mask = _look_sprite(look, actor.label, actor.variant, *size)
        np.copyto(image[top:top + size[1], left:left + size[0]], rgb, where=mask[..., None])
        owner[top:top + size[1], left:left + size[0]][mask] = number
        placed.append((number, left, top, size, int(mask.sum())))
    boxes = []
    for number, left, top, (box_width, box_height), area in sorted(placed):
        visible = owner[top:top + box_height, left:left + box_width] == number
        if visible.sum() < (1 - MAX_HIDDEN) * area:
            continue  # mostly hidden: nobody would box it
        rows, cols = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
        box = (left + cols[0], top + rows[0], left + cols[-1] + 1, top + rows[-1] + 1)
        actor = actors[number]
        boxes.append(GroundTruthBox(label=actor.label, box=tuple(float(b) for b in box), track_id=actor.track_id))
    return boxes


def _look_frames(rng, look: str, width: int, height: int, shot_bounds, objects_per_shot: int, classes: list[str]):
    """Yield (uint8 [height, width, 3] frame, its ground truth) for every frame of a look."""
    pan = max(8, min(width, height) // 12)
    cycle = _class_cycle(rng, classes)
    # Night: a cheap camera in the dark, low contrast (a lookup table) and sensor noise
    # (drawn per frame from a bank: fresh normal noise for every frame costs seconds).
    contrast = np.clip(np.arange(256) * 0.6 + 14, 0, 255).astype(np.int16)
    noise_bank = None
    if look == "night":
        noise_bank = (rng.standard_normal((8, height, width, 3), dtype=np.float32) * 9).astype(np.int16)
    next_track_id = 1
    for shot_number, (start, end) in enumerate(shot_bounds):
        background = _look_background(rng, look, width + 2 * pan, height + 2 * pan, shot_number)
        actors = _new_actors(rng, objects_per_shot, look, cycle, width, height, next_track_id)
        next_track_id += len(actors)
        pan_direction = rng.uniform(-1, 1, size=2)
        zoom_range = rng.uniform(1.4, 1.8)  # objects grow (or shrink) this much over the shot
        zooming_in = rng.random() < 0.5
        for frame_in_shot in range(end - start):
            progress = frame_in_shot / max(1, end - start - 1)
            zoom = zoom_range ** (progress if zooming_in else 1 - progress)
            crop_w, crop_h = width / zoom ** 0.5, height / zoom ** 0.5  # the background zooms less: it is farther
            x = pan + pan * pan_direction[0] * (progress - 0.5) * 1.8 + (width - crop_w) / 2
            y = pan + pan * pan_direction[1] * (progress - 0.5) * 1.8 + (height - crop_h) / 2
            image = np.asarray(Image.fromarray(background).resize(
                (width, height), Image.Resampling.BILINEAR, box=(x, y, x + crop_w, y + crop_h)))
            image = image.copy()
            boxes = _composite(image, actors, frame_in_shot, zoom / zoom_range ** 0.5, look)
            if noise_bank is not None:
                noisy = contrast[image] + noise_bank[rng.integers(len(noise_bank))]
                image = np.clip(noisy, 0, 255).astype(np.uint8)
            yield image, boxes


def _plain_frames(rng, width: int, height: int, shot_bounds, objects_per_shot: int, classes: list[str]):
    """The ``plain`` look: one object per vertical band, never occluded."""
    pan = max(8, min(width, height) // 12)  # camera travel, pixels
    next_track_id = 1
    for shot_number, (start, end) in enumerate(shot_bounds):
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
            yield image, frame_boxes


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
    classes: list[str] | tuple[str, ...] | None = None,
    look: str = "plain",
    short_shot_seconds: float | None = None,
    crf: int = 23,
    preset: str = "veryfast",
) -> SyntheticVideo:
    """Write an H.264 (libx264, else MPEG-4 part 2) yuv420p MP4 with known
    cuts and per-frame object boxes.

    ``width``/``height`` must be even; ``seconds * fps`` frames must allow
    ``n_shots`` shots of at least :data:`MIN_SHOT_FRAMES` (but one of
    ``short_shot_seconds`` when given). ``look`` is one of :data:`LOOKS`;
    ``classes`` defaults to the look's (:func:`look_classes`). ``crf``/``preset``
    are x264's quality/speed knobs (veryfast keeps CABAC and B-frames, so
    the file decodes like a typical camera upload).
    """
    if width % 2 or height % 2:
        raise ValueError("width and height must be even (yuv420p)")
    if look not in LOOKS:
        raise ValueError(f"unknown look {look!r}; use one of {', '.join(LOOKS)}")
    path = Path(path)
    rng = np.random.default_rng(seed)
    rate = Fraction(fps).limit_denominator(1001)
    frame_count = int(round(seconds * rate))
    short_frames = None if short_shot_seconds is None else max(1, int(round(short_shot_seconds * rate)))
    cuts = _shot_cuts(rng, frame_count, n_shots, short_frames)
    shot_bounds = list(zip([0, *cuts], [*cuts, frame_count], strict=True))
    classes = look_classes(look) if classes is None else list(classes)
    if look == "plain":
        frames = _plain_frames(rng, width, height, shot_bounds, objects_per_shot, classes)
    else:
        frames = _look_frames(rng, look, width, height, shot_bounds, objects_per_shot, classes)

    boxes: dict[int, list[GroundTruthBox]] = {}
    codec = _pick_codec()
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": preset}
        else:
            stream.bit_rate = width * height * 4
        for number, (image, frame_boxes) in enumerate(frames):
            boxes[number] = frame_boxes
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = number
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
