"""Procedural scenes: coloured shapes on a canvas, sampled from a seed and rendered with PIL.

Each scene is drawn from its own random stream, ``SeedSequence([data_seed, split, index])``,
so a scene does not change when the number of scenes in any split changes, and two splits can
never share a stream. Rendering is 4× supersampled and box-filtered, which gives anti-aliased
edges without any randomness beyond the scene's own stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from benchmark.data.compositional import matches

COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (215, 45, 45),
    "green": (45, 165, 70),
    "blue": (50, 90, 220),
    "yellow": (235, 205, 45),
    "purple": (145, 65, 190),
    "orange": (240, 135, 35),
    "cyan": (40, 200, 210),
    "white": (240, 240, 240),
}
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
SUPERSAMPLE = 4
COLOR_JITTER = 18  # max per-channel deviation of an object's colour from its name's RGB
BACKGROUND_RANGE = (25, 90)  # grey level of the canvas
PIXEL_NOISE_STD = 3.0  # sensor-like noise so images are not flat colour fields
SIZE_JITTER = 0.1  # relative jitter of an object's side around its size class
MAX_ATTRIBUTE_DRAWS = 1000  # redraws of a held-out attribute combination before giving up


class SceneGenerationError(RuntimeError):
    """The requested scene cannot be built (e.g. objects do not fit on the canvas)."""


@dataclass(frozen=True)
class SceneObject:
    """One object: its attributes and its axis-aligned box ``(x, y, w, h)`` in pixels."""

    shape: str
    color: str
    size: str
    box: tuple[float, float, float, float]
    rgb: tuple[int, int, int]

    @property
    def center(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return x + w / 2, y + h / 2


@dataclass(frozen=True)
class Scene:
    """A sampled scene: its objects and the canvas it is drawn on."""

    image_size: int
    background: int
    objects: tuple[SceneObject, ...]
    noise_seed: int


def scene_rng(data_seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of one scene, independent of every other scene."""
    return np.random.default_rng(np.random.SeedSequence([data_seed, SPLIT_CODES[split], index]))


def _overlaps(a: tuple[float, ...], b: tuple[float, ...], gap: float) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return not (ax + aw + gap <= bx or bx + bw + gap <= ax or ay + ah + gap <= by or by + bh + gap <= ay)


def _draw_attributes(
    rng: np.random.Generator, spec: dict[str, Any], held_out: Sequence[Mapping[str, str]]
) -> tuple[str, str, str]:
    """(shape, color, size) drawn uniformly, redrawn while they match a held-out combination.

    Without combinations this is exactly one draw of each, so the stream is unchanged."""
    for _ in range(MAX_ATTRIBUTE_DRAWS):
        shape = str(rng.choice(spec["shapes"]))
        color = str(rng.choice(spec["colors"]))
        size = str(rng.choice(sorted(spec["sizes"])))
        if not any(matches({"shape": shape, "color": color, "size": size}, c) for c in held_out):
            return shape, color, size
    raise SceneGenerationError(
        f"{MAX_ATTRIBUTE_DRAWS} attribute draws in a row matched a held-out combination: hold out fewer"
    )


def sample_scene(rng: np.random.Generator, spec: dict[str, Any], held_out: Sequence[Mapping[str, str]] = ()) -> Scene:
    """Sample objects with non-overlapping boxes (1 px gap) inside the canvas.

    ``held_out``: attribute combinations no object may match (:mod:`benchmark.data.compositional`);
    a matching draw is redrawn from the same stream."""
    size_px = spec["image_size"]
    low, high = spec["objects_per_scene"]["min"], spec["objects_per_scene"]["max"]
    count = int(rng.integers(low, high + 1))
    objects: list[SceneObject] = []
    for _ in range(count):
        for _attempt in range(200):
            shape, color, size = _draw_attributes(rng, spec, held_out)
            side = spec["sizes"][size] * size_px * float(rng.uniform(1 - SIZE_JITTER, 1 + SIZE_JITTER))
            x = float(rng.uniform(0, size_px - side))
            y = float(rng.uniform(0, size_px - side))
            box = (round(x, 2), round(y, 2), round(side, 2), round(side, 2))
            if not any(_overlaps(box, other.box, gap=1.0) for other in objects):
                break
        else:
            raise SceneGenerationError(
                f"could not place object {len(objects) + 1} of {count} on a {size_px}px canvas: "
                "raise image_size or lower objects_per_scene.max / sizes.large"
            )
        base = np.array(COLOR_RGB[color])
        rgb = tuple(int(v) for v in np.clip(base + rng.integers(-COLOR_JITTER, COLOR_JITTER + 1, 3), 0, 255))
        objects.append(SceneObject(shape, color, size, box, rgb))  # type: ignore[arg-type]
    background = int(rng.integers(BACKGROUND_RANGE[0], BACKGROUND_RANGE[1] + 1))
    return Scene(size_px, background, tuple(objects), int(rng.integers(0, 2**31 - 1)))


def _draw_shape(draw: ImageDraw.ImageDraw, obj: SceneObject) -> None:
    x, y, w, h = (v * SUPERSAMPLE for v in obj.box)
    x1, y1 = x + w, y + h
    mx, my = x + w / 2, y + h / 2
    if obj.shape == "circle":
        draw.ellipse((x, y, x1, y1), fill=obj.rgb)
    elif obj.shape == "square":
        draw.rectangle((x, y, x1, y1), fill=obj.rgb)
    elif obj.shape == "triangle":
        draw.polygon([(mx, y), (x1, y1), (x, y1)], fill=obj.rgb)
    elif obj.shape == "diamond":
        draw.polygon([(mx, y), (x1, my), (mx, y1), (x, my)], fill=obj.rgb)
    elif obj.shape == "cross":
        third_w, third_h = w / 3, h / 3
        draw.rectangle((x + third_w, y, x1 - third_w, y1), fill=obj.rgb)
        draw.rectangle((x, y + third_h, x1, y1 - third_h), fill=obj.rgb)
    else:
        raise SceneGenerationError(f"unknown shape {obj.shape!r}")


def render_scene(scene: Scene) -> Image.Image:
    """Draw the scene: supersampled shapes, box-filtered down, plus faint pixel noise."""
    big = scene.image_size * SUPERSAMPLE
    canvas = Image.new("RGB", (big, big), (scene.background,) * 3)
    draw = ImageDraw.Draw(canvas)
    for obj in scene.objects:
        _draw_shape(draw, obj)
    small = canvas.resize((scene.image_size, scene.image_size), Image.Resampling.BOX)
    noise = np.random.default_rng(scene.noise_seed).normal(
        0.0, PIXEL_NOISE_STD, (scene.image_size, scene.image_size, 3)
    )
    pixels = np.clip(np.asarray(small, dtype=np.float64) + noise, 0, 255).round().astype(np.uint8)
    return Image.fromarray(pixels, mode="RGB")
