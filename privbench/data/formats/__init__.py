"""Low-level readers shared by the real-data adapters (and by ``synthfaces``, which writes the same formats).

- **ImageFolder** scan: one sub-folder per class (sorted names → labels ``0..C−1``), images inside.
- **COCO** ``instances_*.json`` / ``captions_*.json`` readers with checked structure.
- **Image loading**: decode + crop + resize of a *selected* list of files with a thread pool
  (Pillow releases the GIL while decoding and resampling), written straight into one
  preallocated ``uint8 (N, 3, H, W)`` tensor, so a dataset is never held in memory twice.
- **Content-addressed cache** of the resized tensors: the key hashes every file's path, size and
  modification time, every crop/scale request, the output size and mode, the loader version and
  the Pillow version, so a second load reads one tensor file and any change reloads exactly what
  it touches.
- **Fingerprints**, deterministic **hash orders** (a file's place in a shuffle depends only on its
  own name and the seed, so adding files elsewhere never reshuffles a split), clear
  :class:`~privbench.api.errors.DataError` messages for missing files and malformed annotation lines,
  and the :class:`CheckReport` printed by ``privbench data check``.

Geometry convention: boxes are ``xyxy`` in pixels with the image's top-left corner at (0, 0);
a loaded image records the affine map ``out = source · s + o`` per axis (``transforms`` rows
``(sx, sy, ox, oy)``), which the adapters apply to their boxes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from pydantic import Field

from privbench.api.config import ComponentConfig, validate_config
from privbench.data.containers import SPLITS, LabeledImages, LabeledSplits, Scenes, SceneSplits
from privbench.api.errors import DataError

#: Bumped whenever the loader's output for the same files and options changes (enters cache keys).
LOADER_VERSION = "1"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")
RESIZE_MODES = ("stretch", "letterbox")
#: How many missing or bad paths an error message names before summarising the rest.
EXAMPLES_IN_MESSAGES = 5


# -- errors --------------------------------------------------------------------------------------
class AnnotationError(DataError):
    """A malformed line (or JSON entry) of an annotation file; the message names file and line."""

    def __init__(self, path: str | Path, line: int | None, problem: str, expected: str = "", text: str | None = None):
        self.path = Path(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        message = f"{where}: {problem}."
        if text is not None:
            message += f" The line reads {text.rstrip()!r}."
        if expected:
            message += f" Expected {expected}."
        message += " Fix or restore that file (the dataset's published copy has this exact syntax)."
        super().__init__(message)


def missing_files_error(missing: Sequence[str | Path], total: int, what: str, root: str | Path, dataset: str) -> DataError:
    shown = ", ".join(str(p) for p in list(missing)[:EXAMPLES_IN_MESSAGES])
    more = f" and {len(missing) - EXAMPLES_IN_MESSAGES} more" if len(missing) > EXAMPLES_IN_MESSAGES else ""
    return DataError(
        f"{len(missing)} of the {total} {what} are missing under {str(root)!r}: {shown}{more}. "
        f"Point the path at the complete {dataset} folder (run `privbench data check {dataset} PATH` "
        f"to list everything that is missing) or lower the counts that select images."
    )


def require_files(paths: Sequence[Path], what: str, root: str | Path, dataset: str) -> None:
    """Raise :func:`missing_files_error` when any of ``paths`` (the ``what`` of ``dataset`` under ``root``) is missing."""
    _, missing = stat_files(paths)
    if missing:
        raise missing_files_error(missing, len(paths), what, root, dataset)


def require_path(path: Path, what: str, dataset: str, hint: str = "") -> Path:
    """``path`` if it exists, else a DataError naming it, what it should hold and the dataset."""
    if not path.exists():
        raise DataError(
            f"{dataset}: {what} {str(path)!r} does not exist.{(' ' + hint) if hint else ''} "
            f"See `privbench data check {dataset} PATH` and the expected layout in the README."
        )
    return path


def stat_files(paths: Sequence[Path]) -> tuple[list[os.stat_result | None], list[Path]]:
    """``os.stat`` of every path (None where missing) and the list of missing paths."""
    stats: list[os.stat_result | None] = []
    missing: list[Path] = []
    for path in paths:
        try:
            stats.append(path.stat())
        except FileNotFoundError:
            stats.append(None)
            missing.append(path)
        except NotADirectoryError:
            stats.append(None)
            missing.append(path)
    return stats, missing


# -- deterministic order ------------------------------------------------------------------------
def hash_order(names: Sequence[str], seed: int, *salt: Any) -> list[int]:
    """Indices of ``names`` sorted by SHA-256 of (seed, salt, name): a seeded shuffle in which an
    item's rank depends only on its own name, never on which other items exist or on library versions."""
    prefix = json.dumps([int(seed), *salt], default=str)
    keys = [hashlib.sha256(f"{prefix}\0{name}".encode()).digest() for name in names]
    return sorted(range(len(names)), key=keys.__getitem__)


