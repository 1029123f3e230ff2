"""The 19 ImageNet-C corruptions plus Cutout at severities 1–5, as batched torch operations (GPU when there is one).

Why one module of ~900 lines: it mirrors ImageNet-C's ``make_imagenet_c.py`` (and its CIFAR and Tiny
siblings) corruption for corruption, with the three parameter tables beside the operations, so that a
reviewer can read each one against its reference side by side; more than half of it is that table and
the departures below.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations" (ICLR 2019), published one parameter table per image size, in
github.com/hendrycks/robustness, ``ImageNet-C/create_c/``:

* ``make_cifar_c.py`` — CIFAR-10-C, 32 px (table ``cifar10_c``);
* ``make_tinyimagenet_c.py`` — Tiny-ImageNet-C, 64 px (table ``tiny_imagenet_c``);
* ``make_imagenet_c.py`` — ImageNet-C, 224 px (table ``imagenet_c``).

A blur radius or a noise level means something different on a 32-px and a 224-px image, so
the table follows the image's side s = min(H, W) (:func:`table_for`): **CIFAR-10-C for s ≤ 32,
Tiny-ImageNet-C for 33 ≤ s ≤ 119, ImageNet-C for s ≥ 120**. Each table covers the sizes up to
its own; above 64 px the nearer of 64 and 224 on a log scale wins (√(64·224) ≈ 119.7). So the
smoke profile (32 px) uses CIFAR-10-C, the default scenes (48 px) and 64-px images
Tiny-ImageNet-C, and 128-px or 224-px images ImageNet-C. Parameters are used as published,
in pixels, except where the source itself writes them as fractions of the image side:
``elastic_transform`` (``IMSIZE · f``; ImageNet-C's ``244 · f``, "should have been 224") is
scaled to the real side, s · IMSIZE / table size, and fog's plasma map is the smallest power
of two ≥ max(H, W) (256, 64, 32 at the published sizes). :func:`corruption_parameters` is the
one lookup every corruption goes through; ``PARAMETERS`` holds the tables, per severity 1…5:

==================  ==========================================================================
corruption          ImageNet-C (224 px) parameters, and what they are
==================  ==========================================================================
gaussian_noise      σ = .08 .12 .18 .26 .38 — x + N(0, σ²)
shot_noise          λ = 60 25 12 5 3 — Poisson(λx) / λ
impulse_noise       amount = .03 .06 .09 .17 .27 — salt & pepper (skimage ``s&p``)
speckle_noise       σ = .15 .2 .35 .45 .6 — x + x · N(0, σ²)
gaussian_blur       σ = 1 2 3 4 6 — Gaussian (skimage: ``nearest`` edges, truncate 4σ)
glass_blur          (σ, δ, n) = (.7,1,2) (.9,2,1) (1,2,3) (1.1,3,2) (1.5,4,2) — blur σ, quantise
                    to 8 bits, n passes over the interior bottom-right to top-left, each pixel
                    taking the value then at its offset (dx, dy) in [−δ, δ)², blur σ
defocus_blur        (r, α) = (3,.1) (4,.5) (6,.5) (8,.5) (10,.5) — disk of radius r, anti-aliased
                    by a Gaussian of σ α (17×17 support and 3×3 Gaussian for r ≤ 8, else
                    (2r+1)² and 5×5), per channel, reflect-101 edges
motion_blur         (r, σ) = (10,3) (15,5) (15,8) (15,12) (20,15) — ImageMagick's one-sided
                    Gaussian line: taps i = 0 … 2r at (⌈i·cos θ − ½⌉, ⌈i·sin θ − ½⌉) (y down),
                    weights ∝ exp(−i²/2σ²), at a random angle θ in [−45°, 45°], edges repeated
zoom_blur           zooms 1, 1+d, …, the values of np.arange(1, stop, d) with stop = 1.11 1.16
                    1.21 1.26 1.31 and d = .01 .01 .02 .02 .03: 12 16 11 13 11 zooms, the last
                    1.11 1.15 1.20 1.24 1.30 — mean of the image and its centre zooms
snow                (μ, σ, z, t, r, σ_m, b) = (.1,.3,3,.5,10,4,.8) (.2,.3,2,.5,12,4,.7)
                    (.55,.3,4,.9,12,8,.7) (.55,.3,4.5,.85,12,8,.65) (.55,.3,2.5,.85,12,12,.55) —
                    N(μ, σ²) layer, centre zoom z, zero below t, motion blur (r, σ_m) at an angle
                    in [−135°, −45°]; image b·x + (1−b)·max(x, 1.5·grey + .5), plus the layer
                    and the layer turned 180°
frost               (a, b) = (1,.4) (.8,.6) (.7,.7) (.65,.7) (.6,.75) — a·x + b·frost photograph
fog                 (a, decay) = (1.5,2) (2,2) (2.5,1.7) (2.5,1.5) (3,1.4) — plasma fractal
                    (diamond-square, wibble ÷ decay per level) p: (x + a·p) · M / (M + a), M the
                    image's maximum
brightness          Δ = .1 .2 .3 .4 .5 — HSV value + Δ
contrast            c = .4 .3 .2 .1 .05 — (x − mean) · c + mean, per image and channel
elastic_transform   (α, σ, a) = 244 × (2,.7,.1) (2,.08,.2) (.05,.01,.02) (.07,.01,.02)
                    (.12,.01,.02) — affine jitter a of three points, then a displacement field
                    α · Gaussian_σ(U(−1, 1)) per axis, bilinear
pixelate            f = .6 .5 .4 .3 .25 — BOX-resample to f·size and back (PIL's BOX)
jpeg                quality = 25 18 15 10 7 — Pillow JPEG round trip
spatter             (μ, σ, s, t, k, mud) = (.65,.3,4,.69,.6,0) (.65,.3,3,.68,.6,0)
                    (.65,.3,2,.68,.5,0) (.65,.3,1,.65,1.5,1) (.67,.4,1,.65,1.5,1) — blurred
                    N(μ, σ²) layer zeroed below t: water (mud = 0) or mud (mud = 1)
saturate            (k, c) = (.3,0) (.1,0) (2,0) (5,.1) (20,.2) — HSV saturation · k + c
occlusion           side = .2 .3 .4 .5 .6 of the image — one mid-grey square (all sizes)
==================  ==========================================================================

The other two tables are in ``PARAMETERS``; the operations are the same. ``occlusion`` is
Cutout (DeVries & Taylor 2017), not part of ImageNet-C; ``speckle_noise``, ``gaussian_blur``,
``spatter`` and ``saturate`` are ImageNet-C's four held-out extras.

**frost** reads ImageNet-C's six frost photographs from the ``imagecorruptions`` package (Apache-2.0,
a pinned dependency; their sha256 are recorded in each robustness result, :func:`frost_photo_digests`)
and crops them as the three sources do: a 224-px crop of the photograph (ImageNet-C), a 64-px crop of it
scaled by 0.3 (Tiny), a 32-px crop scaled by 0.2 (CIFAR); at other sizes the scale is proportional to the
side, so a crop covers the same share of a photograph as at the table's size.

Departures from ImageNet-C, where it calls a library we re-implement in torch:

* **motion_blur**, snow's motion blur: ImageMagick's ``MotionBlurImage`` (through Wand in
  ImageNet-C) tap for tap, with its default edge virtual pixels; in floating point, rounded to
  8 bits once (ImageMagick: 16-bit quanta, then the 8-bit PNG), so a level may differ by one.
* **spatter** (water): Canny (Sobel 3×3 on replicated edges, L1 magnitude, non-maximum
  suppression, hysteresis 50/150) as OpenCV; the distance to the nearest edge is exact
  Euclidean (OpenCV: a 5×5 chamfer approximation), truncated at 20; OpenCV's box blur,
  histogram equalisation and emboss filter with 8-bit saturation are reproduced.
* **elastic_transform**: ``cv2.warpAffine`` and scipy's ``map_coordinates`` become two
  bilinear ``grid_sample`` calls with the same edge rules (reflect-101, then reflect).
* **zoom_blur**, snow's zoom: scipy's linear ``zoom`` as torch's bilinear ``interpolate`` (aligned corners).
* **defocus_blur**: the anti-aliasing Gaussian pads the disk with zeros. ``cv2.GaussianBlur``
  reflects (reflect-101), which folds the rim of a disk reaching the support's edge (r = 8 and
  r = 10, ImageNet-C severities 4 and 5) back in: its kernel sums to 1.013 and 1.011, so
  ImageNet-C's defocus also brightens by about 1 %; ours, zero-padded, sums to 0.998 and 0.999.
* **pixelate**: PIL's BOX coefficients as matrices, without PIL's 8-bit rounding between passes.
* **saturate**, **brightness**: skimage's HSV round trip in closed form; as in skimage, a grey
  pixel has hue 0, so saturate's shift c > 0 (severities 4, 5) tints greys red.
* Non-square images: ImageNet-C assumes squares; we apply each axis with its own length.

**glass_blur** is not a departure: its pixel "swap" ``x[h, w], x[h', w'] = x[h', w'], x[h, w]``
on numpy views copies (h', w') into (h, w) and leaves (h', w') as it was, so a pass is a
sequential chain of copies, not a permutation; :func:`_glass_shuffle` reproduces it exactly.

Randomness is per example: the noise, angle, texture or square of image ``i`` is drawn from a
generator seeded by (image id, corruption, severity), so the corrupted test set is identical
for every method, every run and any batching. Draws are made on the CPU; the arithmetic runs
on the images' device, except JPEG (a Pillow round trip, as ImageNet-C).
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from benchmark.io import sha256_file
from benchmark.seeding import torch_generator

Corruption = Callable[[torch.Tensor, int, Sequence[int]], torch.Tensor]

TABLE_SIZES = {"cifar10_c": 32, "tiny_imagenet_c": 64, "imagenet_c": 224}
"""The image side each published table was made for."""

ELASTIC_UNIT = {"cifar10_c": 32, "tiny_imagenet_c": 64, "imagenet_c": 244}
"""The ``IMSIZE`` that elastic_transform's fractions multiply in each source file."""


