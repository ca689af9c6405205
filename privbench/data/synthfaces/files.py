"""The generated data in real formats on disk, and read back through the real readers.

Faces are written as a VGGFace2-style ImageFolder (``faces/<split>/n000001/0001_01.png``),
non-faces as an ImageFolder by category, scenes as COCO instances and captions JSON
(``scenes/annotations/{instances,captions}_<split>.json``, images in ``scenes/<split>/``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from privbench.data.containers import SPLITS
from privbench.data.formats import hash_tensor, read_coco_scenes, read_image_folder
from privbench.data.synthfaces import render
from privbench.data.synthfaces.config import GENERATOR_VERSION, SynthFacesConfig
from privbench.data.synthfaces.crops import NONFACE_CATEGORIES
from privbench.data.synthfaces.generate import GeneratedSplit, run_parallel
from privbench.data.synthfaces.identities import identity_name, identity_table

SCENE_CATEGORIES = ("face",) + render.OBJECT_KINDS

TENSOR_FORMAT = 2  # 2: images in image stores (.npy) beside tensors.pt


def _save_png(image: torch.Tensor, path: Path) -> None:
    from PIL import Image

    Image.fromarray(image.permute(1, 2, 0).contiguous().numpy()).save(
        path, format="PNG", compress_level=1
    )


def write_synthfaces(
    splits: dict[str, GeneratedSplit],
    traits: dict[str, torch.Tensor],
    config: SynthFacesConfig,
    root: Path,
    workers: int | None = None,
) -> None:
    """Write the generated data in real formats under ``root`` (see the module docstring)."""
    pngs: list[tuple[torch.Tensor, Path]] = []
    image_id = 0
    annotation_id = 0
    caption_id = 0
    categories = [
        {"id": index + 1, "name": name, "supercategory": "person" if name == "face" else "object"}
        for index, name in enumerate(SCENE_CATEGORIES)
    ]
    for split, data in splits.items():
        # faces: <root>/faces/<split>/n000001/0001_01.png
        counters: dict[int, int] = {}
        for image, label in zip(data.faces, data.face_labels.tolist()):
            counters[label] = counters.get(label, 0) + 1
            folder = root / "faces" / split / identity_name(label)
            folder.mkdir(parents=True, exist_ok=True)
            pngs.append((image, folder / f"{counters[label]:04d}_01.png"))
        # non-faces: <root>/nonfaces/<split>/<category>/00001.png
        counters = {}
        for image, category in zip(data.nonfaces, data.nonface_categories.tolist()):
            counters[category] = counters.get(category, 0) + 1
            folder = root / "nonfaces" / split / NONFACE_CATEGORIES[category]
            folder.mkdir(parents=True, exist_ok=True)
            pngs.append((image, folder / f"{counters[category]:05d}.png"))
        # scenes: COCO instances + captions
        scene_folder = root / "scenes" / split
        scene_folder.mkdir(parents=True, exist_ok=True)
        images, instances, captions = [], [], []
        for scene, scene_annotations, texts in zip(
            data.scenes, data.scene_annotations, data.scene_captions
        ):
            image_id += 1
            file_name = f"{image_id:012d}.png"
            pngs.append((scene, scene_folder / file_name))
            images.append(
                {
                    "id": image_id,
                    "file_name": file_name,
                    "width": config.scene_size_px,
                    "height": config.scene_size_px,
                }
            )
            for annotation in scene_annotations:
                annotation_id += 1
                x0, y0, x1, y1 = (round(float(c), 2) for c in annotation["box"])
                width, height = round(x1 - x0, 2), round(y1 - y0, 2)
                record = {
                    "id": annotation_id,
                    "image_id": image_id,
                    "category_id": SCENE_CATEGORIES.index(annotation["category"]) + 1,
                    "bbox": [x0, y0, width, height],
                    "area": round(width * height, 2),
                    "iscrowd": 0,
                    "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
                }
                if annotation["category"] == "face":
                    record["attributes"] = {
                        k: v for k, v in annotation.items() if k not in ("category", "box")
                    }
                else:
                    record["attributes"] = {"colour": annotation["colour"]}
                instances.append(record)
            for text in texts:
                caption_id += 1
                captions.append({"id": caption_id, "image_id": image_id, "caption": text})
        info = {
            "description": (
                f"synthfaces scenes ({split}), generator v{GENERATOR_VERSION}, seed {config.seed}"
            ),
            "version": GENERATOR_VERSION,
            "year": 2024,
            "contributor": "privbench synthfaces generator",
        }
        annotation_folder = root / "scenes" / "annotations"
        annotation_folder.mkdir(parents=True, exist_ok=True)
        write_json(
            annotation_folder / f"instances_{split}.json",
            {
                "info": info,
                "licenses": [],
                "images": images,
                "annotations": instances,
                "categories": categories,
            },
        )
        write_json(
            annotation_folder / f"captions_{split}.json",
            {"info": info, "licenses": [], "images": images, "annotations": captions},
        )
    write_json(root / "identities.json", identity_table(traits))
    batches = [pngs[start : start + 256] for start in range(0, len(pngs), 256)]
    run_parallel(
        [
            lambda batch=batch: [_save_png(image, path) for image, path in batch]
            for batch in batches
        ],
        workers or torch.get_num_threads(),
    )


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1))


def read_synthfaces_folder(folder: Path) -> dict[str, Any]:
    """Read a written synthfaces folder back through the generic ImageFolder and COCO readers.

    Returns the tensor payload that the ``synthfaces`` dataset caches next to the files.
    """
    payload: dict[str, Any] = {
        "format": TENSOR_FORMAT,
        "identities": {},
        "nonfaces": {},
        "scenes": {},
    }
    for split in SPLITS:
        faces = read_image_folder(folder / "faces" / split, extensions=(".png",))
        payload["identities"][split] = {"images": faces.images, "labels": faces.labels}
        payload["class_names"] = faces.class_names
        nonfaces = read_image_folder(folder / "nonfaces" / split, extensions=(".png",))
        payload["nonfaces"][split] = {
            "images": nonfaces.images,
            "labels": nonfaces.labels,
            "class_names": nonfaces.class_names,
        }
        scenes = read_coco_scenes(
            folder / "scenes" / split,
            folder / "scenes" / "annotations" / f"instances_{split}.json",
            folder / "scenes" / "annotations" / f"captions_{split}.json",
        )
        payload["scenes"][split] = {
            "images": scenes.images,
            "boxes": scenes.boxes,
            "box_labels": scenes.box_labels,
            "captions": scenes.captions,
            "image_ids": scenes.image_ids,
        }
        payload["categories"] = scenes.categories
    payload["fingerprint"] = fingerprint_payload(payload)
    return payload


def fingerprint_payload(payload: dict[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of everything the benchmark reads: pixels, labels, names,
    boxes, box labels and captions of every split, in a fixed order."""
    digest = hashlib.sha256()

    def add_tensor(tensor: torch.Tensor) -> None:
        hash_tensor(digest, tensor)

    digest.update(json.dumps([payload["class_names"], payload["categories"]]).encode())
    for split in SPLITS:
        add_tensor(payload["identities"][split]["images"])
        add_tensor(payload["identities"][split]["labels"])
        add_tensor(payload["nonfaces"][split]["images"])
        add_tensor(payload["nonfaces"][split]["labels"])
        digest.update(json.dumps(payload["nonfaces"][split]["class_names"]).encode())
        scenes = payload["scenes"][split]
        add_tensor(scenes["images"])
        for boxes, labels in zip(scenes["boxes"], scenes["box_labels"]):
            add_tensor(boxes)
            add_tensor(labels)
        digest.update(json.dumps([scenes["captions"], scenes["image_ids"]]).encode())
    return digest.hexdigest()[:16]