def hash_cap(items: Sequence[Any], names: Sequence[str], cap: int | None, seed: int, *salt: Any) -> list[Any]:
    """``items``, or (when there are more than ``cap``) the ``cap`` of them first in the seeded hash
    order of their ``names``, kept in their original order."""
    if cap is None or len(items) <= cap:
        return list(items)
    keep = set(hash_order(names, seed, *salt)[:cap])
    return [item for i, item in enumerate(items) if i in keep]


def split_per_identity(
    items: Sequence[Any], names: Sequence[str], test: int, val: int, max_train: int | None, seed: int, dataset: str
) -> dict[str, list[Any]]:
    """One identity's ``items`` divided in the seeded hash order of their ``names``: the first
    ``test`` go to test, the next ``val`` to val, the rest (at most ``max_train``) to train; each
    split sorted by name."""
    order = hash_order(names, seed, dataset, "split")
    train = order[test + val:]
    if max_train is not None:
        train = train[:max_train]
    chosen = {"test": order[:test], "val": order[test:test + val], "train": train}
    return {split: [items[i] for i in sorted(rows, key=names.__getitem__)] for split, rows in chosen.items()}


# -- ImageFolder -----------------------------------------------------------------------------------
@dataclass
class ImageFolderIndex:
    """The files of an ImageFolder: parallel lists of paths and labels, and the class names."""

    root: Path
    paths: list[Path]
    labels: list[int]
    classes: list[str]

    def __len__(self) -> int:
        return len(self.paths)


def list_images(folder: Path, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files directly inside ``folder`` (by extension, case-insensitive), sorted by name."""
    accepted = {e.lower() for e in extensions}
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if e.is_file() and os.path.splitext(e.name)[1].lower() in accepted)
    return [folder / name for name in names]


def scan_image_folder(root: str | Path, extensions: Sequence[str] = IMAGE_EXTENSIONS, classes: Sequence[str] | None = None) -> ImageFolderIndex:
    """Index an ImageFolder without reading any image: class = sub-folder (sorted), files sorted by name.

    ``classes`` restricts the scan to those sub-folders (in that order); each must exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"ImageFolder {str(root)!r} does not exist (expected one sub-folder of images per class).")
    if classes is None:
        with os.scandir(root) as entries:
            classes = sorted(e.name for e in entries if e.is_dir())
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            raise DataError(f"ImageFolder {str(root)!r} has no class folder {name!r}.")
        files = list_images(folder, extensions)
        paths.extend(files)
        labels.extend([label] * len(files))
    if not paths:
        raise DataError(
            f"ImageFolder {str(root)!r} holds no images (looked for {', '.join(extensions)} files in "
            f"{len(classes)} class sub-folders)."
        )
    return ImageFolderIndex(root, paths, labels, list(classes))


