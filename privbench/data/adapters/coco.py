"""The ``coco`` dataset: COCO 2014 captions (2PSC's captioning data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from privbench.api.adapter import AdapterConfig, FolderAdapter
from privbench.api.errors import DataError
from privbench.api.registry import register_dataset
from privbench.data.containers import SPLITS, BenchmarkData, Scenes, SceneSplits
from privbench.data.formats import (
    AnnotationError,
    CheckReport,
    ImageRequest,
    fingerprinted,
    hash_cap,
    hash_order,
    load_images,
    read_coco_captions,
    read_coco_instances,
    read_json,
    require_files,
    require_path,
    split_sizes,
    xywh_to_xyxy,
)

LAYOUT = """\
ROOT/train2014/COCO_train2014_000000000009.jpg
ROOT/val2014/COCO_val2014_000000000042.jpg
ROOT/annotations/captions_train2014.json     (split_scheme: official)
ROOT/annotations/captions_val2014.json
ROOT/annotations/instances_train2014.json    (with_boxes: true)
ROOT/annotations/instances_val2014.json
ROOT/dataset_coco.json                       (split_scheme: karpathy; also found in
                                              ROOT/caption_datasets/, ROOT/karpathy/,
                                              ROOT/annotations/)
"""
DATASET = "coco"
KARPATHY_SPLITS = ("train", "val", "test", "restval")
KARPATHY_LOCATIONS = (
    "dataset_coco.json",
    "caption_datasets/dataset_coco.json",
    "karpathy/dataset_coco.json",
    "annotations/dataset_coco.json",
)
KARPATHY_ENTRY = (
    '{"filepath": "val2014", "filename": "COCO_val2014_000000391895.jpg", "cocoid": 391895, '
    '"split": "test", "sentences": [{"raw": "A man ...", "tokens": [...]}]}'
)


class CocoConfig(AdapterConfig):
    split_scheme: Literal["karpathy", "official"] = Field(
        "karpathy", description="Karpathy's split JSON, or train2014 / halves of val2014"
    )
    karpathy_json: str | None = Field(
        None, description="path of dataset_coco.json (default: looked for under the root)"
    )
    restval: Literal["train", "drop"] = Field(
        "train", description="Karpathy's restval images: into train (usual) or dropped"
    )
    with_boxes: bool = Field(False, description="also read the instance boxes (80 COCO categories)")
    max_train_images: int | None = Field(
        None, ge=1, description="cap on train pictures (seeded hash order of COCO ids)"
    )
    max_val_images: int | None = Field(None, ge=1, description="cap on val pictures")
    max_test_images: int | None = Field(None, ge=1, description="cap on test pictures")
    max_captions_per_image: int | None = Field(
        None, ge=1, description="keep at most this many captions per picture (None: all)"
    )
    image_size: int = Field(
        256, ge=16, le=2048, description="side of the output pictures (2PSC: 256)"
    )
    resize: Literal["stretch", "letterbox"] = Field(
        "stretch", description="stretch to the square, or keep the aspect on black"
    )
    seed: int = Field(0, ge=0, description="seed of the official val/test division and of the caps")


@dataclass
class CocoPicture:
    folder: str  # train2014 or val2014
    file_name: str
    coco_id: int
    captions: list[str] = field(default_factory=list)


def karpathy_path(config: CocoConfig) -> Path:
    if config.karpathy_json is not None:
        path = Path(config.karpathy_json).expanduser()
        return path if path.is_absolute() else config.root / path
    for relative in KARPATHY_LOCATIONS:
        if (config.root / relative).is_file():
            return config.root / relative
    raise DataError(
        f"COCO: Karpathy split file dataset_coco.json not found under {str(config.root)!r} (looked "
        f"in "
        f"{', '.join(KARPATHY_LOCATIONS)}). Put it there, pass karpathy_json=PATH, or use "
        f"split_scheme=official."
    )


def read_karpathy(path: Path) -> list[tuple[str, CocoPicture]]:
    """``(split, picture)`` of every entry of Karpathy's ``dataset_coco.json``, validated."""
    payload = read_json(path, "Karpathy split JSON")
    if not isinstance(payload, dict) or not isinstance(payload.get("images"), list):
        raise AnnotationError(
            path, None, "has no list 'images' at the top level", "Karpathy's dataset_coco.json"
        )
    result = []
    for position, entry in enumerate(payload["images"]):
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("filepath"), str)
            and isinstance(entry.get("filename"), str)
            and isinstance(entry.get("cocoid"), int)
            and entry.get("split") in KARPATHY_SPLITS
            and isinstance(entry.get("sentences"), list)
            and all(
                isinstance(s, dict) and isinstance(s.get("raw"), str) for s in entry["sentences"]
            )
        )
        if not ok:
            ident = entry.get("cocoid") if isinstance(entry, dict) else None
            split = entry.get("split") if isinstance(entry, dict) else None
            problem = (
                f"has split {split!r} (not one of {', '.join(KARPATHY_SPLITS)})"
                if isinstance(entry, dict) and split not in KARPATHY_SPLITS
                else "is not a valid entry"
            )
            raise AnnotationError(
                path,
                None,
                f"images[{position}]{f' (cocoid {ident})' if ident is not None else ''} {problem}",
                f"entries like {KARPATHY_ENTRY}",
            )
        captions = [s["raw"].strip() for s in entry["sentences"]]
        result.append(
            (
                entry["split"],
                CocoPicture(entry["filepath"], entry["filename"], entry["cocoid"], captions),
            )
        )
    return result


