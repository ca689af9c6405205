"""Image loading: decode + crop + resize of a *selected* list of files, cached by content.

Decoding runs on a thread pool (Pillow releases the GIL while decoding and resampling) and writes
straight into one preallocated ``uint8 (N, 3, H, W)`` tensor, so a dataset is never held in
memory twice. The content-addressed cache key hashes every file's path, size and modification
time, every crop/scale request, the output size and mode, the loader version and the Pillow
version, so a second load reads one tensor file and any change reloads exactly what it touches.

Geometry convention: boxes are ``xyxy`` in pixels with the image's top-left corner at (0, 0);
a loaded image records the affine map ``out = source · s + o`` per axis (``transforms`` rows
``(sx, sy, ox, oy)``), which the adapters apply to their boxes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from privbench.api.adapter import DEFAULT_MAX_IMAGE_PIXELS
from privbench.api.arrays import ArrayFile, ArrayWriter, open_array
from privbench.api.cache import load_verified
from privbench.api.errors import DataError
from privbench.data.formats.files import EXAMPLES_IN_MESSAGES, stat_files
from privbench.data.formats.fingerprints import tensor_digest
from privbench.data.formats.pixels import to_rgb8

#: Bumped whenever the loader's output for the same files and options changes (enters cache keys).
LOADER_VERSION = "1"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")

RESIZE_MODES = ("stretch", "letterbox")


@dataclass(frozen=True)
class ImageRequest:
    """One image to load: ``crop`` is an ``(x0, y0, x1, y1)`` region in source pixels (parts outside
    the image are zero); ``max_scale`` caps the letterbox scale factor (e.g. FDDB's ≤ 40 px
    rule)."""

    path: Path
    crop: tuple[float, float, float, float] | None = None
    max_scale: float | None = None
    #: Then keep only the centred square of this side (pixels) of the region ...
    center_crop_px: float | None = None
    #: ... or the largest centred square of the region (ImageNet-style centre crop).
    center_square: bool = False


@dataclass
class LoadedImages:
    """Images of one request list, with the per-image geometry and a digest of the pixels."""

    images: torch.Tensor  # uint8 (N, 3, H, W)
    transforms: torch.Tensor  # float64 (N, 4): sx, sy, ox, oy with out = source * s + o
    source_sizes: torch.Tensor  # int64 (N, 2): width, height of each source file
    digest: str  # SHA-256 of the pixel bytes (hex)
    from_cache: bool = False
    #: The image store the images were written to (``images`` is then its memory map).
    store: ArrayFile | None = None

    def map_boxes(self, row: int, boxes_xyxy: torch.Tensor, clip: bool = True) -> torch.Tensor:
        """Boxes of source image ``row`` (xyxy, source pixels) in output pixels, clipped to the
        source image's footprint in the output when ``clip``."""
        sx, sy, ox, oy = (float(v) for v in self.transforms[row])
        scale = torch.tensor([sx, sy, sx, sy], dtype=torch.float64)
        offset = torch.tensor([ox, oy, ox, oy], dtype=torch.float64)
        mapped = boxes_xyxy.reshape(-1, 4).double() * scale + offset
        if clip and mapped.numel():
            width, height = (float(v) for v in self.source_sizes[row])
            low = torch.tensor([ox, oy, ox, oy], dtype=torch.float64)
            high = torch.tensor([ox + sx * width, oy + sy * height] * 2, dtype=torch.float64)
            out_h, out_w = self.images.shape[-2:]
            high = torch.minimum(
                high, torch.tensor([out_w, out_h, out_w, out_h], dtype=torch.float64)
            )
            low = torch.maximum(low, torch.zeros(4, dtype=torch.float64))
            mapped = torch.maximum(torch.minimum(mapped, high), low)
        return mapped.float()