def read_image_folder(
    root: str | Path,
    *,
    size: int | tuple[int, int] | None = None,
    mode: str = "stretch",
    workers: int | None = None,
    cache_dir: str | Path | None = None,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> LabeledImages:
    """An ImageFolder read into :class:`LabeledImages`. ``size=None`` keeps the native size (all
    images must then share one size); ``cache_dir`` enables the content-addressed tensor cache."""
    index = scan_image_folder(root, extensions)
    loaded = load_images(
        [ImageRequest(p) for p in index.paths], size=size, mode=mode, workers=workers, cache_dir=cache_dir, namespace="imagefolder"
    )
    return LabeledImages(loaded.images, torch.tensor(index.labels, dtype=torch.long), index.classes)


# -- COCO JSON --------------------------------------------------------------------------------------
@dataclass
class CocoImage:
    id: int
    file_name: str
    width: int | None = None
    height: int | None = None


@dataclass
class CocoBox:
    id: int
    image_id: int
    bbox: tuple[float, float, float, float]  # COCO [x, y, width, height] in pixels
    category_id: int
    iscrowd: int = 0


@dataclass
class CocoInstances:
    """``instances_*.json``: images, categories (sorted by id) and boxes per image (sorted by annotation id)."""

    path: Path
    images: dict[int, CocoImage]
    categories: list[tuple[int, str]]
    boxes: dict[int, list[CocoBox]]

    @property
    def category_names(self) -> list[str]:
        return [name for _, name in self.categories]

    @property
    def category_index(self) -> dict[int, int]:
        return {cid: i for i, (cid, _) in enumerate(self.categories)}


@dataclass
class CocoCaptions:
    """``captions_*.json``: images and reference captions per image (sorted by annotation id)."""

    path: Path
    images: dict[int, CocoImage]
    captions: dict[int, list[str]]


def read_json(path: str | Path, what: str) -> Any:
    """Parse a JSON file; syntax errors become an AnnotationError with the line number."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} {str(path)!r} does not exist.")
    try:
        with open(path, "rb") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise AnnotationError(path, error.lineno, f"invalid JSON ({error.msg}, column {error.colno})", f"a {what}") from None
    except UnicodeDecodeError as error:
        raise AnnotationError(path, None, f"not UTF-8 text ({error.reason})", f"a {what}") from None


def _require_list(payload: Any, key: str, path: Path, what: str) -> list:
    if not isinstance(payload, dict) or not isinstance(payload.get(key), list):
        raise AnnotationError(path, None, f"has no list {key!r} at the top level", f"a COCO {what} JSON with keys 'images' and 'annotations'")
    return payload[key]


def _entry_error(path: Path, key: str, position: int, entry: Any, problem: str, expected: str) -> AnnotationError:
    ident = entry.get("id") if isinstance(entry, dict) else None
    return AnnotationError(path, None, f"{key}[{position}]{f' (id {ident})' if ident is not None else ''} {problem}", expected)


def _coco_images(payload: Any, path: Path, what: str) -> dict[int, CocoImage]:
    images: dict[int, CocoImage] = {}
    for position, entry in enumerate(_require_list(payload, "images", path, what)):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), int) or not isinstance(entry.get("file_name"), str):
            raise _entry_error(path, "images", position, entry, "lacks an integer 'id' or a string 'file_name'", 'entries like {"id": 9, "file_name": "COCO_train2014_000000000009.jpg", "width": 640, "height": 480}')
        width, height = entry.get("width"), entry.get("height")
        images[entry["id"]] = CocoImage(entry["id"], entry["file_name"], width if isinstance(width, int) else None, height if isinstance(height, int) else None)
    return images


def read_coco_instances(path: str | Path) -> CocoInstances:
    """Parse a COCO ``instances_*.json`` (object detection annotations)."""
    path = Path(path)
    payload = read_json(path, "COCO instances JSON")
    images = _coco_images(payload, path, "instances")
    categories_raw = _require_list(payload, "categories", path, "instances")
    categories: list[tuple[int, str]] = []
    for position, entry in enumerate(categories_raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), int) or not isinstance(entry.get("name"), str):
            raise _entry_error(path, "categories", position, entry, "lacks an integer 'id' or a string 'name'", 'entries like {"id": 1, "name": "person", "supercategory": "person"}')
        categories.append((entry["id"], entry["name"]))
    categories.sort()
    known_categories = {cid for cid, _ in categories}
    boxes: dict[int, list[CocoBox]] = {image_id: [] for image_id in images}
    annotations = _require_list(payload, "annotations", path, "instances")
    for position, entry in enumerate(annotations):
        bbox = entry.get("bbox") if isinstance(entry, dict) else None
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("id"), int)
            or not isinstance(entry.get("image_id"), int)
            or not isinstance(entry.get("category_id"), int)
            or not isinstance(bbox, list)
            or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox)
        ):
            raise _entry_error(path, "annotations", position, entry, "is not a valid box annotation", 'entries like {"id": 1, "image_id": 9, "category_id": 1, "bbox": [x, y, width, height], "iscrowd": 0}')
        if entry["image_id"] not in boxes:
            raise _entry_error(path, "annotations", position, entry, f"refers to image_id {entry['image_id']}, which is not in 'images'", "every annotation's image_id to be listed in 'images'")
        if entry["category_id"] not in known_categories:
            raise _entry_error(path, "annotations", position, entry, f"refers to category_id {entry['category_id']}, which is not in 'categories'", "every annotation's category_id to be listed in 'categories'")
        boxes[entry["image_id"]].append(
            CocoBox(entry["id"], entry["image_id"], tuple(float(v) for v in bbox), entry["category_id"], int(entry.get("iscrowd", 0) or 0))
        )
    for records in boxes.values():
        records.sort(key=lambda r: r.id)
    return CocoInstances(path, images, categories, boxes)


def read_coco_captions(path: str | Path) -> CocoCaptions:
    """Parse a COCO ``captions_*.json`` (five or more reference captions per image)."""
    path = Path(path)
    payload = read_json(path, "COCO captions JSON")
    images = _coco_images(payload, path, "captions")
    collected: dict[int, list[tuple[int, str]]] = {image_id: [] for image_id in images}
    for position, entry in enumerate(_require_list(payload, "annotations", path, "captions")):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("id"), int)
            or not isinstance(entry.get("image_id"), int)
            or not isinstance(entry.get("caption"), str)
        ):
            raise _entry_error(path, "annotations", position, entry, "is not a valid caption annotation", 'entries like {"id": 48, "image_id": 9, "caption": "A man riding a wave on a surfboard."}')
        if entry["image_id"] not in collected:
            raise _entry_error(path, "annotations", position, entry, f"refers to image_id {entry['image_id']}, which is not in 'images'", "every annotation's image_id to be listed in 'images'")
        collected[entry["image_id"]].append((entry["id"], entry["caption"]))
    captions = {image_id: [text for _, text in sorted(items)] for image_id, items in collected.items()}
    return CocoCaptions(path, images, captions)


def xywh_to_xyxy(xywh: torch.Tensor) -> torch.Tensor:
    """COCO ``[x, y, w, h]`` → ``[x0, y0, x1, y1]`` (float32, shape (k, 4))."""
    xywh = xywh.reshape(-1, 4)
    return torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], dim=1)


def read_coco_scenes(
    image_dir: str | Path,
    instances_json: str | Path,
    captions_json: str | Path | None = None,
    *,
    size: int | tuple[int, int] | None = None,
    mode: str = "stretch",
    workers: int | None = None,
    cache_dir: str | Path | None = None,
) -> Scenes:
    """COCO instances (boxes ``[x, y, w, h]`` → ``xyxy``) and captions of every image listed in
    ``instances_json`` (sorted by id), images read from ``image_dir``. ``size=None`` keeps the
    native size (all images must share it); otherwise images are resized and boxes mapped."""
    image_dir = Path(image_dir)
    instances = read_coco_instances(instances_json)
    captions = read_coco_captions(captions_json) if captions_json is not None else None
    ordered = [instances.images[i] for i in sorted(instances.images)]
    paths = [image_dir / image.file_name for image in ordered]
    _, missing = stat_files(paths)
    if missing:
        raise missing_files_error(missing, len(paths), f"images listed in {Path(instances_json).name}", image_dir, "coco")
    loaded = load_images([ImageRequest(p) for p in paths], size=size, mode=mode, workers=workers, cache_dir=cache_dir, namespace="coco-scenes")
    category_index = instances.category_index
    boxes, labels = [], []
    for row, image in enumerate(ordered):
        records = instances.boxes[image.id]
        xyxy = xywh_to_xyxy(torch.tensor([r.bbox for r in records], dtype=torch.float32))
        if size is not None:
            xyxy = loaded.map_boxes(row, xyxy)
        boxes.append(xyxy)
        labels.append(torch.tensor([category_index[r.category_id] for r in records], dtype=torch.long))
    texts = [list(captions.captions.get(image.id, [])) if captions is not None else [] for image in ordered]
    return Scenes(loaded.images, boxes, labels, texts, instances.category_names, [image.id for image in ordered])


# -- image loading ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageRequest:
    """One image to load: ``crop`` is an ``(x0, y0, x1, y1)`` region in source pixels (parts outside
    the image are zero); ``max_scale`` caps the letterbox scale factor (e.g. FDDB's ≤ 40 px rule)."""

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
            high = torch.minimum(high, torch.tensor([out_w, out_h, out_w, out_h], dtype=torch.float64))
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


def _plan(request: ImageRequest, source_w: int, source_h: int, size: tuple[int, int] | None, mode: str):
    """Region (x0, y0, x1, y1), resized (w, h) and paste offset (x, y) of one image."""
    x0, y0, x1, y1 = request.crop if request.crop is not None else (0.0, 0.0, float(source_w), float(source_h))
    side = request.center_crop_px if request.center_crop_px is not None else (min(x1 - x0, y1 - y0) if request.center_square else None)
    if side is not None:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        x0, y0, x1, y1 = cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2
    region_w, region_h = x1 - x0, y1 - y0
    if region_w <= 0 or region_h <= 0:
        raise DataError(f"{request.path}: empty crop region {request.crop!r}.")
    if size is None:
        return (x0, y0, x1, y1), (int(round(region_w)), int(round(region_h))), (0, 0)
    out_h, out_w = size
    if mode == "stretch":
        return (x0, y0, x1, y1), (out_w, out_h), (0, 0)
    scale = min(out_w / region_w, out_h / region_h)
    if request.max_scale is not None:
        scale = min(scale, request.max_scale)
    new_w = min(out_w, max(1, int(round(region_w * scale))))
    new_h = min(out_h, max(1, int(round(region_h * scale))))
    return (x0, y0, x1, y1), (new_w, new_h), ((out_w - new_w) // 2, (out_h - new_h) // 2)


def _decode_one(request: ImageRequest, size: tuple[int, int] | None, mode: str):
    """Decode, crop and resize one file: (HWC uint8 array, region, resized size, offset, source size)."""
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
                picture.draft("RGB", (math.ceil(source_w * needed * 2), math.ceil(source_h * needed * 2)))
            picture = picture.convert("RGB")
            fx, fy = picture.size[0] / source_w, picture.size[1] / source_h
            box = (x0 * fx, y0 * fy, x1 * fx, y1 * fy)
            if box != (0.0, 0.0, float(picture.size[0]), float(picture.size[1])):
                # Crop to whole pixels around the region (zero outside the image), keep the fraction for resize.
                ix0, iy0 = math.floor(box[0]), math.floor(box[1])
                ix1, iy1 = math.ceil(box[2]), math.ceil(box[3])
                picture = picture.crop((ix0, iy0, ix1, iy1))
                box = (box[0] - ix0, box[1] - iy0, box[2] - ix0, box[3] - iy0)
            if (new_w, new_h) != picture.size or box != (0.0, 0.0, float(picture.size[0]), float(picture.size[1])):
                picture = picture.resize((new_w, new_h), Image.Resampling.BICUBIC, box=box)
            array = np.array(picture, dtype=np.uint8)  # a writable copy, independent of Pillow's buffer
    except FileNotFoundError:
        raise DataError(f"Image file {str(request.path)!r} does not exist.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"Image file {str(request.path)!r} cannot be decoded ({error}); replace it with the dataset's original file.") from None
    return array, region, (new_w, new_h), offset, (source_w, source_h)


def _decode_all(requests: Sequence[ImageRequest], size: tuple[int, int] | None, mode: str, workers: int) -> LoadedImages:
    count = len(requests)
    transforms = torch.zeros(count, 4, dtype=torch.float64)
    source_sizes = torch.zeros(count, 2, dtype=torch.long)
    images: torch.Tensor | None = None
    if size is not None:
        images = torch.zeros(count, 3, size[0], size[1], dtype=torch.uint8)
    native_shape: list[tuple[int, int, str]] = []

    def place(row: int, result) -> None:
        nonlocal images
        array, (x0, y0, x1, y1), (new_w, new_h), (off_x, off_y), (source_w, source_h) = result
        if images is None:  # native size: the first image decides, the rest must agree
            images = torch.zeros(count, 3, array.shape[0], array.shape[1], dtype=torch.uint8)
            native_shape.append((array.shape[0], array.shape[1], str(requests[row].path)))
        height, width = images.shape[-2:]
        if size is None and array.shape[:2] != (height, width):
            raise DataError(
                f"Image {str(requests[row].path)!r} is {array.shape[1]}x{array.shape[0]} pixels but "
                f"{native_shape[0][2]!r} is {width}x{height}; images read at their native size must all have one size "
                f"(pass a size to resize them)."
            )
        images[row, :, off_y:off_y + new_h, off_x:off_x + new_w] = torch.from_numpy(array).permute(2, 0, 1)
        sx, sy = new_w / (x1 - x0), new_h / (y1 - y0)
        transforms[row] = torch.tensor([sx, sy, off_x - x0 * sx, off_y - y0 * sy], dtype=torch.float64)
        source_sizes[row] = torch.tensor([source_w, source_h])

    if count:
        first = _decode_one(requests[0], size, mode)
        place(0, first)
        if workers <= 1 or count < 3:
            for row in range(1, count):
                place(row, _decode_one(requests[row], size, mode))
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="privbench-decode") as pool:
                # Bounded submission keeps at most a few decoded images per worker in flight.
                window = workers * 4
                pending: dict[int, Any] = {}
                next_row = 1
                done = 1
                while done < count:
                    while next_row < count and len(pending) < window:
                        pending[next_row] = pool.submit(_decode_one, requests[next_row], size, mode)
                        next_row += 1
                    row = min(pending)
                    place(row, pending.pop(row).result())
                    done += 1
    if images is None:
        height, width = size if size is not None else (0, 0)
        images = torch.zeros(0, 3, height, width, dtype=torch.uint8)
    return LoadedImages(images, transforms, source_sizes, tensor_digest(images))


def images_cache_key(requests: Sequence[ImageRequest], stats: Sequence[os.stat_result], size, mode: str) -> str:
    """Hash of everything the loaded tensor depends on: each file's absolute path, size and
    modification time, the crop and scale requests, the output size and mode, loader and Pillow versions."""
    import PIL

    digest = hashlib.sha256()
    digest.update(json.dumps({"loader": LOADER_VERSION, "pillow": PIL.__version__, "size": size, "mode": mode}).encode())
    for request, stat in zip(requests, stats):
        digest.update(
            f"{os.path.abspath(request.path)}\0{stat.st_size}\0{stat.st_mtime_ns}\0{request.crop}\0{request.max_scale}"
            f"\0{request.center_crop_px}\0{request.center_square}\n".encode()
        )
    return digest.hexdigest()[:32]


def dataset_cache_root(cache_dir: str | Path | None) -> Path:
    """``cache_dir`` or the default ``$PRIVBENCH_CACHE/datasets``."""
    from privbench.api.cache import default_cache_root

    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root() / "datasets"


def load_images(
    requests: Sequence[ImageRequest],
    *,
    size: int | tuple[int, int] | None,
    mode: str = "stretch",
    workers: int | None = None,
    cache_dir: str | Path | None = None,
    namespace: str = "images",
) -> LoadedImages:
    """Decode, crop and resize ``requests`` into one ``uint8 (N, 3, H, W)`` tensor.

    ``size``: output ``H = W`` (int) or ``(H, W)``; None keeps the native size. ``mode``:
    ``stretch`` (the region fills the output) or ``letterbox`` (aspect kept, centred on zeros).
    With ``cache_dir`` the result is cached content-addressed under ``<cache_dir>/images/``
    (see :func:`images_cache_key`); every file is ``stat``-ed first and missing ones raise one
    DataError that lists them.
    """
    if mode not in RESIZE_MODES:
        raise DataError(f"Unknown resize mode {mode!r}; accepted: {', '.join(RESIZE_MODES)}.")
    shape = _normalise_size(size)
    stats, missing = stat_files([r.path for r in requests])
    if missing:
        shown = ", ".join(str(p) for p in missing[:EXAMPLES_IN_MESSAGES])
        more = f" and {len(missing) - EXAMPLES_IN_MESSAGES} more" if len(missing) > EXAMPLES_IN_MESSAGES else ""
        raise DataError(f"{len(missing)} of the {len(requests)} requested images are missing: {shown}{more}.")
    workers = default_workers() if workers is None else max(1, int(workers))
    if cache_dir is None:
        return _decode_all(requests, shape, mode, workers)

    from privbench.api.cache import atomic_torch_save

    key = images_cache_key(requests, stats, shape, mode)
    path = Path(cache_dir) / "images" / f"{namespace}-{key}.pt"
    if path.is_file():
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if payload["images"].shape[0] == len(requests):
                return LoadedImages(payload["images"], payload["transforms"], payload["source_sizes"], payload["digest"], from_cache=True)
        except Exception:  # a damaged cache file is recomputed, never trusted
            pass
    loaded = _decode_all(requests, shape, mode, workers)
    atomic_torch_save(
        {"images": loaded.images, "transforms": loaded.transforms, "source_sizes": loaded.source_sizes, "digest": loaded.digest},
        path,
    )
    return loaded


# -- fingerprints -------------------------------------------------------------------------------------
def tensor_digest(tensor: torch.Tensor) -> str:
    digest = hashlib.sha256(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


class ContentHasher:
    """SHA-256 over tensors, pixel digests and JSON values, in the order they are added."""

    def __init__(self, *labels: Any):
        self._digest = hashlib.sha256(json.dumps(labels, default=str).encode())

    def tensor(self, tensor: torch.Tensor) -> "ContentHasher":
        self._digest.update(tensor_digest(tensor).encode())
        return self

    def text(self, value: str) -> "ContentHasher":
        self._digest.update(value.encode())
        return self

    def json(self, value: Any) -> "ContentHasher":
        self._digest.update(json.dumps(value, sort_keys=True, default=str).encode())
        return self

    def hexdigest(self, length: int = 16) -> str:
        return self._digest.hexdigest()[:length]


def fingerprint_labeled(hasher: ContentHasher, part: str, split: str, images_digest: str, labels: torch.Tensor, class_names: list[str]) -> None:
    hasher.json([part, split, images_digest, class_names]).tensor(labels)


def fingerprint_scenes(hasher: ContentHasher, split: str, images_digest: str, scenes: Scenes) -> None:
    hasher.json(["scenes", split, images_digest, scenes.categories, scenes.captions, scenes.image_ids])
    for boxes, labels in zip(scenes.boxes, scenes.box_labels):
        hasher.tensor(boxes).tensor(labels)


def fingerprint_labeled_splits(hasher: ContentHasher, part: str, splits: LabeledSplits, digests: dict[str, str]) -> ContentHasher:
    """:func:`fingerprint_labeled` of every split of ``splits`` in train / val / test order; returns ``hasher``."""
    for split, labeled in splits.items():
        fingerprint_labeled(hasher, part, split, digests[split], labeled.labels, labeled.class_names)
    return hasher


def fingerprint_scene_splits(hasher: ContentHasher, scenes: SceneSplits, digests: dict[str, str]) -> ContentHasher:
    """:func:`fingerprint_scenes` of every split of ``scenes`` in train / val / test order; returns ``hasher``."""
    for split in SPLITS:
        fingerprint_scenes(hasher, split, digests[split], scenes[split])
    return hasher


def split_sizes(splits: LabeledSplits | SceneSplits) -> str:
    """``"train/val/test"`` sizes of a split set, as the dataset descriptions print them."""
    return "/".join(str(len(splits[split])) for split in SPLITS)


# -- text annotation files -----------------------------------------------------------------------------
def read_lines(path: Path, what: str) -> list[str]:
    """Lines of a text annotation file (newline stripped); a missing or undecodable file is a DataError."""
    if not path.is_file():
        raise DataError(f"{what} {str(path)!r} does not exist.")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return path.read_text(encoding="latin-1").splitlines()


def parse_numbers(path: Path, line_no: int, text: str, count: int, expected: str, integers: bool = False) -> list[float]:
    """The ``count`` whitespace-separated numbers of one annotation line, or an AnnotationError."""
    fields = text.split()
    if len(fields) != count:
        raise AnnotationError(path, line_no, f"has {len(fields)} fields instead of {count}", expected, text)
    try:
        values = [int(f) if integers else float(f) for f in fields]
    except ValueError:
        raise AnnotationError(path, line_no, "holds a field that is not a number", expected, text) from None
    if not all(math.isfinite(v) for v in values):
        raise AnnotationError(path, line_no, "holds a non-finite number", expected, text)
    return values


# -- `privbench data check` report ---------------------------------------------------------------------
@dataclass
class CheckReport:
    """What ``privbench data check`` found in a dataset folder."""

    dataset: str
    root: Path
    found: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    checked_files: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing

    def add_found(self, *relative: str) -> None:
        """List the paths (relative to the root) that exist, folders with a trailing ``/``."""
        for name in relative:
            path = self.root / name
            if path.exists():
                self.found.append(name + ("/" if path.is_dir() else ""))

    def add_missing(self, paths: Iterable[Path]) -> None:
        for path in paths:
            try:
                self.missing.append(str(Path(path).relative_to(self.root)))
            except ValueError:
                self.missing.append(str(path))

    def check_files(self, paths: Sequence[Path]) -> None:
        """Count ``paths`` as the files the adapter would read and record those missing."""
        _, missing = stat_files(paths)
        self.checked_files = len(paths)
        self.add_missing(missing)

    def render(self, max_missing: int = 20) -> str:
        lines = [f"{self.dataset} at {self.root}"]
        if self.found:
            lines.append("found: " + ", ".join(self.found))
        if self.counts:
            columns = sorted({key for values in self.counts.values() for key in values}, key=lambda k: (k != "images", k))
            first = max(len("split"), *(len(split) for split in self.counts)) + 2
            widths = [max(len(c), *(len(str(v.get(c, ""))) for v in self.counts.values())) + 3 for c in columns]
            lines.append("split".ljust(first) + "".join(c.rjust(w) for c, w in zip(columns, widths)))
            for split, values in self.counts.items():
                lines.append(split.ljust(first) + "".join(str(values.get(c, "")).rjust(w) for c, w in zip(columns, widths)))
        lines.extend(self.notes)
        if self.missing:
            lines.append(f"MISSING: {len(self.missing)} of {self.checked_files} files the adapter would read:")
            lines.extend(f"  {path}" for path in self.missing[:max_missing])
            if len(self.missing) > max_missing:
                lines.append(f"  ... and {len(self.missing) - max_missing} more")
        else:
            lines.append(f"all {self.checked_files} files the adapter would read are present")
        return "\n".join(lines)


# -- shared adapter plumbing ---------------------------------------------------------------------------
class AdapterConfig(ComponentConfig):
    """Options every real-data adapter accepts (the path, decoding threads, the tensor cache)."""

    path: str = Field(..., description="the dataset's root folder")
    workers: int | None = Field(None, ge=1, le=64, description="decoding threads (default: the CPUs available, at most 16)")
    cache: bool = Field(True, description="cache the resized tensors content-addressed under the cache dir")

    @property
    def root(self) -> Path:
        return Path(self.path).expanduser()

    def cache_root(self, cache_dir: str | Path | None) -> Path | None:
        return dataset_cache_root(cache_dir) if self.cache else None


def adapter_config(model: type[AdapterConfig], dataset: str, path: str | Path | None, options: dict[str, Any]) -> Any:
    """Validate an adapter's options (a ConfigError names the field); the path is required and must be a folder."""
    values = dict(options)
    if path is not None:
        values["path"] = str(path)
    if values.get("path") in (None, ""):
        raise DataError(
            f"Dataset {dataset!r} reads the published dataset from disk and needs its folder: pass path=/data/{dataset} "
            f"(in a spec: dataset: {{name: {dataset}, config: {{path: ...}}}}; check it with `privbench data check {dataset} PATH`)."
        )
    config = validate_config(model, values, what=f"dataset {dataset!r}")
    if not config.root.is_dir():
        raise DataError(f"Dataset {dataset!r}: folder {str(config.root)!r} does not exist or is not a folder.")
    return config


def load_labeled_split(
    requests: Sequence[ImageRequest],
    labels: Sequence[int],
    class_names: list[str],
    *,
    size: int | tuple[int, int],
    mode: str,
    workers: int | None,
    cache_dir: Path | None,
    namespace: str,
) -> tuple[LabeledImages, str]:
    """One split of labelled crops and the digest of its pixels."""
    loaded = load_images(requests, size=size, mode=mode, workers=workers, cache_dir=cache_dir, namespace=namespace)
    return LabeledImages(loaded.images, torch.tensor(list(labels), dtype=torch.long), class_names), loaded.digest


def empty_labeled(size: int, class_names: list[str]) -> LabeledImages:
    return LabeledImages(torch.zeros(0, 3, size, size, dtype=torch.uint8), torch.zeros(0, dtype=torch.long), class_names)


def concat_labeled(parts: Sequence[LabeledImages], labels: Sequence[int], class_names: list[str]) -> LabeledImages:
    """The images of ``parts`` one after the other, part ``i``'s images all labelled ``labels[i]``."""
    images = torch.cat([p.images for p in parts])
    stacked = torch.cat([torch.full((len(p),), label, dtype=torch.long) for p, label in zip(parts, labels)])
    return LabeledImages(images, stacked, class_names)


def labeled_splits_counts(splits: LabeledSplits) -> dict[str, dict[str, int]]:
    return {split: {"images": len(part), "classes": int(part.labels.unique().numel())} for split, part in splits.items()}