def captions_path(root: Path, folder: str) -> Path:
    return root / "annotations" / f"captions_{folder}.json"


def instances_path(root: Path, folder: str) -> Path:
    return root / "annotations" / f"instances_{folder}.json"


def index_coco(config: CocoConfig) -> dict[str, list[CocoPicture]]:
    """Split → pictures (before caps), sorted by COCO id."""
    splits: dict[str, list[CocoPicture]] = {split: [] for split in SPLITS}
    if config.split_scheme == "karpathy":
        for split, picture in read_karpathy(karpathy_path(config)):
            if split == "restval":
                if config.restval == "drop":
                    continue
                split = "train"
            splits[split].append(picture)
    else:
        for folder in ("train2014", "val2014"):
            path = require_path(
                captions_path(config.root, folder),
                f"COCO captions {folder}",
                DATASET,
                "Expected ROOT/annotations/captions_{train,val}2014.json "
                "(annotations_trainval2014.zip).",
            )
            captions = read_coco_captions(path)
            pictures = [
                CocoPicture(
                    folder, im.file_name, im.id, [c.strip() for c in captions.captions[im.id]]
                )
                for im in captions.images.values()
            ]
            if folder == "train2014":
                splits["train"] = pictures
            else:
                order = hash_order(
                    [str(p.coco_id) for p in pictures], config.seed, DATASET, "official-val-test"
                )
                half = len(pictures) // 2
                splits["val"] = [pictures[i] for i in order[:half]]
                splits["test"] = [pictures[i] for i in order[half:]]
    caps = {
        "train": config.max_train_images,
        "val": config.max_val_images,
        "test": config.max_test_images,
    }
    for split, pictures in splits.items():
        pictures = hash_cap(
            pictures,
            [str(p.coco_id) for p in pictures],
            caps[split],
            config.seed,
            DATASET,
            "cap",
            split,
        )
        splits[split] = sorted(pictures, key=lambda p: p.coco_id)
    return splits


def _picture_path(root: Path, picture: CocoPicture) -> Path:
    return root / picture.folder / picture.file_name


