"""COCO ``instances_*.json`` / ``captions_*.json`` readers with checked structure.

Boxes are COCO ``[x, y, width, height]`` in the files and ``xyxy`` pixels once read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from privbench.data.containers import Scenes
from privbench.data.formats.files import AnnotationError, missing_files_error, read_json, stat_files
from privbench.data.formats.images import ImageRequest, load_images


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
    """``instances_*.json``: images, categories (sorted by id) and boxes per image (sorted by
    annotation id)."""

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


def _require_list(payload: Any, key: str, path: Path, what: str) -> list:
    if not isinstance(payload, dict) or not isinstance(payload.get(key), list):
        raise AnnotationError(
            path,
            None,
            f"has no list {key!r} at the top level",
            f"a COCO {what} JSON with keys 'images' and 'annotations'",
        )
    return payload[key]


def _entry_error(
    path: Path, key: str, position: int, entry: Any, problem: str, expected: str
) -> AnnotationError:
    ident = entry.get("id") if isinstance(entry, dict) else None
    return AnnotationError(
        path,
        None,
        f"{key}[{position}]{f' (id {ident})' if ident is not None else ''} {problem}",
        expected,
    )


def _has_fields(entry: Any, **types: type) -> bool:
    """Whether ``entry`` is a JSON object whose ``types`` fields have those types."""
    return isinstance(entry, dict) and all(isinstance(entry.get(f), t) for f, t in types.items())


def _require_image(entry: dict, images: dict[int, Any], path: Path, position: int) -> None:
    """An AnnotationError unless annotation ``entry`` refers to one of ``images``."""
    if entry["image_id"] not in images:
        raise _entry_error(
            path,
            "annotations",
            position,
            entry,
            f"refers to image_id {entry['image_id']}, which is not in 'images'",
            "every annotation's image_id to be listed in 'images'",
        )


def _coco_images(payload: Any, path: Path, what: str) -> dict[int, CocoImage]:
    images: dict[int, CocoImage] = {}
    for position, entry in enumerate(_require_list(payload, "images", path, what)):
        if not _has_fields(entry, id=int, file_name=str):
            raise _entry_error(
                path,
                "images",
                position,
                entry,
                "lacks an integer 'id' or a string 'file_name'",
                'entries like {"id": 9, "file_name": "COCO_train2014_000000000009.jpg", "width": '
                '640, "height": 480}',
            )
        width, height = entry.get("width"), entry.get("height")
        images[entry["id"]] = CocoImage(
            entry["id"],
            entry["file_name"],
            width if isinstance(width, int) else None,
            height if isinstance(height, int) else None,
        )
    return images


def read_coco_instances(path: str | Path) -> CocoInstances:
    """Parse a COCO ``instances_*.json`` (object detection annotations)."""
    path = Path(path)
    payload = read_json(path, "COCO instances JSON")
    images = _coco_images(payload, path, "instances")
    categories_raw = _require_list(payload, "categories", path, "instances")
    categories: list[tuple[int, str]] = []
    for position, entry in enumerate(categories_raw):
        if not _has_fields(entry, id=int, name=str):
            raise _entry_error(
                path,
                "categories",
                position,
                entry,
                "lacks an integer 'id' or a string 'name'",
                'entries like {"id": 1, "name": "person", "supercategory": "person"}',
            )
        categories.append((entry["id"], entry["name"]))
    categories.sort()
    known_categories = {cid for cid, _ in categories}
    boxes: dict[int, list[CocoBox]] = {image_id: [] for image_id in images}
    annotations = _require_list(payload, "annotations", path, "instances")
    for position, entry in enumerate(annotations):
        bbox = entry.get("bbox") if isinstance(entry, dict) else None
        if (
            not _has_fields(entry, id=int, image_id=int, category_id=int)
            or not isinstance(bbox, list)
            or len(bbox) != 4
            or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in bbox)
        ):
            raise _entry_error(
                path,
                "annotations",
                position,
                entry,
                "is not a valid box annotation",
                'entries like {"id": 1, "image_id": 9, "category_id": 1, "bbox": [x, y, width, '
                'height], "iscrowd": 0}',
            )
        _require_image(entry, boxes, path, position)
        if entry["category_id"] not in known_categories:
            raise _entry_error(
                path,
                "annotations",
                position,
                entry,
                f"refers to category_id {entry['category_id']}, which is not in 'categories'",
                "every annotation's category_id to be listed in 'categories'",
            )
        boxes[entry["image_id"]].append(
            CocoBox(
                entry["id"],
                entry["image_id"],
                tuple(float(v) for v in bbox),
                entry["category_id"],
                int(entry.get("iscrowd", 0) or 0),
            )
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
        if not _has_fields(entry, id=int, image_id=int, caption=str):
            raise _entry_error(
                path,
                "annotations",
                position,
                entry,
                "is not a valid caption annotation",
                'entries like {"id": 48, "image_id": 9, "caption": "A man riding a wave on a '
                'surfboard."}',
            )
        _require_image(entry, collected, path, position)
        collected[entry["image_id"]].append((entry["id"], entry["caption"]))
    captions = {
        image_id: [text for _, text in sorted(items)] for image_id, items in collected.items()
    }
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
        raise missing_files_error(
            missing, len(paths), f"images listed in {Path(instances_json).name}", image_dir, "coco"
        )
    loaded = load_images(
        [ImageRequest(p) for p in paths],
        size=size,
        mode=mode,
        workers=workers,
        cache_dir=cache_dir,
        namespace="coco-scenes",
    )
    category_index = instances.category_index
    boxes, labels = [], []
    for row, image in enumerate(ordered):
        records = instances.boxes[image.id]
        xyxy = xywh_to_xyxy(torch.tensor([r.bbox for r in records], dtype=torch.float32))
        if size is not None:
            xyxy = loaded.map_boxes(row, xyxy)
        boxes.append(xyxy)
        labels.append(
            torch.tensor([category_index[r.category_id] for r in records], dtype=torch.long)
        )
    texts = [
        list(captions.captions.get(image.id, [])) if captions is not None else []
        for image in ordered
    ]
    return Scenes(
        loaded.images,
        boxes,
        labels,
        texts,
        instances.category_names,
        [image.id for image in ordered],
        store=loaded.store,
    )