def _tables(cifar: Sequence[Any], tiny: Sequence[Any], imagenet: Sequence[Any]) -> dict[str, tuple[Any, ...]]:
    return {"cifar10_c": tuple(cifar), "tiny_imagenet_c": tuple(tiny), "imagenet_c": tuple(imagenet)}


PARAMETERS: dict[str, dict[str, tuple[Any, ...]]] = {
    "gaussian_noise": _tables(
        (0.04, 0.06, 0.08, 0.09, 0.10), (0.04, 0.08, 0.12, 0.15, 0.18), (0.08, 0.12, 0.18, 0.26, 0.38)
    ),
    "shot_noise": _tables((500, 250, 100, 75, 50), (250, 100, 50, 30, 15), (60, 25, 12, 5, 3)),
    "impulse_noise": _tables(
        (0.01, 0.02, 0.03, 0.05, 0.07), (0.01, 0.02, 0.05, 0.08, 0.14), (0.03, 0.06, 0.09, 0.17, 0.27)
    ),
    "speckle_noise": _tables((0.06, 0.1, 0.12, 0.16, 0.2), (0.15, 0.2, 0.25, 0.3, 0.35), (0.15, 0.2, 0.35, 0.45, 0.6)),
    "gaussian_blur": _tables((0.4, 0.6, 0.7, 0.8, 1), (0.5, 0.75, 1, 1.25, 1.5), (1, 2, 3, 4, 6)),
    "glass_blur": _tables(  # (σ, max offset δ, iterations)
        ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
        ((0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2)),
        ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
    ),
    "defocus_blur": _tables(  # (disk radius, alias blur σ)
        ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
        ((0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1)),
        ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)),
    ),
    "motion_blur": _tables(  # (radius, σ)
        ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
        ((10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3)),
        ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15)),
    ),
    "zoom_blur": _tables(  # (number of zooms, step): np.arange(1, stop, step) has these many values
        ((7, 0.01), (12, 0.01), (16, 0.01), (21, 0.01), (26, 0.01)),
        ((7, 0.01), (12, 0.01), (16, 0.01), (21, 0.01), (26, 0.01)),
        ((12, 0.01), (16, 0.01), (11, 0.02), (13, 0.02), (11, 0.03)),
    ),
    "snow": _tables(  # (mean, std, zoom, threshold, motion radius, motion σ, blend)
        (
            (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
            (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
        ),
        (
            (0.1, 0.2, 1, 0.6, 8, 3, 0.8),
            (0.1, 0.2, 1, 0.5, 10, 4, 0.8),
            (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),
            (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65),
            (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6),
        ),
        (
            (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
            (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
            (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
            (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
            (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
        ),
    ),
    "frost": _tables(  # (image weight, frost weight)
        ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
        ((1, 0.3), (0.9, 0.4), (0.8, 0.45), (0.75, 0.5), (0.7, 0.55)),
        ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
    ),
    "fog": _tables(  # (fog weight, wibble decay)
        ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
        ((0.4, 3), (0.7, 3), (1, 2.5), (1.5, 2), (2, 1.75)),
        ((1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)),
    ),
    "brightness": _tables((0.05, 0.1, 0.15, 0.2, 0.3), (0.1, 0.2, 0.3, 0.4, 0.5), (0.1, 0.2, 0.3, 0.4, 0.5)),
    "contrast": _tables((0.75, 0.5, 0.4, 0.3, 0.15), (0.4, 0.3, 0.2, 0.1, 0.05), (0.4, 0.3, 0.2, 0.1, 0.05)),
    "elastic_transform": _tables(  # (α, σ, affine jitter) as fractions of ELASTIC_UNIT
        ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)),
        ((0, 0, 0.08), (0.05, 0.3, 0.06), (0.1, 0.08, 0.06), (0.1, 0.03, 0.03), (0.16, 0.03, 0.02)),
        ((2, 0.7, 0.1), (2, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02), (0.12, 0.01, 0.02)),
    ),
    "pixelate": _tables((0.95, 0.9, 0.85, 0.75, 0.65), (0.9, 0.8, 0.7, 0.6, 0.5), (0.6, 0.5, 0.4, 0.3, 0.25)),
    "jpeg": _tables((80, 65, 58, 50, 40), (65, 58, 50, 40, 25), (25, 18, 15, 10, 7)),
    "spatter": _tables(  # (mean, std, blur σ, threshold, intensity / mud blur σ, mud?)
        (
            (0.62, 0.1, 0.7, 0.7, 0.5, 0),
            (0.65, 0.1, 0.8, 0.7, 0.5, 0),
            (0.65, 0.3, 1, 0.69, 0.5, 0),
            (0.65, 0.1, 0.7, 0.69, 0.6, 1),
            (0.65, 0.1, 0.5, 0.68, 0.6, 1),
        ),
        (
            (0.62, 0.1, 0.7, 0.7, 0.6, 0),
            (0.65, 0.1, 0.8, 0.7, 0.6, 0),
            (0.65, 0.3, 1, 0.69, 0.6, 0),
            (0.65, 0.1, 0.7, 0.68, 0.6, 1),
            (0.65, 0.1, 0.5, 0.67, 0.6, 1),
        ),
        (
            (0.65, 0.3, 4, 0.69, 0.6, 0),
            (0.65, 0.3, 3, 0.68, 0.6, 0),
            (0.65, 0.3, 2, 0.68, 0.5, 0),
            (0.65, 0.3, 1, 0.65, 1.5, 1),
            (0.67, 0.4, 1, 0.65, 1.5, 1),
        ),
    ),
    "saturate": _tables(  # (saturation scale, shift)
        ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
        ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (30, 0.2)),
        ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)),
    ),
    "occlusion": _tables(*[(0.2, 0.3, 0.4, 0.5, 0.6)] * 3),  # Cutout side; not ImageNet-C, one table
}
OCCLUSION_GREY = 0.5


def table_for(image_size: int) -> str:
    """The published table used for images of side ``image_size``: ``cifar10_c`` (≤ 32 px),
    ``tiny_imagenet_c`` (33–119 px) or ``imagenet_c`` (≥ 120 px). Record it next to results."""
    if image_size <= TABLE_SIZES["cifar10_c"]:
        return "cifar10_c"
    if image_size < math.sqrt(TABLE_SIZES["tiny_imagenet_c"] * TABLE_SIZES["imagenet_c"]):
        return "tiny_imagenet_c"
    return "imagenet_c"


def corruption_parameters(name: str, severity: int, image_size: int) -> Any:
    """Parameters of ``name`` at ``severity`` (1–5) for images of side ``image_size``, from
    :func:`table_for`'s table; elastic_transform's are returned in pixels of this image."""
    table = table_for(image_size)
    params = PARAMETERS[name][table][severity - 1]
    if name == "elastic_transform":
        unit = ELASTIC_UNIT[table] * image_size / TABLE_SIZES[table]
        return tuple(f * unit for f in params)
    return params


def _params(x: torch.Tensor, name: str, severity: int) -> Any:
    return corruption_parameters(name, severity, min(x.shape[-2:]))


def _per_example(
    ids: Sequence[int], name: str, severity: int, draw: Callable[[torch.Generator], torch.Tensor]
) -> torch.Tensor:
    """Stack one CPU draw per example, each from its own seeded generator."""
    return torch.stack([draw(torch_generator("image-corruption", int(i), name, severity)) for i in ids])


# ----------------------------------------------------------------------------- noise


def gaussian_noise(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    noise = _per_example(ids, "gaussian_noise", severity, lambda g: torch.randn(x.shape[1:], generator=g))
    return x + noise.to(x.device) * _params(x, "gaussian_noise", severity)


def shot_noise(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    lam = _params(x, "shot_noise", severity)
    rates = (x * lam).cpu()
    counts = torch.stack(
        [
            torch.poisson(rates[k], generator=torch_generator("image-corruption", int(i), "shot_noise", severity))
            for k, i in enumerate(ids)
        ]
    )
    return counts.to(x.device) / lam


def impulse_noise(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    amount = _params(x, "impulse_noise", severity)
    u = _per_example(ids, "impulse_noise", severity, lambda g: torch.rand((2, *x.shape[1:]), generator=g)).to(x.device)
    hit, salt = u[:, 0] < amount, u[:, 1] < 0.5  # skimage 's&p': salt_vs_pepper = 0.5
    return torch.where(hit, salt.to(x.dtype), x)


def speckle_noise(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    noise = _per_example(ids, "speckle_noise", severity, lambda g: torch.randn(x.shape[1:], generator=g))
    return x + x * noise.to(x.device) * _params(x, "speckle_noise", severity)


# ----------------------------------------------------------------------------- filters


def _depthwise(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve every channel of every image with ``kernel`` (k×k, or B×k×k per image), reflect-padded."""
    b, c, h, w = x.shape
    k = kernel.shape[-1]
    padded = (
        F.pad(x, (k // 2,) * 4, mode="reflect") if k // 2 < min(h, w) else F.pad(x, (k // 2,) * 4, mode="replicate")
    )
    if kernel.ndim == 2:
        weight = kernel.to(x)[None, None].expand(c, 1, k, k)
        return F.conv2d(padded, weight, groups=c)
    weight = kernel.to(x)[:, None, None].expand(b, c, 1, k, k).reshape(b * c, 1, k, k)
    return F.conv2d(padded.reshape(1, b * c, *padded.shape[-2:]), weight, groups=b * c).reshape(b, c, h, w)


def _gaussian_kernel(size: int, sigma: float) -> torch.Tensor:
    axis = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(axis**2) / (2 * sigma**2))
    kernel = torch.outer(g, g)
    return kernel / kernel.sum()


@functools.lru_cache(maxsize=64)
def _gaussian_matrix(n: int, sigma: float, mode: str, truncate: float) -> torch.Tensor:
    """scipy's ``gaussian_filter1d`` on a length-``n`` axis as an n×n matrix (float64).

    ``mode``: ``nearest`` (edge value repeated) or ``reflect`` (d c b a | a b c d); the
    kernel's radius is ``int(truncate·σ + 0.5)``, and may exceed the axis (folded back).
    """
    if sigma <= 0:
        return torch.eye(n, dtype=torch.float64)
    radius = int(truncate * sigma + 0.5)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (taps / sigma) ** 2)
    weights /= weights.sum()
    source = torch.arange(n)[:, None] + taps.long()[None, :]
    if mode == "nearest":
        source = source.clamp(0, n - 1)
    else:
        source = source % (2 * n)
        source = torch.where(source < n, source, 2 * n - 1 - source)
    matrix = torch.zeros(n, n, dtype=torch.float64)
    matrix.scatter_add_(1, source, weights.expand(n, -1).contiguous())
    return matrix


def _gaussian_blur(x: torch.Tensor, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> torch.Tensor:
    """skimage's ``gaussian`` (per channel) on B×C×H×W: separable, as two matrix products."""
    h, w = x.shape[-2:]
    rows = _gaussian_matrix(h, float(sigma), mode, truncate).to(x)
    cols = _gaussian_matrix(w, float(sigma), mode, truncate).to(x)
    return rows @ x @ cols.t()


def gaussian_blur(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    return _gaussian_blur(x, _params(x, "gaussian_blur", severity))


def _glass_interior(h: int, w: int, delta: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and columns of the pixels ImageNet-C's glass blur visits, in its order: rows
    ``range(h − δ, δ, −1)``, and in each row columns ``range(w − δ, δ, −1)`` (each flattened)."""
    rows, cols = torch.arange(h - delta, delta, -1), torch.arange(w - delta, delta, -1)
    return rows.repeat_interleave(len(cols)), cols.repeat(len(rows))


def _glass_shuffle(x: torch.Tensor, offsets: torch.Tensor, delta: int) -> torch.Tensor:
    """One pass of ImageNet-C's local shuffle on B×C×H×W, exactly, without a Python loop over pixels.

    ``offsets``: B × n × 2, the (dx, dy) drawn for the n visited pixels in visiting order
    (:func:`_glass_interior`). The source's ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` on an
    H×W×3 array swaps nothing: the right side holds *views*, so x[h, w] receives pixel
    (h', w') = (h + dy, w + dx) and x[h', w'] is then written back with that same value. Each
    visited pixel is therefore written once, when visited, with the value (h', w') holds at that
    moment: its final value if (h', w') is a visited pixel that came earlier (a lower row, or the
    same row further right), its value before the pass otherwise. Following these links to their
    first "otherwise" gives every pixel's source; the links are resolved for all pixels at once by
    pointer doubling (each round halves every remaining chain), so the result is identical to the
    sequential loop.
    """
    b, c, h, w = x.shape
    rows, cols = (t.to(x.device) for t in _glass_interior(h, w, delta))
    if rows.numel() == 0:
        return x
    offsets = offsets.to(x.device).long()
    src_rows, src_cols = rows + offsets[..., 1], cols + offsets[..., 0]  # B × n
    visited = (src_rows > delta) & (src_rows <= h - delta) & (src_cols > delta) & (src_cols <= w - delta)
    earlier = visited & ((src_rows > rows) | ((src_rows == rows) & (src_cols > cols)))
    pixel = (rows * w + cols).expand(b, -1)
    pointer = torch.arange(h * w, device=x.device).repeat(b, 1)  # B × HW: where each pixel's value comes from
    pointer.scatter_(1, pixel, src_rows * w + src_cols)
    done = torch.ones(b, h * w, dtype=torch.bool, device=x.device)
    done.scatter_(1, pixel, ~earlier)  # not done: the value is the (final) value at ``pointer``
    while not bool(done.all()):
        pointer, done = torch.where(done, pointer, pointer.gather(1, pointer)), done | done.gather(1, pointer)
    return x.flatten(2).gather(2, pointer[:, None].expand(b, c, -1)).view(b, c, h, w)


def glass_blur(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    """Blur, shuffle pixels locally (8-bit image, as ImageNet-C), blur again.

    Each pass visits the interior bottom-right to top-left and draws one (dx, dy) in [−δ, δ)² per
    pixel, reproducing ImageNet-C's loop exactly (:func:`_glass_shuffle`).
    """
    sigma, delta, iterations = _params(x, "glass_blur", severity)
    h, w = x.shape[-2:]
    x = torch.floor(_gaussian_blur(x, sigma) * 255 + 1e-3)  # np.uint8(...) truncates (slack: float rounding)
    visits = _glass_interior(h, w, delta)[0].numel()
    offsets = _per_example(
        ids,
        "glass_blur",
        severity,
        lambda g: torch.randint(-delta, delta, (iterations, visits, 2), generator=g, dtype=torch.int8),
    )
    for step in range(iterations):
        x = _glass_shuffle(x, offsets[:, step], delta)
    return _gaussian_blur(x / 255, sigma)


def _disk(radius: float, alias_blur: float) -> torch.Tensor:
    """ImageNet-C's anti-aliased disk: 17×17 support and a 3×3 Gaussian of σ = alias_blur for
    radius ≤ 8, else (2r+1)² support and a 5×5 Gaussian, zero beyond the support (see the module's
    departures)."""
    reach, size = (8, 3) if radius <= 8 else (int(radius), 5)
    support = torch.arange(-reach, reach + 1, dtype=torch.float64)
    yy, xx = torch.meshgrid(support, support, indexing="ij")
    disk = ((xx**2 + yy**2) <= radius**2).double()
    disk /= disk.sum()
    kernel = _gaussian_kernel(size, alias_blur)[None, None]
    return F.conv2d(disk[None, None], kernel, padding=size // 2)[0, 0]


def defocus_blur(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    radius, alias = _params(x, "defocus_blur", severity)
    return _depthwise(x, _disk(radius, alias))


MAGICK_EPSILON = 1e-12
QUANTUM_SCALE = 1 / 65535
"""ImageMagick's ``MagickEpsilon`` and ``QuantumScale`` (1/QuantumRange of the default Q16 build)."""


def _optimal_kernel_width(radius: float, sigma: float) -> int:
    """ImageMagick's ``GetOptimalKernelWidth1D``: 2⌈r⌉ + 1 for r > 0 (every published row); for
    r = 0 the narrowest odd width whose outermost normalised Gaussian tap is below 1/65535."""
    if radius > MAGICK_EPSILON:
        return int(2 * math.ceil(radius) + 1)
    gamma = abs(sigma)
    if gamma <= MAGICK_EPSILON:
        return 3
    alpha, beta = 1 / (2 * gamma * gamma), 1 / (math.sqrt(2 * math.pi) * gamma)
    width = 5
    while True:
        j = (width - 1) // 2
        normalize = sum(math.exp(-(i * i) * alpha) * beta for i in range(-j, j + 1))
        value = math.exp(-(j * j) * alpha) * beta / normalize
        if value < QUANTUM_SCALE or value < MAGICK_EPSILON:
            return width - 2
        width += 2


def _motion_taps(radius: float, sigma: float, angle_degrees: float) -> tuple[list[int], list[int], list[float]]:
    """ImageMagick's ``MotionBlurImage`` kernel: taps i = 0 … width − 1 (width from
    :func:`_optimal_kernel_width`) at integer offsets (⌈i·cos θ − ½⌉, ⌈i·sin θ − ½⌉), y down,
    weighted exp(−i²/2σ²) / Σ. Output (x, y) is Σ weight_i · input(x + dx_i, y + dy_i)."""
    width = _optimal_kernel_width(radius, sigma)
    s = sigma if abs(sigma) >= MAGICK_EPSILON else MAGICK_EPSILON  # MagickSigma
    weights = [math.exp(-(i * i) / (2 * s * s)) for i in range(width)]
    total = sum(weights)
    theta = math.pi * angle_degrees / 180  # DegreesToRadians
    point_x, point_y = width * math.sin(theta), width * math.cos(theta)
    norm = math.hypot(point_x, point_y)
    dx = [math.ceil(i * point_y / norm - 0.5) for i in range(width)]
    dy = [math.ceil(i * point_x / norm - 0.5) for i in range(width)]
    return dx, dy, [w / total for w in weights]


def _motion_blur(x: torch.Tensor, radius: float, sigma: float, angles: torch.Tensor) -> torch.Tensor:
    """ImageMagick's motion blur of each image at its own angle, edge pixels repeated beyond the
    border (its default ``Edge`` virtual pixels): a weighted sum of shifted copies, one per tap."""
    h, w = x.shape[-2:]
    taps = [_motion_taps(radius, sigma, float(a)) for a in angles]
    pad = max(max(map(abs, dx + dy)) for dx, dy, _ in taps)
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    out = torch.zeros_like(x)
    for k, (dx, dy, weights) in enumerate(taps):
        for i, weight in enumerate(weights):
            top, left = pad + dy[i], pad + dx[i]
            out[k] += weight * padded[k, :, top : top + h, left : left + w]
    return out


def motion_blur(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    radius, sigma = _params(x, "motion_blur", severity)
    angles = _per_example(ids, "motion_blur", severity, lambda g: torch.empty(()).uniform_(-45, 45, generator=g))
    return _motion_blur(x, radius, sigma, angles)


def _zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """ImageNet-C's ``clipped_zoom``: crop ⌈n/z⌉ at the centre of each axis, scipy's linear ``zoom``
    to round(⌈n/z⌉·z) (output i samples input i·(in−1)/(out−1): bilinear with aligned corners),
    keep the centre n."""
    h, w = x.shape[-2:]
    crop_h, crop_w = math.ceil(h / factor), math.ceil(w / factor)
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    out_h, out_w = round(crop_h * factor), round(crop_w * factor)
    crop = x[..., top : top + crop_h, left : left + crop_w]
    zoomed = F.interpolate(crop, size=(out_h, out_w), mode="bilinear", align_corners=True)
    trim_h, trim_w = (out_h - h) // 2, (out_w - w) // 2
    return zoomed[..., trim_h : trim_h + h, trim_w : trim_w + w]


def zoom_blur(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    """Mean of the image and its centre zooms by 1, 1 + d, …, 1 + (n − 1)·d: the values of the
    source's ``np.arange(1, stop, d)``, n of them (``PARAMETERS``; the module docstring lists them)."""
    count, step = _params(x, "zoom_blur", severity)
    out = x.clone()
    for k in range(count):
        out += _zoom(x, 1 + k * step)
    return out / (count + 1)


# ----------------------------------------------------------------------------- weather


def _grey(x: torch.Tensor) -> torch.Tensor:
    """OpenCV's RGB2GRAY: 0.299 R + 0.587 G + 0.114 B, B×1×H×W."""
    weights = torch.tensor([0.299, 0.587, 0.114]).to(x)
    return (x * weights[:, None, None]).sum(1, keepdim=True)


def snow(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    mean, std, zoom, threshold, radius, sigma, blend = _params(x, "snow", severity)
    h, w = x.shape[-2:]
    draws = _per_example(
        ids,
        "snow",
        severity,
        lambda g: torch.cat([torch.randn(h * w, generator=g), torch.empty(1).uniform_(-135, -45, generator=g)]),
    )
    layer = (draws[:, : h * w].view(-1, 1, h, w) * std + mean).to(x)
    layer = _zoom(layer, zoom)
    layer = torch.where(layer < threshold, 0.0, layer)
    layer = torch.floor(layer.clamp(0, 1) * 255) / 255  # 8-bit PNG, as ImageNet-C
    layer = torch.round(_motion_blur(layer, radius, sigma, draws[:, -1]) * 255) / 255
    x = blend * x + (1 - blend) * torch.maximum(x, _grey(x) * 1.5 + 0.5)
    return x + layer + layer.flip(-2, -1)


FROST_PHOTOS = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")
"""ImageNet-C's frost photographs, as the ``imagecorruptions`` package ships them (Apache-2.0)."""

FROST_DRAWN = 5
"""ImageNet-C draws ``np.random.randint(5)``: the first five photographs; frost6.jpg is never used."""

FROST_SCALE = {"cifar10_c": 0.2, "tiny_imagenet_c": 0.3, "imagenet_c": 1.0}
"""How much each table's source scales a photograph before cropping its image (``cv2.resize(fx=fy=·)``)."""


def frost_photo_paths() -> list[Path]:
    """The six photographs in the installed ``imagecorruptions`` package (a dependency)."""

    spec = find_spec("imagecorruptions")  # located, not imported (its import needs pkg_resources)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("frost needs the imagecorruptions package (pyproject.toml pins it): not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / "frost"
    paths = [folder / name for name in FROST_PHOTOS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"frost photographs missing from the imagecorruptions package: {missing}")
    return paths


def frost_photo_digests() -> dict[str, str]:
    """photograph name → sha256 of the file read (for the robustness result's provenance)."""

    return {path.name: sha256_file(path) for path in frost_photo_paths()}


@functools.cache
def _frost_photo(index: int) -> torch.Tensor:
    """Photograph ``index`` as 3×H×W floats in [0, 1], RGB (cv2.imread's colour read: alpha dropped)."""

    with Image.open(frost_photo_paths()[index]) as photo:
        array = np.asarray(photo.convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


@functools.lru_cache(maxsize=32)
def _scaled_frost_photo(index: int, scale: float) -> torch.Tensor:
    """The photograph resized by ``scale`` as ``cv2.resize(fx=fy=scale)`` (bilinear, half-pixel centres, output
    side round(side · scale)), rounded to 8 bits as cv2 returns it; unscaled at 1."""
    photo = _frost_photo(index)
    if scale == 1:
        return photo
    size = (round(photo.shape[1] * scale), round(photo.shape[2] * scale))
    resized = F.interpolate(photo[None], size=size, mode="bilinear", align_corners=False)[0]
    return torch.round(resized.clamp(0, 1) * 255) / 255


def _frost_scale(table: str, side: int, h: int, w: int) -> float:
    """The photograph's scale for an h×w image: the table's own at its size, proportional to the side otherwise
    (a crop covers the same fraction of a photograph at every size), enlarged if a crop would not fit."""
    scale = FROST_SCALE[table] * side / TABLE_SIZES[table]
    if scale == FROST_SCALE[table]:
        return scale
    smallest = min(_frost_photo(i).shape[1:] for i in range(FROST_DRAWN))
    return max(scale, (h + 1) / smallest[0], (w + 1) / smallest[1])


def frost(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    """a·x + b·frost, frost an h×w crop of one of ImageNet-C's photographs (``make_*_c.py``'s ``frost``).

    Per example, seeded: the photograph (one of the first five, ``np.random.randint(5)``) and the crop's
    top-left corner, uniform over the positions where it fits (``randint(0, H − h)``, ``randint(0, W − w)``), in
    the photograph scaled as the table's source scales it (:data:`FROST_SCALE`; proportionally at other sizes).
    """
    image_weight, frost_weight = _params(x, "frost", severity)
    h, w = x.shape[-2:]
    table = table_for(min(h, w))
    scale = _frost_scale(table, min(h, w), h, w)
    draws = _per_example(ids, "frost", severity, lambda g: torch.rand(3, generator=g, dtype=torch.float64))
    crops = []
    for u in draws.tolist():
        photo = _scaled_frost_photo(min(int(u[0] * FROST_DRAWN), FROST_DRAWN - 1), scale)
        top = int(u[1] * (photo.shape[1] - h))
        left = int(u[2] * (photo.shape[2] - w))
        crops.append(photo[:, top : top + h, left : left + w])
    return image_weight * x + frost_weight * torch.stack(crops).to(x)


def _plasma_fractal(uniform: torch.Tensor, mapsize: int, decay: float) -> torch.Tensor:
    """ImageNet-C's ``plasma_fractal`` (diamond-square) for a batch: B×m×m in [0, 1].

    ``uniform``: B × (m² − 1) draws in [0, 1), consumed level by level (squares, then the two
    diamond sets), each becoming wibble · U(−wibble, wibble) as in the source.
    """
    b = uniform.shape[0]
    maparray = torch.zeros(b, mapsize, mapsize, dtype=uniform.dtype, device=uniform.device)
    step, wibble, used = mapsize, 100.0, 0

    def wibbled_mean(total: torch.Tensor) -> torch.Tensor:
        nonlocal used
        count = total[0].numel()
        draw = uniform[:, used : used + count].view_as(total) * 2 - 1
        used += count
        return total / 4 + wibble * wibble * draw

    while step >= 2:
        half = step // 2
        corners = maparray[:, 0::step, 0::step]
        squares = corners + corners.roll(-1, 1)
        maparray[:, half::step, half::step] = wibbled_mean(squares + squares.roll(-1, 2))
        centres, corners = maparray[:, half::step, half::step], maparray[:, 0::step, 0::step]
        maparray[:, 0::step, half::step] = wibbled_mean(centres + centres.roll(1, 1) + corners + corners.roll(-1, 2))
        maparray[:, half::step, 0::step] = wibbled_mean(centres + centres.roll(1, 2) + corners + corners.roll(-1, 1))
        step //= 2
        wibble /= decay
    maparray = maparray - maparray.amin(dim=(1, 2), keepdim=True)
    return maparray / maparray.amax(dim=(1, 2), keepdim=True)


def fog(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    weight, decay = _params(x, "fog", severity)
    h, w = x.shape[-2:]
    mapsize = 1 << (max(h, w) - 1).bit_length()
    uniform = _per_example(ids, "fog", severity, lambda g: torch.rand(mapsize * mapsize - 1, generator=g))
    plasma = _plasma_fractal(uniform.to(x.device, torch.float64), mapsize, decay)[:, None, :h, :w].to(x)
    peak = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x + weight * plasma) * peak / (peak + weight)


# ----------------------------------------------------------------------------- digital


def _hsv_value_saturation(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    value = x.amax(dim=1, keepdim=True)
    spread = value - x.amin(dim=1, keepdim=True)
    return value, torch.where(value > 0, spread / value.clamp_min(1e-12), 0.0)


def brightness(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    """HSV value + Δ with hue and saturation unchanged: scale RGB by V'/V (grey where V = 0)."""
    value = x.amax(dim=1, keepdim=True)
    shifted = (value + _params(x, "brightness", severity)).clamp(max=1.0)
    return torch.where(value > 0, x * shifted / value.clamp_min(1e-12), shifted.expand_as(x))


def saturate(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    """HSV saturation S' = clip(S·k + c) with hue and value kept.

    Each channel is V·(1 − S·q) with q fixed by the hue, so channel' = V − (V − channel)·S'/S.
    A grey pixel (S = 0) has hue 0 in skimage: it becomes (V, V(1 − S'), V(1 − S')).
    """
    scale, shift = _params(x, "saturate", severity)
    value, sat = _hsv_value_saturation(x)
    new_sat = (sat * scale + shift).clamp(0, 1)
    coloured = value - (value - x) * new_sat / sat.clamp_min(1e-12)
    red = torch.tensor([1.0, 0.0, 0.0]).to(x)[:, None, None]
    grey = value * (1 - new_sat * (1 - red))
    return torch.where(sat > 0, coloured, grey)


def contrast(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    mean = x.mean(dim=(2, 3), keepdim=True)
    return (x - mean) * _params(x, "contrast", severity) + mean


def _affine_warp(x: torch.Tensor, jitter: torch.Tensor) -> torch.Tensor:
    """``cv2.warpAffine`` (bilinear, reflect-101) by the affine map moving three points by ``jitter`` (B×3×2)."""
    b, _, h, w = x.shape
    centre = torch.tensor([w // 2, h // 2], dtype=torch.float64)
    side = min(h, w) // 3
    points = torch.stack([centre + side, centre + torch.tensor([side, -side]), centre - side])  # (x, y)
    moved = points + jitter
    ones = torch.ones(3, 1, dtype=torch.float64)
    forward = torch.linalg.solve(torch.cat([points, ones], 1), moved).transpose(1, 2)  # B×2×3: dst = M·[src; 1]
    full = torch.cat([forward, torch.tensor([[[0.0, 0.0, 1.0]]], dtype=torch.float64).expand(b, 1, 3)], 1)
    inverse = torch.linalg.inv(full)[:, :2]  # dst pixel → src pixel
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    pixels = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(-1, 3)
    source = (pixels @ inverse.transpose(1, 2)).view(b, h, w, 2)
    grid = source * 2 / torch.tensor([max(w - 1, 1), max(h - 1, 1)], dtype=torch.float64) - 1
    return F.grid_sample(x, grid.to(x), mode="bilinear", padding_mode="reflection", align_corners=True)


def _elastic_draws(ids: Sequence[int], severity: int, h: int, w: int) -> torch.Tensor:
    """elastic_transform's U(−1, 1) draws per example, B × (6 + 2HW) float64: the affine jitter
    of three points (x, y), then the dx and dy fields."""
    draws = _per_example(ids, "elastic_transform", severity, lambda g: torch.rand(6 + 2 * h * w, generator=g) * 2 - 1)
    return draws.double()


def _elastic_displacement(field: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
    """The warp field α · Gaussian_σ(U) (skimage ``gaussian``, reflect, truncate 3) of B×2×H×W
    draws: (dx, dy) in pixels."""
    return _gaussian_blur(field, sigma, mode="reflect", truncate=3.0) * alpha


def elastic_transform(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    """Affine jitter, then a smooth random displacement field (Simard et al. 2003, as ImageNet-C)."""
    alpha, sigma, jitter = _params(x, "elastic_transform", severity)
    b, _, h, w = x.shape
    draws = _elastic_draws(ids, severity, h, w)
    x = _affine_warp(x, draws[:, :6].view(b, 3, 2) * jitter)
    displacement = _elastic_displacement(draws[:, 6:].view(b, 2, h, w).to(x.device), alpha, sigma)
    ys, xs = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    source_x, source_y = xs + displacement[:, 0], ys + displacement[:, 1]
    grid = torch.stack([(2 * source_x + 1) / w - 1, (2 * source_y + 1) / h - 1], -1)  # scipy 'reflect' edges
    return F.grid_sample(x, grid.to(x), mode="bilinear", padding_mode="reflection", align_corners=False)


def _box_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """PIL's BOX resampling as a size_out × size_in matrix (``precompute_coeffs``, box filter)."""
    scale = size_in / size_out
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    matrix = torch.zeros(size_out, size_in, dtype=torch.float64)
    for out in range(size_out):
        center = (out + 0.5) * scale
        low, high = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), size_in)
        for i in range(low, high):
            offset = (i - center + 0.5) / filterscale
            if -0.5 < offset <= 0.5:
                matrix[out, i] = 1.0
        matrix[out] /= matrix[out].sum()
    return matrix


def pixelate(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    h, w = x.shape[-2:]
    factor = _params(x, "pixelate", severity)
    small_h, small_w = int(h * factor), int(w * factor)
    down_h, down_w = _box_matrix(h, small_h).to(x), _box_matrix(w, small_w).to(x)
    up_h, up_w = _box_matrix(small_h, h).to(x), _box_matrix(small_w, w).to(x)
    # one image at a time: a batched matmul folds the batch into the GEMM's rows, and MKL's reproducible branch
    # (MKL_CBWR=COMPATIBLE, numerics: portable) then rounds differently by batch size; per image, every batching
    # gives every image the same bits
    return torch.stack([up_h @ (down_h @ image @ down_w.t()) @ up_w.t() for image in x]) if len(x) else x


def jpeg(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    """A JPEG encode/decode round trip with Pillow at the severity's quality (on the CPU), as ImageNet-C."""

    quality = _params(x, "jpeg", severity)
    pixels = (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    decoded = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        decoded.append(np.asarray(Image.open(buffer).convert("RGB")))
    return torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).to(x.device).float() / 255


# ----------------------------------------------------------------------------- spatter


def _filter3(x: torch.Tensor, kernel: list[list[float]], edges: str = "reflect") -> torch.Tensor:
    """3×3 correlation on B×1×H×W: OpenCV's ``filter2D`` with its default reflect-101 edges
    (``reflect``), or ``replicate`` (``BORDER_REPLICATE``, which ``cv::Canny`` passes to Sobel)."""
    weight = torch.tensor(kernel).to(x)[None, None]
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode=edges), weight)


def _canny(image: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """OpenCV's Canny on 8-bit values (B×1×H×W): Sobel 3×3 with edge pixels repeated (OpenCV's
    ``BORDER_REPLICATE``), L1 magnitude, non-maximum suppression in four directions (tan 22.5°
    sectors, magnitude 0 outside the image), hysteresis with 8-connectivity."""
    gx = _filter3(image, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], edges="replicate")
    gy = _filter3(image, [[-1, -2, -1], [0, 0, 0], [1, 2, 1]], edges="replicate")
    magnitude = gx.abs() + gy.abs()
    m = F.pad(magnitude, (1, 1, 1, 1))

    def at(dy: int, dx: int) -> torch.Tensor:
        return m[..., 1 + dy : m.shape[-2] - 1 + dy, 1 + dx : m.shape[-1] - 1 + dx]

    tan22 = math.tan(math.radians(22.5))
    ax, ay = gx.abs(), gy.abs()
    horizontal = ay < ax * tan22
    vertical = ay > ax / tan22
    sign = torch.where((gx * gy) < 0, -1, 1)
    peak_h = (magnitude > at(0, -1)) & (magnitude >= at(0, 1))
    peak_v = (magnitude > at(-1, 0)) & (magnitude >= at(1, 0))
    peak_d = torch.where(
        sign < 0, (magnitude > at(-1, 1)) & (magnitude > at(1, -1)), (magnitude > at(-1, -1)) & (magnitude > at(1, 1))
    )
    peak = torch.where(horizontal, peak_h, torch.where(vertical, peak_v, peak_d)) & (magnitude > low)
    edges, weak = peak & (magnitude > high), peak
    while True:
        grown = weak & (F.max_pool2d(edges.float(), 3, stride=1, padding=1) > 0)
        if torch.equal(grown, edges):
            return edges
        edges = grown


def _edge_distance(edges: torch.Tensor, cap: int) -> torch.Tensor:
    """Euclidean distance to the nearest edge pixel, truncated at ``cap`` (separable, exact)."""
    big = float(4 * cap * cap)
    squared = torch.where(edges, 0.0, big)
    for dim in (-1, -2):
        pad = (cap, cap, 0, 0) if dim == -1 else (0, 0, cap, cap)
        padded = F.pad(squared, pad, value=big)
        n = squared.shape[dim]
        best = squared.clone()
        for k in range(-cap, cap + 1):
            best = torch.minimum(best, padded.narrow(dim, cap + k, n) + k * k)
        squared = best
    return squared.sqrt().clamp(max=cap)


def _box3(x: torch.Tensor) -> torch.Tensor:
    """OpenCV's ``blur`` with a 3×3 box, reflect-101 edges."""
    return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3, stride=1)


def _equalize_hist(image: torch.Tensor) -> torch.Tensor:
    """OpenCV's ``equalizeHist`` per image on 8-bit values (B×1×H×W, integer-valued floats)."""
    b = image.shape[0]
    flat = image.flatten(1).long()
    hist = torch.zeros(b, 256, device=image.device, dtype=torch.float64).scatter_add_(
        1, flat, torch.ones_like(flat, dtype=torch.float64)
    )
    cdf = hist.cumsum(1)
    first = (hist > 0).float().argmax(1, keepdim=True)
    lowest = hist.gather(1, first)
    total = float(flat.shape[1])
    scale = 255.0 / (total - lowest).clamp_min(1)
    lut = torch.round((cdf - cdf.gather(1, first)) * scale).clamp(0, 255)
    lut = torch.where(lowest == total, first.double().expand(-1, 256), lut)  # one grey level: kept
    return lut.gather(1, flat).view_as(image).to(image.dtype)


def _water(x: torch.Tensor, liquid: torch.Tensor, intensity: float) -> torch.Tensor:
    """ImageNet-C's water branch: edges of the liquid layer → embossed distance map → pale turquoise."""
    level = torch.floor(liquid * 255).clamp(0, 255)
    dist = _edge_distance(_canny(level, 50, 150), cap=20)
    dist = _equalize_hist(torch.floor(_box3(dist)))
    dist = _filter3(dist, [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]).round().clamp(0, 255)
    dist = torch.round(_box3(dist))
    m = level * dist
    m = m / m.amax(dim=(2, 3), keepdim=True).clamp_min(1e-12) * intensity
    turquoise = torch.tensor([175, 238, 238]).to(x)[:, None, None] / 255
    return x + m * turquoise


def spatter(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    mean, std, sigma, threshold, intensity, mud = _params(x, "spatter", severity)
    h, w = x.shape[-2:]
    noise = _per_example(ids, "spatter", severity, lambda g: torch.randn(1, h, w, generator=g)).to(x)
    liquid = _gaussian_blur(noise * std + mean, sigma)
    liquid = torch.where(liquid < threshold, 0.0, liquid)
    if not mud:
        return _water(x, liquid, intensity)
    m = _gaussian_blur((liquid > threshold).to(x), intensity)
    m = torch.where(m < 0.8, 0.0, m)
    brown = torch.tensor([63, 42, 20]).to(x)[:, None, None] / 255
    return x * (1 - m) + brown * m


# ----------------------------------------------------------------------------- occlusion


def occlusion(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    h, w = x.shape[-2:]
    side = _params(x, "occlusion", severity)
    side_h, side_w = round(side * h), round(side * w)
    corners = _per_example(
        ids,
        "occlusion",
        severity,
        lambda g: torch.stack(
            [torch.randint(0, h - side_h + 1, (), generator=g), torch.randint(0, w - side_w + 1, (), generator=g)]
        ),
    )
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    top, left = corners[:, 0].to(x.device)[:, None, None], corners[:, 1].to(x.device)[:, None, None]
    inside = (rows >= top) & (rows < top + side_h) & (cols >= left) & (cols < left + side_w)
    return torch.where(inside[:, None], torch.full_like(x, OCCLUSION_GREY), x)


IMAGE_CORRUPTIONS: dict[str, Corruption] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "defocus_blur": defocus_blur,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "zoom_blur": zoom_blur,
    "snow": snow,
    "frost": frost,
    "fog": fog,
    "brightness": brightness,
    "contrast": contrast,
    "elastic_transform": elastic_transform,
    "pixelate": pixelate,
    "jpeg": jpeg,
    "speckle_noise": speckle_noise,
    "gaussian_blur": gaussian_blur,
    "spatter": spatter,
    "saturate": saturate,
    "occlusion": occlusion,
}
"""ImageNet-C's 15 (its order), its 4 held-out extras, then Cutout."""


def corrupt_images(images: torch.Tensor, name: str, severity: int, ids: Sequence[int]) -> torch.Tensor:
    """Corrupt a uint8 B×3×H×W batch; severity 0 returns the input unchanged. Output: uint8.

    The parameter table follows the images' side (:func:`table_for`).
    """
    if name not in IMAGE_CORRUPTIONS:
        raise ValueError(f"unknown image corruption {name!r}; known: {', '.join(IMAGE_CORRUPTIONS)}")
    if severity == 0:
        return images
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be 0–5, got {severity}")
    if len(ids) != images.shape[0]:
        raise ValueError(f"{len(ids)} example ids for {images.shape[0]} images")
    x = images.float() / 255
    out = IMAGE_CORRUPTIONS[name](x, severity, ids)
    return (out.clamp(0, 1) * 255).round().to(torch.uint8)