def default_workers() -> int:
    """Decoding threads: the CPUs this process may use, at most 16."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(16, available))


def _normalise_size(size: int | tuple[int, int] | Sequence[int] | None) -> tuple[int, int] | None:
    """``(height, width)`` or None."""
    if size is None:
        return None
    if isinstance(size, int):
        height = width = size
    else:
        height, width = (int(v) for v in size)
    if height < 1 or width < 1:
        raise DataError(f"image size must be positive; got {size!r}.")
    return height, width


def _plan(
    request: ImageRequest, source_w: int, source_h: int, size: tuple[int, int] | None, mode: str
):
    """Region (x0, y0, x1, y1), resized (w, h) and paste offset (x, y) of one image."""
    x0, y0, x1, y1 = (
        request.crop if request.crop is not None else (0.0, 0.0, float(source_w), float(source_h))
    )
    side = (
        request.center_crop_px
        if request.center_crop_px is not None
        else (min(x1 - x0, y1 - y0) if request.center_square else None)
    )
    if side is not None:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        x0, y0, x1, y1 = cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2
    region_w, region_h = x1 - x0, y1 - y0
    if region_w <= 0 or region_h <= 0:
        raise DataError(f"{request.path}: empty crop region {request.crop!r}.")
    if size is None:
        return (x0, y0, x1, y1), (round(region_w), round(region_h)), (0, 0)
    out_h, out_w = size
    if mode == "stretch":
        return (x0, y0, x1, y1), (out_w, out_h), (0, 0)
    scale = min(out_w / region_w, out_h / region_h)
    if request.max_scale is not None:
        scale = min(scale, request.max_scale)
    new_w = min(out_w, max(1, round(region_w * scale)))
    new_h = min(out_h, max(1, round(region_h * scale)))
    return (x0, y0, x1, y1), (new_w, new_h), ((out_w - new_w) // 2, (out_h - new_h) // 2)


def too_large_error(path: Path, width: int, height: int, max_pixels: int) -> DataError:
    return DataError(
        f"Image file {str(path)!r} is {width}x{height} = {width * height:,} pixels, over the "
        f"per-image limit of {max_pixels:,} pixels; downscale the file, or raise the dataset's "
        "max_image_pixels option if the machine has the memory for it."
    )


def _decode_one(
    request: ImageRequest,
    size: tuple[int, int] | None,
    mode: str,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
):
    """Decode, crop and resize one file: (HWC uint8 array, region, resized size, offset, source
    size). A file of more than ``max_pixels`` pixels is decoded downscaled (JPEG) or refused."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(request.path) as picture:
            source_w, source_h = picture.size
            region, (new_w, new_h), offset = _plan(request, source_w, source_h, size, mode)
            x0, y0, x1, y1 = region
            needed = max(new_w / (x1 - x0), new_h / (y1 - y0))  # output pixels per source pixel
            if picture.format == "JPEG" and needed <= 0.25:
                # Decode at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) where that still leaves
                # ≥ 2 decoded pixels per output pixel, so the antialiased resize below keeps its
                # quality: nearly the same result for a fraction of the decoding work.
                picture.draft(
                    "RGB", (math.ceil(source_w * needed * 2), math.ceil(source_h * needed * 2))
                )
            if picture.size[0] * picture.size[1] > max_pixels:
                raise too_large_error(request.path, source_w, source_h, max_pixels)
            picture = to_rgb8(picture)
            fx, fy = picture.size[0] / source_w, picture.size[1] / source_h
            box = (x0 * fx, y0 * fy, x1 * fx, y1 * fy)
            if box != (0.0, 0.0, float(picture.size[0]), float(picture.size[1])):
                # Crop to whole pixels around the region (zero outside the image), keep the fraction
                # for resize.
                ix0, iy0 = math.floor(box[0]), math.floor(box[1])
                ix1, iy1 = math.ceil(box[2]), math.ceil(box[3])
                picture = picture.crop((ix0, iy0, ix1, iy1))
                box = (box[0] - ix0, box[1] - iy0, box[2] - ix0, box[3] - iy0)
            if (new_w, new_h) != picture.size or box != (
                0.0,
                0.0,
                float(picture.size[0]),
                float(picture.size[1]),
            ):
                picture = picture.resize((new_w, new_h), Image.Resampling.BICUBIC, box=box)
            array = np.array(
                picture, dtype=np.uint8
            )  # a writable copy, independent of Pillow's buffer
    except FileNotFoundError:
        raise DataError(f"Image file {str(request.path)!r} does not exist.") from None
    except Image.DecompressionBombError:  # larger still than Pillow's own limit
        raise too_large_error(request.path, *header_size(request.path), max_pixels) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(
            f"Image file {str(request.path)!r} cannot be decoded ({error}); replace it with the "
            f"dataset's original file."
        ) from None
    return array, region, (new_w, new_h), offset, (source_w, source_h)