@register_dataset(DATASET)
class CocoAdapter(FolderAdapter):
    """COCO 2014 captions (2PSC's captioning data), with the Karpathy split or the official one.

    The layout is that of the published COCO 2014 archives and of Karpathy's
    ``caption_datasets.zip``.

    Splits:

    - ``karpathy`` (default, what captioning papers report on): ``images[].split`` of
      ``dataset_coco.json`` (train / val / test, 5,000 each for val and test; ``restval`` goes to
      train by default, giving 113,287 training images), captions ``images[].sentences[].raw``.
    - ``official``: train = ``train2014`` (82,783 images, 2PSC's "83K"), and ``val2014`` (40,504,
      2PSC's "41K") divided in two halves by seeded hash order into val and test (COCO's test2014
      captions are not public). Captions from ``captions_*2014.json``.

    ``max_*_images`` caps a split (seeded hash order of the COCO ids); ``max_captions_per_image``
    keeps the first captions. With ``with_boxes`` the COCO instance boxes (80 categories) of each
    picture come along (the instance JSONs are large: parsing the train one takes ~0.5 min and
    several GB). Pictures are resized to ``image_size`` (256, stretched by default, as 2PSC's
    256x256 inputs) and boxes mapped with them.
    """

    Config = CocoConfig
    layout = LAYOUT
    config: CocoConfig

    def scenes(self, cache_dir: str | Path | None = None) -> tuple[SceneSplits, dict[str, str]]:
        """The scenes of every split (pictures, captions, and boxes with ``with_boxes``) and
        the pixel digest of each split."""
        config = self.config
        splits = index_coco(config)
        instances = {}
        if config.with_boxes:
            folders = sorted({p.folder for pictures in splits.values() for p in pictures})
            for folder in folders:
                path = require_path(
                    instances_path(config.root, folder),
                    f"COCO instances {folder}",
                    DATASET,
                    "with_boxes needs ROOT/annotations/instances_{train,val}2014.json.",
                )
                instances[folder] = read_coco_instances(path)
            names = [inst.category_names for inst in instances.values()]
            if any(n != names[0] for n in names):
                raise DataError(
                    "COCO: the instance JSONs list different categories; use the train and val "
                    "files of one release."
                )
            categories = names[0] if names else []
        else:
            categories = []
        parts, digests = {}, {}
        for split in SPLITS:
            pictures = splits[split]
            paths = [_picture_path(config.root, p) for p in pictures]
            require_files(paths, f"COCO pictures of the {split} split", config.root, DATASET)
            loaded = load_images(
                [ImageRequest(p) for p in paths],
                size=config.image_size,
                mode=config.resize,
                workers=config.workers,
                cache_dir=self.cache_root(cache_dir),
                max_pixels=config.max_image_pixels,
                namespace=f"{DATASET}-{split}",
            )
            boxes, labels = [], []
            for row, picture in enumerate(pictures):
                if config.with_boxes:
                    inst = instances[picture.folder]
                    records = inst.boxes.get(picture.coco_id, [])
                    xyxy = xywh_to_xyxy(
                        torch.tensor([r.bbox for r in records], dtype=torch.float32)
                    )
                    index = inst.category_index
                    boxes.append(loaded.map_boxes(row, xyxy))
                    labels.append(
                        torch.tensor([index[r.category_id] for r in records], dtype=torch.long)
                    )
                else:
                    boxes.append(torch.zeros(0, 4))
                    labels.append(torch.zeros(0, dtype=torch.long))
            cap = config.max_captions_per_image
            captions = [p.captions[:cap] if cap else list(p.captions) for p in pictures]
            ids = [p.coco_id for p in pictures]
            parts[split] = Scenes(
                loaded.images, boxes, labels, captions, list(categories), ids, store=loaded.store
            )
            digests[split] = loaded.digest
        return SceneSplits(**parts), digests

    def load(self, cache_dir: str | Path | None = None) -> BenchmarkData:
        """COCO 2014 captioned pictures (Karpathy or official split; boxes optional)."""
        config = self.config
        scenes, digests = self.scenes(cache_dir)
        captions = sum(len(c) for s in SPLITS for c in scenes[s].captions)
        boxes = (
            f", instance boxes of {len(scenes.train.categories)} categories"
            if config.with_boxes
            else ""
        )
        description = (
            f"COCO 2014 ({config.split_scheme} split): {split_sizes(scenes)} pictures "
            f"(train/val/test), {captions} captions{boxes}, "
            f"{config.resize} to {config.image_size}x{config.image_size}."
        )
        return fingerprinted(DATASET, description, scenes=(scenes, digests))

    def check(self) -> CheckReport:
        """Pictures and captions per split, the annotation files found, and missing pictures."""
        config = self.config
        report = self.report()
        annotations = (
            f"annotations/{kind}_{folder}.json"
            for kind in ("captions", "instances")
            for folder in ("train2014", "val2014")
        )
        report.add_found("train2014", "val2014", *annotations, *KARPATHY_LOCATIONS)
        splits = index_coco(config)
        for split, pictures in splits.items():
            captions = sum(len(p.captions) for p in pictures)
            report.counts[split] = {"images": len(pictures), "captions": captions}
            empty = sum(not p.captions for p in pictures)
            if empty:
                report.notes.append(f"{split}: {empty} pictures have no caption")
        paths = [_picture_path(config.root, p) for pictures in splits.values() for p in pictures]
        if config.with_boxes:
            folders = sorted({p.folder for ps in splits.values() for p in ps})
            paths += [instances_path(config.root, folder) for folder in folders]
        report.check_files(paths)
        return report
