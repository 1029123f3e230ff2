"""ImageNet-C corruptions: seeding, ranges, severity ordering, table by image size, closed forms.

Severity ordering is measured as the mean absolute difference (MAD, 8-bit levels) between the
corrupted and the clean synthetic scenes (24, 16 and 16 scenes at 32, 64 and 224 px), which must
not fall from one severity to the next (2 % slack). Where the published tables are not ordered in
that measure, ``ORDERED`` and ``SLACK`` say which severities are compared and why.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

import benchmark.corruptions.image as image_corruptions
from benchmark.corruptions.image import (
    IMAGE_CORRUPTIONS,
    PARAMETERS,
    TABLE_SIZES,
    _canny,
    _elastic_displacement,
    _elastic_draws,
    _glass_interior,
    _glass_shuffle,
    _motion_blur,
    _motion_taps,
    _optimal_kernel_width,
    _plasma_fractal,
    corrupt_images,
    corruption_parameters,
    table_for,
)
from benchmark.data.dataset import load_split
from benchmark.seeding import torch_generator
from tests.helpers import build_small_scenes

IMAGENET_C = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg",
    "speckle_noise",
    "gaussian_blur",
    "spatter",
    "saturate",
)
SIZES = (32, 64, 224)
BATCH = {32: 24, 64: 16, 224: 16}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[torch.Tensor, list[int]]]:
    """The default config's synthetic scenes at 32, 64 and 224 px."""
    batches = {}
    for size in SIZES:
        splits = {"train": BATCH[size], "val": 1, "test": 1}
        root = build_small_scenes(tmp_path_factory.mktemp(f"scenes{size}"), splits, size)
        split = load_split(root, "train")
        batches[size] = torch.as_tensor(split.images[: BATCH[size]]), list(split.image_ids[: BATCH[size]])
    return batches