def _zeros(shape: tuple[int, ...]) -> torch.Tensor:
    return torch.zeros(shape, dtype=torch.uint8)


def header_size(path: Path) -> tuple[int, int]:
    """Width and height from the file's header, without Pillow's decompression-bomb check."""
    from PIL import Image

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as picture:
            return picture.size
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def _decode_all(
    requests: Sequence[ImageRequest],
    size: tuple[int, int] | None,
    mode: str,
    workers: int,
    allocate: Callable[[tuple[int, ...]], Any] = _zeros,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> LoadedImages:
    """Decode every request into one zero-initialized ``uint8`` array from ``allocate(shape)``:
    a tensor in memory, or the rows of an image store being written (decoded images go
    straight to disk, so a split is never held in memory)."""
    count = len(requests)
    transforms = torch.zeros(count, 4, dtype=torch.float64)
    source_sizes = torch.zeros(count, 2, dtype=torch.long)
    images: torch.Tensor | None = None
    if size is not None:
        images = allocate((count, 3, size[0], size[1]))
    native_shape: list[tuple[int, int, str]] = []

    def place(row: int, result) -> None:
        nonlocal images
        array, (x0, y0, x1, y1), (new_w, new_h), (off_x, off_y), (source_w, source_h) = result
        if images is None:  # native size: the first image decides, the rest must agree
            images = allocate((count, 3, array.shape[0], array.shape[1]))
            native_shape.append((array.shape[0], array.shape[1], str(requests[row].path)))
        height, width = images.shape[-2:]
        if size is None and array.shape[:2] != (height, width):
            raise DataError(
                f"Image {str(requests[row].path)!r} is {array.shape[1]}x{array.shape[0]} pixels "
                f"but "
                f"{native_shape[0][2]!r} is {width}x{height}; images read at their native size "
                f"must all have one size "
                f"(pass a size to resize them)."
            )
        images[row, :, off_y : off_y + new_h, off_x : off_x + new_w] = torch.from_numpy(
            array
        ).permute(2, 0, 1)
        sx, sy = new_w / (x1 - x0), new_h / (y1 - y0)
        transforms[row] = torch.tensor(
            [sx, sy, off_x - x0 * sx, off_y - y0 * sy], dtype=torch.float64
        )
        source_sizes[row] = torch.tensor([source_w, source_h])

    if count:
        first = _decode_one(requests[0], size, mode, max_pixels)
        place(0, first)
        if workers <= 1 or count < 3:
            for row in range(1, count):
                place(row, _decode_one(requests[row], size, mode, max_pixels))
        else:
            with ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix="privbench-decode"
            ) as pool:
                # Bounded submission keeps at most a few decoded images per worker in flight.
                window = workers * 4
                pending: dict[int, Any] = {}
                next_row = 1
                done = 1
                while done < count:
                    while next_row < count and len(pending) < window:
                        pending[next_row] = pool.submit(
                            _decode_one, requests[next_row], size, mode, max_pixels
                        )
                        next_row += 1
                    row = min(pending)
                    place(row, pending.pop(row).result())
                    done += 1
    if images is None:
        height, width = size if size is not None else (0, 0)
        images = allocate((0, 3, height, width))
    if allocate is not _zeros:  # the store's writer computes the digest from the file
        return LoadedImages(images, transforms, source_sizes, "")
    return LoadedImages(images, transforms, source_sizes, tensor_digest(images))


def images_cache_key(
    requests: Sequence[ImageRequest], stats: Sequence[os.stat_result], size, mode: str
) -> str:
    """Hash of everything the loaded tensor depends on: each file's absolute path, size and
    modification time, the crop and scale requests, the output size and mode, loader and Pillow
    versions."""
    import PIL

    digest = hashlib.sha256()
    digest.update(
        json.dumps(
            {"loader": LOADER_VERSION, "pillow": PIL.__version__, "size": size, "mode": mode}
        ).encode()
    )
    for request, stat in zip(requests, stats):
        digest.update(
            f"{os.path.abspath(request.path)}\0{stat.st_size}\0{stat.st_mtime_ns}"
            f"\0{request.crop}\0{request.max_scale}"
            f"\0{request.center_crop_px}\0{request.center_square}\n".encode()
        )
    return digest.hexdigest()[:32]


