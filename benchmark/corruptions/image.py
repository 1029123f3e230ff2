"""Image corruptions at severities 1–5, as batched torch operations (GPU when there is one).

Parameters are Hendrycks & Dietterich's ("Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations", ICLR 2019) tables for Tiny-ImageNet-C (64×64 images,
``make_tinyimagenet_c.py``) — the published resolution closest to FuseBench's canvases —
re-implemented in torch so that a whole batch is corrupted at once:

================  ======================================  ===================================
corruption        parameter per severity 1…5              operation
================  ======================================  ===================================
gaussian_noise    σ = .04 .08 .12 .15 .18                 x + N(0, σ²), x in [0, 1]
shot_noise        λ = 250 100 50 30 15                    Poisson(λx) / λ
impulse_noise     amount = .01 .02 .05 .08 .14            salt & pepper on that fraction of values
defocus_blur      (r, α) = (.5,.6) (1,.1) (1.5,.1)         disk of radius r (17×17 support) blurred by
                  (2.5,.01) (3,.1)                        a 3×3 Gaussian of σ α, per channel
motion_blur       (r, σ) = (10,1) (10,1.5) (10,2)          one-sided Gaussian line kernel (length r,
                  (10,2.5) (12,3)                         σ px) at a random angle in [−45°, 45°]
brightness        Δ = .1 .2 .3 .4 .5                      HSV value + Δ (hue, saturation kept)
contrast          c = .4 .3 .2 .1 .05                     (x − mean) · c + mean, per image/channel
pixelate          f = .9 .8 .7 .6 .5                      BOX-resample to f·size and back (PIL's BOX)
jpeg              quality = 65 58 50 40 25                Pillow JPEG round trip (as ImageNet-C)
occlusion         side = .2 .3 .4 .5 .6 of the image      one mid-grey square at a random position
================  ======================================  ===================================

``occlusion`` is Cutout (DeVries & Taylor 2017), not part of ImageNet-C. Motion blur follows
ImageMagick's kernel (used by ImageNet-C through Wand); pixelate reproduces PIL's BOX
resampling coefficients as matrices (PIL rounds to 8 bits between its two passes, we do not).

Randomness is per example: the noise, angle or square of image ``i`` is drawn from a
generator seeded by (image id, corruption, severity), so the corrupted test set is identical
for every method, every run and any batching.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from benchmark.seeding import torch_generator

Corruption = Callable[[torch.Tensor, int, Sequence[int]], torch.Tensor]

GAUSSIAN_SIGMA = (0.04, 0.08, 0.12, 0.15, 0.18)
SHOT_LAMBDA = (250, 100, 50, 30, 15)
IMPULSE_AMOUNT = (0.01, 0.02, 0.05, 0.08, 0.14)
DEFOCUS = ((0.5, 0.6), (1.0, 0.1), (1.5, 0.1), (2.5, 0.01), (3.0, 0.1))
MOTION = ((10, 1.0), (10, 1.5), (10, 2.0), (10, 2.5), (12, 3.0))
BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)
CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)
PIXELATE = (0.9, 0.8, 0.7, 0.6, 0.5)
JPEG_QUALITY = (65, 58, 50, 40, 25)
OCCLUSION_SIDE = (0.2, 0.3, 0.4, 0.5, 0.6)
OCCLUSION_GREY = 0.5


def _per_example(
    ids: Sequence[int], name: str, severity: int, draw: Callable[[torch.Generator], torch.Tensor]
) -> torch.Tensor:
    """Stack one CPU draw per example, each from its own seeded generator."""
    return torch.stack([draw(torch_generator("image-corruption", int(i), name, severity)) for i in ids])


def gaussian_noise(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    noise = _per_example(ids, "gaussian_noise", severity, lambda g: torch.randn(x.shape[1:], generator=g))
    return x + noise.to(x.device) * GAUSSIAN_SIGMA[severity - 1]


def shot_noise(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    lam = SHOT_LAMBDA[severity - 1]
    rates = (x * lam).cpu()
    counts = torch.stack(
        [
            torch.poisson(rates[k], generator=torch_generator("image-corruption", int(i), "shot_noise", severity))
            for k, i in enumerate(ids)
        ]
    )
    return counts.to(x.device) / lam


def impulse_noise(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    amount = IMPULSE_AMOUNT[severity - 1]
    u = _per_example(ids, "impulse_noise", severity, lambda g: torch.rand((2, *x.shape[1:]), generator=g)).to(x.device)
    hit, salt = u[:, 0] < amount, u[:, 1] < 0.5  # skimage 's&p': salt_vs_pepper = 0.5
    return torch.where(hit, salt.to(x.dtype), x)


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


def _disk(radius: float, alias_blur: float) -> torch.Tensor:
    """ImageNet-C's anti-aliased disk: 17×17 support, 3×3 Gaussian of σ = alias_blur."""
    support = torch.arange(-8, 9, dtype=torch.float64)
    yy, xx = torch.meshgrid(support, support, indexing="ij")
    disk = ((xx**2 + yy**2) <= radius**2).double()
    disk /= disk.sum()
    return F.conv2d(disk[None, None], _gaussian_kernel(3, alias_blur)[None, None], padding=1)[0, 0]


