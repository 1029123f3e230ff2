"""Image files → uint8 tensors at the model resolution, resident when they fit, decoded lazily when not.

The synthetic scenes are a few MB and stay resident (on the GPU when there is one): decoding
them once per job is what keeps a 2-core CPU run within minutes. A real split is not: COCO's
113,287 training images are 17 GB as uint8 at 224 px. :func:`load_images` therefore returns a
plain tensor when the split fits in ``resident_max_mb``, and otherwise a :class:`LazyImages`
that decodes only the images a batch indexes, in a pool of ``workers`` threads (PIL releases
the GIL while decoding and resizing). Both are indexed the same way (``images[index]`` with an
int, a slice or an index tensor, ``len``, ``.shape``, ``.to(device)``), so training and
evaluation code never knows which one it holds; a lazy store's memory is one batch of decoded
images, whatever the number of files.

Every image becomes ``size × size`` by one of two transforms, each deterministic (no random
augmentation, so a batch is a pure function of its indices and reruns are identical):

* ``resize`` — stretch the whole image to the square (bicubic). Box coordinates scale by
  ``size / width`` and ``size / height`` and stay exact, so it is the transform for datasets
  with boxes (MDETR and TransVG resize the whole image too, keeping the aspect ratio by padding;
  FuseBench's square towers stretch instead).
* ``center_crop`` — CLIP's evaluation transform: resize the shorter side to ``size``
  (bicubic) and crop the centre square. Boxes would be cut, so only captions-only datasets may
  use it.

An image already ``size × size`` is never resampled (the synthetic scenes stay bit-identical).

Training augmentation is optional and seeded: :func:`random_resized_crop` (Inception/CLIP's
RandomResizedCrop, ``train_augment.random_resized_crop`` in a dataset block) crops each image of
an image–text batch at a random area fraction and aspect ratio and resizes it back, with its
parameters drawn from a generator seeded by (run seed, step), so a resumed or repeated run sees
the same crops. It crops the model-resolution image (not the original file), which keeps it the
same on resident and streamed splits, and it never touches grounding batches (the boxes would
move).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from benchmark.errors import DataFileError

TRANSFORMS = ("resize", "center_crop")
DECODE_CHUNK = 256
"""Images decoded per call when a split is loaded resident (bounds the extra memory to one chunk)."""


def decode_image(path: str | Path, size: int, transform: str, expected: tuple[int, int] | None = None) -> np.ndarray:
    """``path`` as a ``size × size × 3`` uint8 array; ``expected`` = (width, height) the annotations state."""

    if transform not in TRANSFORMS:
        raise ValueError(f"unknown image transform {transform!r}; allowed: {', '.join(TRANSFORMS)}")
    try:
        with Image.open(path) as opened:
            width, height = opened.size
            if expected is not None and (width, height) != tuple(expected):
                raise DataFileError(
                    f"image file {path} is {width}x{height} but the annotations say {expected[0]}x{expected[1]}"
                )
            picture = opened.convert("RGB")
    except FileNotFoundError:
        raise DataFileError(f"image file not found: {path}") from None
    except DataFileError:
        raise
    except Exception as exc:  # PIL raises several types for truncated or corrupt files
        raise DataFileError(f"image file {path} is unreadable or corrupt: {exc}") from None
    if (width, height) != (size, size):
        picture = _transformed(picture, size, transform)
    return np.asarray(picture, dtype=np.uint8)


END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82", "GIF": b"\x3b"}
"""The bytes a complete file of each format ends with: JPEG's EOI marker, PNG's IEND chunk, GIF's trailer."""
END_SLACK = 4096
"""Bytes at the end of a file searched for its end marker: some writers append a few bytes after it."""