def _read_cached(path: Path, count: int) -> LoadedImages | None:
    """The cached split at ``path`` (its image store ``.npy`` and the geometry ``.pt`` beside it)
    when it holds ``count`` images; None when absent or damaged (a damaged cache file is
    recomputed, never trusted)."""
    store = open_array(path.with_suffix(".npy"))
    geometry = path.with_suffix(".pt")
    if store is None or not geometry.is_file() or len(store) != count:
        return None
    try:
        payload = load_verified(geometry)
        if payload is None:
            return None
        return LoadedImages(
            store.tensor(),
            payload["transforms"],
            payload["source_sizes"],
            payload["digest"],
            from_cache=True,
            store=store,
        )
    except Exception:  # noqa: BLE001 - any unreadable cache file means: decode again
        return None


def load_images(
    requests: Sequence[ImageRequest],
    *,
    size: int | tuple[int, int] | None,
    mode: str = "stretch",
    workers: int | None = None,
    cache_dir: str | Path | None = None,
    namespace: str = "images",
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> LoadedImages:
    """Decode, crop and resize ``requests`` into one ``uint8 (N, 3, H, W)`` array.

    ``size``: output ``H = W`` (int) or ``(H, W)``; None keeps the native size. ``mode``:
    ``stretch`` (the region fills the output) or ``letterbox`` (aspect kept, centred on zeros).
    With ``cache_dir`` the images are decoded straight into an image store (``.npy``, see
    :mod:`privbench.api.arrays`) under ``<cache_dir>/images/``, content-addressed by
    :func:`images_cache_key`, and returned memory-mapped: a second load opens the file, it does
    not read it. Without, they are one tensor in memory. Every file is ``stat``-ed first and
    missing ones raise one DataError that lists them; a file that cannot be decoded (truncated,
    not an image, more than ``max_pixels`` pixels where it cannot be decoded downscaled) fails
    the load with a DataError naming it.
    """
    if mode not in RESIZE_MODES:
        raise DataError(f"Unknown resize mode {mode!r}; accepted: {', '.join(RESIZE_MODES)}.")
    shape = _normalise_size(size)
    stats, missing = stat_files([r.path for r in requests])
    if missing:
        shown = ", ".join(str(p) for p in missing[:EXAMPLES_IN_MESSAGES])
        more = (
            f" and {len(missing) - EXAMPLES_IN_MESSAGES} more"
            if len(missing) > EXAMPLES_IN_MESSAGES
            else ""
        )
        raise DataError(
            f"{len(missing)} of the {len(requests)} requested images are missing: {shown}{more}."
        )
    workers = default_workers() if workers is None else max(1, int(workers))
    if cache_dir is None:
        return _decode_all(requests, shape, mode, workers, max_pixels=max_pixels)

    from privbench.api.cache import atomic_torch_save

    key = images_cache_key(requests, stats, shape, mode)
    path = Path(cache_dir) / "images" / f"{namespace}-{key}.pt"
    cached = _read_cached(path, len(requests))
    if cached is not None:
        return cached
    with ExitStack() as stack:

        def allocate(array_shape: tuple[int, ...]):
            writer = ArrayWriter(path.with_suffix(".npy"), array_shape, torch.uint8)
            return stack.enter_context(writer).rows()  # each image written to the file

        loaded = _decode_all(requests, shape, mode, workers, allocate, max_pixels)
        del loaded.images
    store = ArrayFile(path.with_suffix(".npy"))
    atomic_torch_save(
        {
            "transforms": loaded.transforms,
            "source_sizes": loaded.source_sizes,
            "digest": store.digest,
        },
        path,
    )
    return LoadedImages(
        store.tensor(), loaded.transforms, loaded.source_sizes, store.digest, store=store
    )