def defocus_blur(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    radius, alias = DEFOCUS[severity - 1]
    return _depthwise(x, _disk(radius, alias))


def _motion_kernel(length: int, sigma: float, angle_degrees: float) -> torch.Tensor:
    """One-sided Gaussian weights along a line at ``angle``, splatted bilinearly on a grid."""
    size = 2 * length + 1
    kernel = torch.zeros(size, size, dtype=torch.float64)
    theta = math.radians(angle_degrees)
    for step in range(length):
        weight = math.exp(-(step**2) / (2 * sigma**2))
        x, y = length + step * math.cos(theta), length - step * math.sin(theta)
        x0, y0 = math.floor(x), math.floor(y)
        for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
            share = (1 - abs(x - (x0 + dx))) * (1 - abs(y - (y0 + dy)))
            if share > 0 and 0 <= x0 + dx < size and 0 <= y0 + dy < size:
                kernel[y0 + dy, x0 + dx] += weight * share
    return kernel / kernel.sum()


def motion_blur(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    length, sigma = MOTION[severity - 1]
    angles = _per_example(ids, "motion_blur", severity, lambda g: torch.empty(()).uniform_(-45, 45, generator=g))
    kernels = torch.stack([_motion_kernel(length, sigma, float(a)) for a in angles])
    return _depthwise(x, kernels)


def brightness(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    """HSV value + Δ with hue and saturation unchanged: scale RGB by V'/V (grey where V = 0)."""
    value = x.amax(dim=1, keepdim=True)
    shifted = (value + BRIGHTNESS[severity - 1]).clamp(max=1.0)
    return torch.where(value > 0, x * shifted / value.clamp_min(1e-12), shifted.expand_as(x))


def contrast(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    mean = x.mean(dim=(2, 3), keepdim=True)
    return (x - mean) * CONTRAST[severity - 1] + mean


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
    factor = PIXELATE[severity - 1]
    small_h, small_w = int(h * factor), int(w * factor)
    down_h, down_w = _box_matrix(h, small_h).to(x), _box_matrix(w, small_w).to(x)
    up_h, up_w = _box_matrix(small_h, h).to(x), _box_matrix(small_w, w).to(x)
    return up_h @ (down_h @ x @ down_w.t()) @ up_w.t()


def jpeg(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    """A JPEG encode/decode round trip with Pillow at the severity's quality (on the CPU), as ImageNet-C."""
    import io

    import numpy as np
    from PIL import Image

    pixels = (x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    decoded = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY[severity - 1])
        decoded.append(np.asarray(Image.open(buffer).convert("RGB")))
    return torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).to(x.device).float() / 255


def occlusion(x: torch.Tensor, severity: int, ids: Sequence[int]) -> torch.Tensor:
    h, w = x.shape[-2:]
    side_h, side_w = round(OCCLUSION_SIDE[severity - 1] * h), round(OCCLUSION_SIDE[severity - 1] * w)
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
    "motion_blur": motion_blur,
    "brightness": brightness,
    "contrast": contrast,
    "pixelate": pixelate,
    "jpeg": jpeg,
    "occlusion": occlusion,
}


def corrupt_images(images: torch.Tensor, name: str, severity: int, ids: Sequence[int]) -> torch.Tensor:
    """Corrupt a uint8 B×3×H×W batch; severity 0 returns the input unchanged. Output: uint8."""
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