def looks_complete(path: str | Path, expected: tuple[int, int] | None = None) -> bool:
    """Whether an image file passes the checks that need no decoding: PIL reads its header, the size it
    states matches ``expected`` (the annotations' width, height), and a JPEG / PNG / GIF ends with its end
    marker (a truncated copy does not). A few header reads and one seek per file: every image of a COCO-size
    dataset is checked in seconds (``scripts/image_check_benchmark.py``). False means "decode it to find out"
    (:func:`decode_image` names what is wrong), never a verdict by itself."""

    try:
        with Image.open(path) as opened:
            kind, size = opened.format, opened.size
        if expected is not None and size != tuple(expected):
            return False
        marker = END_MARKERS.get(kind or "")
        if marker is None:
            return True
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - END_SLACK))
            return marker in handle.read()
    except Exception:  # PIL raises several types for unreadable headers; decoding names the problem
        return False


def _transformed(picture: Any, size: int, transform: str) -> Any:

    if transform == "resize":
        return picture.resize((size, size), Image.Resampling.BICUBIC)
    width, height = picture.size
    scale = size / min(width, height)
    scaled = (max(size, round(width * scale)), max(size, round(height * scale)))
    picture = picture.resize(scaled, Image.Resampling.BICUBIC)
    left, top = (scaled[0] - size) // 2, (scaled[1] - size) // 2
    return picture.crop((left, top, left + size, top + size))


@dataclass(frozen=True)
class ImageFiles:
    """The image files of a split and how to turn each into model input."""

    paths: tuple[str, ...]
    size: int
    transform: str = "resize"
    expected: tuple[tuple[int, int] | None, ...] = ()  # per file: (width, height) from the annotations
    workers: int = 1
    origin: str = ""  # where the files come from and what was checked, added to a decoding error

    def __len__(self) -> int:
        return len(self.paths)

    def decode(self, indices: Sequence[int]) -> torch.Tensor:
        """The images ``indices`` as a K×3×S×S uint8 tensor, decoded in ``workers`` threads."""

        def one(index: int) -> np.ndarray:
            expected = self.expected[index] if self.expected else None
            try:
                return decode_image(self.paths[index], self.size, self.transform, expected)
            except DataFileError as exc:
                if not self.origin:
                    raise
                raise DataFileError(f"{exc}; {self.origin}") from None

        if not indices:
            return torch.zeros(0, 3, self.size, self.size, dtype=torch.uint8)
        if self.workers > 1 and len(indices) > 1:
            with ThreadPoolExecutor(self.workers) as pool:
                arrays = list(pool.map(one, indices))
        else:
            arrays = [one(i) for i in indices]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()

    def subset(self, indices: Sequence[int]) -> ImageFiles:
        expected = tuple(self.expected[i] for i in indices) if self.expected else ()
        paths = tuple(self.paths[i] for i in indices)
        return ImageFiles(paths, self.size, self.transform, expected, self.workers, self.origin)


@dataclass(frozen=True)
class LazyImages:
    """An N×3×S×S uint8 "tensor" whose rows are decoded from their files when indexed.

    :meth:`prefetch` decodes the next batch in a background thread while the current one trains
    (samplers know it: a batch is a pure function of its step), so the accelerator does not wait
    on the decoder; what comes back is the same either way.
    """

    files: ImageFiles
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    _pending: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.files), 3, self.files.size, self.files.size))

    def __len__(self) -> int:
        return len(self.files)

    def to(self, device: torch.device | str) -> LazyImages:
        """Decoded batches will be moved to ``device`` (nothing is decoded now)."""
        return LazyImages(self.files, torch.device(device))

    def _positions(self, index: Any) -> list[int]:
        if isinstance(index, slice):
            return list(range(len(self)))[index]
        if isinstance(index, torch.Tensor):
            return [int(i) for i in index.reshape(-1).tolist()]
        if isinstance(index, int):
            return [index]
        return [int(i) for i in index]

    def prefetch(self, index: Any) -> None:
        """Start decoding ``index`` in the background; the next ``self[index]`` takes the result."""
        positions = tuple(p % len(self) for p in self._positions(index))
        if self._pending.get("positions") == positions:
            return
        if "pool" not in self._pending:
            self._pending["pool"] = ThreadPoolExecutor(1, thread_name_prefix="fusebench-prefetch")
        self._pending.update(positions=positions, future=self._pending["pool"].submit(self.files.decode, positions))

    def _decode(self, positions: list[int]) -> torch.Tensor:
        if self._pending.get("positions") == tuple(positions):
            future = self._pending.pop("future")
            del self._pending["positions"]
            return future.result()
        return self.files.decode(positions)

    def __getitem__(self, index: Any) -> torch.Tensor:
        positions = self._positions(index)
        n = len(self)
        if any(not -n <= p < n for p in positions):
            raise IndexError(f"image index out of range for {n} images")
        batch = self._decode([p % n for p in positions])
        if self.device.type == "cuda":  # page-locked, so the copy overlaps the next batch's decoding
            batch = batch.pin_memory()
        batch = batch.to(self.device, non_blocking=True)
        return batch[0] if isinstance(index, int) else batch

    def head(self, count: int) -> LazyImages:
        return LazyImages(self.files.subset(range(min(count, len(self)))), self.device)

    def materialize(self) -> torch.Tensor:
        """Every image decoded at once (small subsets only, e.g. the robustness grid's)."""
        return self[:]