def mad(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().mean().item()


def test_the_full_imagenet_c_set_and_cutout_are_registered() -> None:
    assert list(IMAGE_CORRUPTIONS) == [*IMAGENET_C, "occlusion"]
    for name in IMAGE_CORRUPTIONS:
        assert set(PARAMETERS[name]) == {"cifar10_c", "tiny_imagenet_c", "imagenet_c"}, name
        assert all(len(rows) == 5 for rows in PARAMETERS[name].values()), name


def test_the_table_follows_the_image_size() -> None:
    expected = {16: "cifar10_c", 32: "cifar10_c", 33: "tiny_imagenet_c", 48: "tiny_imagenet_c", 64: "tiny_imagenet_c"}
    expected |= {119: "tiny_imagenet_c", 120: "imagenet_c", 128: "imagenet_c", 160: "imagenet_c", 224: "imagenet_c"}
    assert {size: table_for(size) for size in expected} == expected
    # rows as published in make_cifar_c.py, make_tinyimagenet_c.py, make_imagenet_c.py
    assert [corruption_parameters("gaussian_noise", 5, s) for s in (32, 64, 224)] == [0.10, 0.18, 0.38]
    assert [corruption_parameters("jpeg", 1, s) for s in (32, 64, 224)] == [80, 65, 25]
    assert corruption_parameters("glass_blur", 5, 224) == (1.5, 4, 2)
    # elastic's parameters are fractions of the side (IMSIZE; 244 in make_imagenet_c.py), scaled to the image
    assert corruption_parameters("elastic_transform", 2, 224) == pytest.approx((244 * 2, 244 * 0.08, 244 * 0.2))
    assert corruption_parameters("elastic_transform", 3, 64) == pytest.approx((6.4, 5.12, 3.84))
    assert corruption_parameters("elastic_transform", 3, 48) == pytest.approx((4.8, 3.84, 2.88))


BATCH_INVARIANCE_SCRIPT = """
import torch
from benchmark.corruptions.image import IMAGE_CORRUPTIONS, corrupt_images
batch = torch.randint(0, 256, (3, 3, 224, 224), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
ids = [7, 8, 9]
for name in IMAGE_CORRUPTIONS:
    whole = corrupt_images(batch, name, 4, ids)
    for k in range(3):
        assert torch.equal(corrupt_images(batch[k : k + 1], name, 4, ids[k : k + 1]), whole[k : k + 1]), name
print("ok")
"""


def test_per_example_on_the_portable_numeric_path() -> None:
    """Under ``numerics: portable`` every job runs with MKL_CBWR=COMPATIBLE, read when MKL starts (so in a process
    of its own): a batched GEMM then rounds by batch size, which once made pixelate depend on its batch."""
    import os
    import subprocess
    import sys

    from benchmark.numerics import PORTABLE_ENV

    env = {**os.environ, **PORTABLE_ENV}
    done = subprocess.run([sys.executable, "-c", BATCH_INVARIANCE_SCRIPT], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", list(IMAGE_CORRUPTIONS))
def test_seeded_per_example_whatever_the_batch(name: str, size: int, scenes) -> None:
    batch, ids = scenes[size]
    assert torch.equal(corrupt_images(batch, name, 0, ids), batch)
    out = corrupt_images(batch, name, 4, ids)
    assert out.dtype == torch.uint8 and out.shape == batch.shape
    assert torch.equal(out, corrupt_images(batch.clone(), name, 4, ids))
    assert torch.equal(corrupt_images(batch.flip(0), name, 4, ids[::-1]), out.flip(0))  # order
    assert torch.equal(corrupt_images(batch[1:2], name, 4, ids[1:2]), out[1:2])  # batching
    assert not torch.equal(out, batch)


CONSECUTIVE = [(1, 2), (2, 3), (3, 4), (4, 5)]
ORDERED: dict[str, list[tuple[int, int]]] = {
    # Severity pairs whose MAD must not fall, where the published tables do not order all five:
    # glass blur's offsets in [−δ, δ) (each pixel copies the one at its offset, as ImageNet-C's loop
    # does) shift the image down-right by about ½ px per pass, which weighs as much as the shuffle
    # in MAD (e.g. make_cifar_c.py's severity 4 has σ .25 and two passes, 5 σ .4): only the ends
    # are compared.
    "glass_blur": [(1, 5)],
    # every table trades the affine jitter (falling with severity) for local displacement: none.
    "elastic_transform": [],
    # severities 1–2 desaturate (×0.3, ×0.1), 3–5 oversaturate.
    "saturate": [(3, 4), (4, 5)],
    # severities 1–3 are the water branch, 4–5 the mud branch.
    "spatter": [(1, 2), (2, 3), (4, 5)],
}
SLACK = {"frost": 0.10}
"""frost blends a·x + b·texture with a falling and b rising: on these dark scenes the published
CIFAR-10-C and Tiny-ImageNet-C rows lose up to ~8 % MAD from one severity to the next."""


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", list(IMAGE_CORRUPTIONS))
def test_damage_does_not_fall_with_severity(name: str, size: int, scenes) -> None:
    batch, ids = scenes[size]
    damage = {s: mad(corrupt_images(batch, name, s, ids), batch) for s in range(1, 6)}
    assert min(damage.values()) > 0, f"{name} at {size} px: MAD by severity {damage}"
    slack = SLACK.get(name, 0.02)
    for low, high in ORDERED.get(name, CONSECUTIVE):
        assert damage[high] >= damage[low] * (1 - slack), f"{name} at {size} px: MAD by severity {damage}"


def constant(value: int, size: int = 64, n: int = 2) -> torch.Tensor:
    return torch.full((n, 3, size, size), value, dtype=torch.uint8)


@pytest.mark.parametrize("name", ["zoom_blur", "gaussian_blur", "glass_blur", "defocus_blur", "elastic_transform"])
def test_blurs_and_warps_keep_a_constant_image(name: str) -> None:
    for size in SIZES:
        image = constant(137, size)
        assert torch.equal(corrupt_images(image, name, 5, [1, 2]), image), f"{name} at {size} px"


def test_saturate_on_grey_is_identity_until_the_shift_tints_it_red() -> None:
    grey = constant(120)
    for severity in (1, 2, 3):
        assert torch.equal(corrupt_images(grey, "saturate", severity, [0, 1]), grey)
    for severity in (4, 5):
        shift = corruption_parameters("saturate", severity, 64)[1]
        out = corrupt_images(grey, "saturate", severity, [0, 1])  # skimage: hue 0 → (V, V(1−S'), V(1−S'))
        assert (out[:, 0] == 120).all() and (out[:, 1:] == round(120 * (1 - shift))).all()


def test_speckle_noise_is_x_plus_x_times_the_seeded_normal() -> None:
    image = torch.arange(3 * 16 * 16).remainder(251).view(1, 3, 16, 16).to(torch.uint8)
    sigma = corruption_parameters("speckle_noise", 3, 16)
    noise = torch.randn((3, 16, 16), generator=torch_generator("image-corruption", 7, "speckle_noise", 3))
    x = image.float() / 255
    expected = ((x + x * noise * sigma).clamp(0, 1) * 255).round().to(torch.uint8)
    assert torch.equal(corrupt_images(image, "speckle_noise", 3, [7]), expected)


def test_weather_moves_constant_images_the_documented_way(scenes) -> None:
    for size in SIZES:
        ids = [3, 4]
        for severity in range(1, 6):
            # fog: (v + a·p)·v/(v + a) with p in [0, 1] never brightens, and reaches v where p = 1
            weight = corruption_parameters("fog", severity, size)[0]
            foggy = corrupt_images(constant(200, size), "fog", severity, ids).int()
            low = round(200 * (200 / 255) / (200 / 255 + weight))
            assert foggy.max() == 200 and foggy.min() >= low - 1 and foggy.float().mean() < 200
            # snow never darkens a pixel: b·x + (1−b)·max(x, …) ≥ x, plus a layer ≥ 0
            batch, scene_ids = scenes[size]
            assert (corrupt_images(batch, "snow", severity, scene_ids) >= batch).all()
            assert (corrupt_images(constant(255, size), "snow", severity, ids) == 255).all()
            # frost adds a texture to a black image and can only darken a white one
            assert corrupt_images(constant(0, size), "frost", severity, ids).float().mean() > 10
            assert (corrupt_images(constant(255, size), "frost", severity, ids) <= 255).all()


def test_spatter_mud_leaves_mud_brown_alone_and_water_only_adds() -> None:
    brown = torch.tensor([63, 42, 20], dtype=torch.uint8)[None, :, None, None].expand(2, 3, 64, 64).contiguous()
    for severity in (4, 5):  # the mud branch at every published size
        for size in SIZES:
            image = brown[..., :1, :1].expand(2, 3, size, size).contiguous()
            assert torch.equal(corrupt_images(image, "spatter", severity, [5, 6]), image)
    dark = constant(30, 224)
    for severity in (1, 2, 3):  # water
        out = corrupt_images(dark, "spatter", severity, [5, 6])
        assert (out >= dark).all() and (out > dark).any()


DRAWN = ("speckle_noise", "glass_blur", "snow", "frost", "fog", "elastic_transform", "spatter")


@pytest.mark.parametrize("name", DRAWN)
def test_new_random_corruptions_draw_per_example_id(name: str, scenes) -> None:
    batch, _ = scenes[64]
    same = batch[:1].repeat(3, 1, 1, 1)
    out = corrupt_images(same, name, 5, [101, 102, 103])
    assert len({o.numpy().tobytes() for o in out}) == 3, f"{name}: ids did not change the draw"


# ----------------------------------------------------------------------------- against the sources


def test_motion_blur_taps_are_imagemagick_motion_blur_image() -> None:
    """MotionBlurImage: width = GetOptimalKernelWidth1D(r, σ) taps i = 0 … width − 1 with weights
    exp(−i²/2σ²)/Σ at (⌈i·cos θ − ½⌉, ⌈i·sin θ − ½⌉), y pointing down the image."""
    # GetOptimalKernelWidth1D: 2⌈r⌉ + 1 for r > 0; for r = 0, σ = 1 the Q16 tail test stops at 9
    assert [_optimal_kernel_width(r, s) for r, s in [(10, 3), (20, 15), (0.5, 1), (0, 1), (0, 0)]] == [21, 41, 3, 9, 3]
    pinned = {  # (radius, σ, angle): (dx, dy), worked by hand from the C expressions
        (3, 1, 20): ([0, 1, 2, 3, 4, 5, 6], [0, 0, 1, 1, 1, 2, 2]),
        (4, 2, -45): ([0, 1, 1, 2, 3, 4, 4, 5, 6], [0, -1, -1, -2, -3, -4, -4, -5, -6]),
        (10, 3, 0): (list(range(21)), [0] * 21),
        (12, 4, -100): ([0, 0, 0, *[-1] * 6, *[-2] * 6, *[-3] * 6, *[-4] * 4], [-i for i in range(25)]),
    }
    for (radius, sigma, angle), (dx, dy) in pinned.items():
        taps_x, taps_y, weights = _motion_taps(radius, sigma, angle)
        assert (taps_x, taps_y) == (dx, dy), (radius, sigma, angle)
        expected = [math.exp(-(i * i) / (2 * sigma * sigma)) for i in range(2 * radius + 1)]
        assert weights == pytest.approx([e / sum(expected) for e in expected], rel=1e-12)
    for table in PARAMETERS["motion_blur"].values():  # every published row keeps all 2r + 1 taps
        for radius, sigma in table:
            assert len(_motion_taps(radius, sigma, 30.0)[2]) == 2 * radius + 1


def test_motion_blur_samples_along_the_angle_with_edges_repeated() -> None:
    """Output (x, y) = Σ wᵢ · input(x + dxᵢ, y + dyᵢ): a dot leaves its trail at dot − offset."""
    dot = torch.zeros(1, 1, 31, 31, dtype=torch.float64)
    dot[..., 15, 15] = 1
    for angle in (0.0, 90.0, -45.0):
        dx, dy, weights = _motion_taps(4, 2, angle)
        expected = torch.zeros_like(dot)
        for i, weight in enumerate(weights):
            expected[..., 15 - dy[i], 15 - dx[i]] += weight
        assert torch.allclose(_motion_blur(dot, 4, 2, torch.tensor([angle])), expected), angle
    edge = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    edge[..., :, -1] = 1  # the right column, repeated beyond the border
    blurred = _motion_blur(edge, 4, 2, torch.tensor([0.0]))
    assert torch.allclose(blurred[..., -1], torch.ones(8, dtype=torch.float64))


def imagenet_c_glass_pass(image: np.ndarray, offsets: np.ndarray, delta: int) -> np.ndarray:
    """make_imagenet_c.py's loop, statement for statement, on an H×W×3 uint8 array."""
    x = image.copy()
    size_h, size_w = x.shape[:2]
    k = 0
    for h in range(size_h - delta, delta, -1):
        for w in range(size_w - delta, delta, -1):
            dx, dy = offsets[k]
            k += 1
            h_prime, w_prime = h + dy, w + dx
            x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]
    return x


@pytest.mark.parametrize("delta", [1, 2, 3, 4])
def test_glass_shuffle_is_the_imagenet_c_loop(delta: int) -> None:
    generator = torch.Generator().manual_seed(delta)
    images = torch.randint(0, 256, (3, 3, 21, 26), generator=generator).float()
    visited = _glass_interior(21, 26, delta)[0].numel()
    assert visited == (21 - 2 * delta) * (26 - 2 * delta)
    offsets = torch.randint(-delta, delta, (3, visited, 2), generator=generator, dtype=torch.int8)
    ours = _glass_shuffle(images, offsets, delta)
    for image, draws, out in zip(images, offsets, ours):
        pixels = image.permute(1, 2, 0).numpy().astype(np.uint8)
        expected = imagenet_c_glass_pass(pixels, draws.long().numpy(), delta)
        assert np.array_equal(out.permute(1, 2, 0).numpy().astype(np.uint8), expected)


def test_zoom_blur_zooms_are_the_sources_aranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """make_cifar_c.py and make_tinyimagenet_c.py: np.arange(1, stop, .01), stop = 1.06 … 1.26;
    make_imagenet_c.py: (stop, step) below. Float rounding gives 1.11 its own value, 1.16 not."""
    sources = {
        "cifar10_c": [(stop, 0.01) for stop in (1.06, 1.11, 1.16, 1.21, 1.26)],
        "tiny_imagenet_c": [(stop, 0.01) for stop in (1.06, 1.11, 1.16, 1.21, 1.26)],
        "imagenet_c": [(1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03)],
    }
    counts = {table: [len(np.arange(1, stop, step)) for stop, step in rows] for table, rows in sources.items()}
    assert counts["imagenet_c"] == [12, 16, 11, 13, 11] and counts["cifar10_c"] == [7, 12, 16, 21, 26]
    zooms: list[float] = []
    monkeypatch.setattr(image_corruptions, "_zoom", lambda x, factor: zooms.append(factor) or x)
    for table, rows in sources.items():
        for severity, (stop, step) in enumerate(rows, start=1):
            zooms.clear()
            corrupt_images(constant(0, TABLE_SIZES[table], 1), "zoom_blur", severity, [0])
            assert zooms == pytest.approx(list(np.arange(1, stop, step)), abs=1e-12), (table, severity)


def imagenet_c_plasma(mapsize: int, decay: float, uniform: np.ndarray) -> np.ndarray:
    """make_imagenet_c.py's ``plasma_fractal``, with np.random.uniform(−w, w, shape) taken from ``uniform``."""
    maparray = np.empty((mapsize, mapsize), dtype=np.float64)
    maparray[0, 0] = 0
    stepsize, wibble, used = mapsize, 100.0, 0

    def wibbledmean(array: np.ndarray) -> np.ndarray:
        nonlocal used
        draw = uniform[used : used + array.size].reshape(array.shape)
        used += array.size
        return array / 4 + wibble * (-wibble + 2 * wibble * draw)

    while stepsize >= 2:
        half = stepsize // 2
        cornerref = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squareaccum = cornerref + np.roll(cornerref, shift=-1, axis=0)
        squareaccum += np.roll(squareaccum, shift=-1, axis=1)
        maparray[half:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(squareaccum)
        drgrid = maparray[half:mapsize:stepsize, half:mapsize:stepsize]
        ulgrid = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        ltsum = drgrid + np.roll(drgrid, 1, axis=0) + (ulgrid + np.roll(ulgrid, -1, axis=1))
        maparray[0:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(ltsum)
        ttsum = drgrid + np.roll(drgrid, 1, axis=1) + (ulgrid + np.roll(ulgrid, -1, axis=0))
        maparray[half:mapsize:stepsize, 0:mapsize:stepsize] = wibbledmean(ttsum)
        stepsize //= 2
        wibble /= decay
    assert used == uniform.size
    maparray -= maparray.min()
    return maparray / maparray.max()


@pytest.mark.parametrize(("mapsize", "decay"), [(8, 3.0), (32, 1.7), (64, 1.4)])
def test_plasma_fractal_is_the_sources_given_the_same_draws(mapsize: int, decay: float) -> None:
    uniform = torch.rand(
        2, mapsize * mapsize - 1, generator=torch.Generator().manual_seed(mapsize), dtype=torch.float64
    )
    ours = _plasma_fractal(uniform, mapsize, decay)
    for k in range(2):
        expected = imagenet_c_plasma(mapsize, decay, uniform[k].numpy())
        np.testing.assert_allclose(ours[k].numpy(), expected, rtol=0, atol=1e-12)


ELASTIC_ORDERED = {
    "cifar10_c": CONSECUTIVE,
    "tiny_imagenet_c": CONSECUTIVE,
    # make_imagenet_c.py's severity 2 (α 2·244, σ .08·244) has by far the largest field (~5.8 px
    # against ~1.5 at 1 and ~1.0 at 3): only 1 → 2 and 3 → 4 → 5 are ordered.
    "imagenet_c": [(1, 2), (3, 4), (4, 5)],
}


@pytest.mark.parametrize("size", [32, 48, 64, 224])
def test_elastic_warp_field_grows_with_severity_as_each_table_orders_it(size: int) -> None:
    """The mean length of the elastic displacement (dx, dy), in pixels, over 8 ids: non-decreasing
    from severity to severity in CIFAR-10-C and Tiny-ImageNet-C (0 at severity 1, α = 0), and in
    ImageNet-C except 2 → 3. (The affine jitter, applied first, is left out: it falls with
    severity in the CIFAR and Tiny tables, as ImageNet-C trades it for local displacement.)"""
    field = {}
    for severity in range(1, 6):
        alpha, sigma, _ = corruption_parameters("elastic_transform", severity, size)
        draws = _elastic_draws(range(8), severity, size, size)[:, 6:].view(8, 2, size, size)
        field[severity] = _elastic_displacement(draws, alpha, sigma).norm(dim=1).mean().item()
    table = table_for(size)
    for low, high in ELASTIC_ORDERED[table]:
        assert field[high] >= field[low], f"{table} at {size} px: mean displacement by severity {field}"
    assert field[5] > 0.5, field  # a visible warp at the top severity


def test_canny_repeats_edge_pixels_for_sobel() -> None:
    """cv::Canny runs Sobel with BORDER_REPLICATE: a step between columns 0 and 1 gives column 0
    a gradient and the edge (reflect-101 would give it none and put the edge at column 1)."""
    step = torch.full((1, 1, 12, 12), 200.0)
    step[..., 0] = 0
    edges = _canny(step, 50, 150)
    assert edges[..., 0].all() and not edges[..., 1:].any()


# ----------------------------------------------------------------- the imagecorruptions package as reference

DETERMINISTIC = ("gaussian_blur", "defocus_blur", "zoom_blur", "brightness", "contrast", "saturate", "pixelate", "jpeg")
RANDOM = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "glass_blur", "motion_blur", "snow", "fog")
"""Compared in mean change only (their draws differ). Not compared: elastic_transform, where FuseBench follows
ImageNet-C's make_imagenet_c.py and imagecorruptions departs from it (other displacement fields); spatter, whose
mean change at 224 px is under one grey level at severities 1–2 (a ratio of noise); frost has its own test."""
REFERENCE_NAMES = {"jpeg": "jpeg_compression"}


@pytest.fixture(scope="module")
def imagecorruptions() -> object:
    """The ``imagecorruptions`` package (1.1.2, pinned), patched in this fixture for the current libraries — never
    in the package or the benchmark: it imports ``pkg_resources`` (setuptools, absent here; replaced by a module
    resolving paths in the package folder), calls ``skimage.filters.gaussian(multichannel=True)`` (scikit-image
    ≥ 0.19 wants ``channel_axis=-1``) and uses ``np.float_`` (``np.float64`` in NumPy 2)."""
    import importlib.util
    import os
    import sys
    import types
    import warnings

    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None:
        pytest.fail("imagecorruptions is a pinned dependency (pyproject.toml) and is not installed")
    root = next(iter(spec.submodule_search_locations or []))
    with pytest.MonkeyPatch.context() as patch:
        if importlib.util.find_spec("pkg_resources") is None:
            shim = types.ModuleType("pkg_resources")
            shim.resource_filename = lambda package, relative: os.path.join(root, relative)  # type: ignore[attr-defined]
            patch.setitem(sys.modules, "pkg_resources", shim)
        patch.setattr(np, "float_", np.float64, raising=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # scipy.ndimage.interpolation
            import imagecorruptions as package
            import imagecorruptions.corruptions as corruptions
        from skimage.filters import gaussian

        def channel_axis_gaussian(image: np.ndarray, sigma: float = 1, multichannel: bool | None = None) -> np.ndarray:
            return gaussian(image, sigma=sigma, channel_axis=-1 if multichannel else None)

        patch.setattr(corruptions, "gaussian", channel_axis_gaussian)
        yield package


def _reference(package: object, images: torch.Tensor, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """imagecorruptions' output (B×H×W×3 uint8) for a uint8 B×3×H×W batch, its global NumPy draws seeded."""
    np.random.seed(seed)
    return np.stack(
        [
            package.corrupt(image, severity, REFERENCE_NAMES.get(name, name))  # type: ignore[attr-defined]
            for image in images.permute(0, 2, 3, 1).numpy()
        ]
    )


def _mean_change(corrupted: np.ndarray, images: torch.Tensor) -> float:
    return float(np.abs(corrupted.astype(float) - images.permute(0, 2, 3, 1).numpy().astype(float)).mean())


@pytest.mark.integration  # imagecorruptions at 224 px (make test; make test-fast leaves it)
@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_corruptions_equal_imagecorruptions_within_one_grey_level_at_224(
    name: str, scenes: dict[int, tuple[torch.Tensor, list[int]]], imagecorruptions: object
) -> None:
    images, ids = scenes[224]
    images, ids = images[:6], ids[:6]
    for severity in range(1, 6):
        ours = corrupt_images(images, name, severity, ids).permute(0, 2, 3, 1).numpy().astype(int)
        theirs = _reference(imagecorruptions, images, name, severity).astype(int)
        # defocus_blur at r = 8, 10 (severities 4, 5): ImageNet-C's kernel sums to 1.013 and 1.011 (cv2.GaussianBlur
        # folds the disk's rim back in), ours to 0.998 and 0.999 — the documented departure: within 2 % of the value
        slack = 0.02 * theirs if name == "defocus_blur" and severity >= 4 else 0
        assert (np.abs(ours - theirs) <= 1 + slack).all(), (name, severity, int(np.abs(ours - theirs).max()))


@pytest.mark.integration  # imagecorruptions at 224 px
@pytest.mark.parametrize("name", RANDOM)
def test_random_corruptions_match_imagecorruptions_mean_change_within_ten_percent(
    name: str, scenes: dict[int, tuple[torch.Tensor, list[int]]], imagecorruptions: object
) -> None:
    images, ids = scenes[224]
    if name == "glass_blur":  # imagecorruptions' glass blur is a Python loop over pixels: minutes at 224 px
        images, ids = images[:2], ids[:2]
    for severity in (1, 3, 5):
        ours = _mean_change(corrupt_images(images, name, severity, ids).permute(0, 2, 3, 1).numpy(), images)
        theirs = _mean_change(_reference(imagecorruptions, images, name, severity), images)
        assert ours == pytest.approx(theirs, rel=0.10), (name, severity, ours, theirs)


@pytest.mark.integration  # imagecorruptions' frost at 224 px, 256 draws per severity
def test_frost_is_imagenet_c_photographs_with_imagecorruptions_mean_change(
    scenes: dict[int, tuple[torch.Tensor, list[int]]], imagecorruptions: object
) -> None:
    """Frost blends crops of ImageNet-C's photographs: over 16 × 16 draws (photograph and crop) per severity its
    mean change at 224 px is imagecorruptions' within ±10 % (the procedural texture it replaces was 25–40 % weaker),
    and a black image becomes a crop of a photograph, scaled by the frost weight."""
    images, _ = scenes[224]
    repeated = images.repeat(16, 1, 1, 1)  # 256 draws: which photograph is drawn dominates the mean change
    for severity in range(1, 6):
        ours = _mean_change(
            corrupt_images(repeated, "frost", severity, list(range(len(repeated)))).permute(0, 2, 3, 1).numpy(),
            repeated,
        )
        theirs = _mean_change(_reference(imagecorruptions, repeated, "frost", severity), repeated)
        assert ours == pytest.approx(theirs, rel=0.10), (severity, ours, theirs)
    black = torch.zeros(1, 3, 224, 224, dtype=torch.uint8)
    layer = corrupt_images(black, "frost", 1, [7])[0].permute(1, 2, 0).numpy().astype(float)
    weight = corruption_parameters("frost", 1, 224)[1]
    paths = image_corruptions.frost_photo_paths()[: image_corruptions.FROST_DRAWN]
    matches = 0
    for path in paths:  # where the first 8 pixels of the top row fit, the whole 224² window must
        photo = weight * np.asarray(Image.open(path).convert("RGB"), dtype=float)
        windows = np.lib.stride_tricks.sliding_window_view(photo, (8, 3), axis=(1, 2))[..., 0, :, :]
        rows, cols = np.nonzero((np.abs(windows - layer[0, :8]) <= 1).all(axis=(-1, -2)))
        matches += sum(
            bool((np.abs(photo[r : r + 224, c : c + 224] - layer) <= 1).all())
            for r, c in zip(rows, cols)
            if r + 224 <= photo.shape[0] and c + 224 <= photo.shape[1]
        )
    assert matches >= 1