Images = torch.Tensor | LazyImages
"""What a split holds: resident pixels or a lazy view of its files; indexed alike."""


def load_images(files: ImageFiles, resident_max_mb: float) -> Images:
    """Decode every image now when the split fits in ``resident_max_mb`` MB as uint8, else lazily."""
    size_mb = len(files) * 3 * files.size * files.size / 2**20
    if size_mb > resident_max_mb:
        return LazyImages(files)
    pixels = torch.empty(len(files), 3, files.size, files.size, dtype=torch.uint8)
    for start in range(0, len(files), DECODE_CHUNK):  # filled chunk by chunk: peak ≈ the split + one chunk
        stop = min(start + DECODE_CHUNK, len(files))
        pixels[start:stop] = files.decode(list(range(start, stop)))
    return pixels


def prefetch(images: Images, upcoming: Callable[[], torch.Tensor]) -> None:
    """Let a lazy store start decoding the batch ``upcoming()`` returns; resident pixels need nothing,
    so the indices are not even computed for them."""
    if isinstance(images, LazyImages):
        images.prefetch(upcoming())


def as_tensor(images: Images) -> torch.Tensor:
    """Resident pixels of ``images`` (decodes a lazy store: use on small subsets)."""
    return images.materialize() if isinstance(images, LazyImages) else images


def take_head(images: Images, count: int) -> Images:
    return images.head(count) if isinstance(images, LazyImages) else images[:count]


def random_resized_crop(
    images: torch.Tensor,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator,
) -> torch.Tensor:
    """Each B×3×S×S image cropped at a random area in ``scale`` and aspect in ``ratio``, resized back to S.

    The draw follows torchvision's ``RandomResizedCrop.get_params`` (10 tries, then the centre
    crop at the nearest allowed ratio), with every random number from ``generator``.
    """

    size = int(images.shape[-1])
    out = torch.empty_like(images)
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for k in range(images.shape[0]):
        top, left, height, width = _crop_box(size, scale, log_ratio, ratio, generator)
        out[k] = TF.resized_crop(images[k], top, left, height, width, [size, size], antialias=True)
    return out


def _crop_box(
    size: int,
    scale: tuple[float, float],
    log_ratio: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator,
) -> tuple[int, int, int, int]:

    area = size * size
    for _ in range(10):
        target = area * float(torch.empty(1).uniform_(scale[0], scale[1], generator=generator))
        aspect = math.exp(float(torch.empty(1).uniform_(log_ratio[0], log_ratio[1], generator=generator)))
        width = round(math.sqrt(target * aspect))
        height = round(math.sqrt(target / aspect))
        if 0 < width <= size and 0 < height <= size:
            top = int(torch.randint(0, size - height + 1, (1,), generator=generator))
            left = int(torch.randint(0, size - width + 1, (1,), generator=generator))
            return top, left, height, width
    aspect = min(max(1.0, ratio[0]), ratio[1])
    width, height = (size, round(size / aspect)) if aspect >= 1 else (round(size * aspect), size)
    return (size - height) // 2, (size - width) // 2, height, width
