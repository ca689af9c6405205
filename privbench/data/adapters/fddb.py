"""The ``fddb`` dataset: FDDB face ellipses in news pictures (CAnOPIC's detection test set)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import Field, model_validator

from privbench.api.adapter import AdapterConfig, FolderAdapter
from privbench.api.registry import register_dataset
from privbench.data.containers import SPLITS, BenchmarkData, Scenes, SceneSplits
from privbench.data.formats import (
    AnnotationError,
    CheckReport,
    ImageRequest,
    fingerprinted,
    load_images,
    parse_numbers,
    read_lines,
    require_files,
    require_path,
    split_sizes,
)

LAYOUT = """\
ROOT/FDDB-folds/FDDB-fold-01-ellipseList.txt   ... FDDB-fold-10-ellipseList.txt
ROOT/FDDB-folds/FDDB-fold-01.txt               (image lists; checked when present)
ROOT/originalPics/2002/08/11/big/img_591.jpg   (or ROOT/2002/08/11/big/img_591.jpg)
"""
DATASET = "fddb"
ELLIPSE_SYNTAX = "major_axis_radius minor_axis_radius angle center_x center_y 1 (six numbers)"
ALL_FOLDS = list(range(1, 11))


@dataclass(frozen=True)
class Ellipse:
    major_radius: float
    minor_radius: float
    angle: float
    center_x: float
    center_y: float

    @property
    def major_diameter(self) -> float:
        return 2.0 * max(self.major_radius, self.minor_radius)

    def bounding_box(self) -> tuple[float, float, float, float]:
        """Axis-aligned bounding box (xyxy) of the rotated ellipse (the documented rule)."""
        a, b, theta = self.major_radius, self.minor_radius, self.angle
        half_w = math.sqrt((a * math.cos(theta)) ** 2 + (b * math.sin(theta)) ** 2)
        half_h = math.sqrt((a * math.sin(theta)) ** 2 + (b * math.cos(theta)) ** 2)
        return (
            self.center_x - half_w,
            self.center_y - half_h,
            self.center_x + half_w,
            self.center_y + half_h,
        )


@dataclass
class FDDBImage:
    name: str  # e.g. 2002/08/11/big/img_591 (no extension)
    ellipses: list[Ellipse]
    fold: int
    line: int


class FDDBConfig(AdapterConfig):
    test_folds: list[int] = Field(
        default_factory=lambda: list(ALL_FOLDS),
        description="folds of the test split (default: all ten)",
    )
    val_folds: list[int] = Field(default_factory=list, description="folds of the val split")
    train_folds: list[int] = Field(default_factory=list, description="folds of the train split")
    max_face_px: float | None = Field(
        40.0,
        gt=0.0,
        description=(
            "smallest face's major-axis diameter at most this many pixels (CAnOPIC: 40); None: "
            "keep the scale"
        ),
    )
    image_size: int = Field(
        448,
        ge=16,
        le=2048,
        description="side of the black canvas the rescaled pictures are centred on",
    )

    @model_validator(mode="after")
    def _folds_valid(self) -> FDDBConfig:
        folds = self.test_folds + self.val_folds + self.train_folds
        bad = [f for f in folds if f not in ALL_FOLDS]
        if bad:
            raise ValueError(f"FDDB folds are 1..10; got {bad}")
        if len(set(folds)) != len(folds):
            raise ValueError("a fold may belong to one split only")
        return self

    def folds(self, split: str) -> list[int]:
        """The folds of ``split`` (train, val or test)."""
        return {"train": self.train_folds, "val": self.val_folds, "test": self.test_folds}[split]


def folds_folder(root: Path) -> Path:
    return root / "FDDB-folds"


def ellipse_list_path(root: Path, fold: int) -> Path:
    return folds_folder(root) / f"FDDB-fold-{fold:02d}-ellipseList.txt"


def pictures_root(root: Path) -> Path:
    """``ROOT/originalPics`` when present, else ``ROOT`` itself."""
    return root / "originalPics" if (root / "originalPics").is_dir() else root


def parse_ellipse_list(path: Path, fold: int) -> list[FDDBImage]:
    """Every picture of one ``FDDB-fold-XX-ellipseList.txt``; malformed lines raise
    AnnotationError."""
    lines = read_lines(path, "FDDB ellipse list")
    images: list[FDDBImage] = []
    i, total = 0, len(lines)
    while i < total:
        name = lines[i].strip()
        if not name:
            i += 1
            continue
        if len(name.split()) != 1 or name.isdigit():
            raise AnnotationError(
                path,
                i + 1,
                "should name a picture",
                "a picture path without extension like 2002/08/11/big/img_591",
                lines[i],
            )
        if i + 1 >= total or not lines[i + 1].strip().isdigit():
            text = lines[i + 1] if i + 1 < total else ""
            raise AnnotationError(
                path,
                min(i + 2, total),
                f"should be the number of faces in {name}",
                "a positive integer",
                text,
            )
        count = int(lines[i + 1].strip())
        if i + 2 + count > total:
            raise AnnotationError(
                path,
                total,
                f"the file ends before the {count} ellipse line(s) of {name}",
                ELLIPSE_SYNTAX,
                lines[-1],
            )
        ellipses = []
        for k in range(count):
            line_no = i + 3 + k
            a, b, angle, cx, cy, _score = parse_numbers(
                path, line_no, lines[i + 2 + k], 6, ELLIPSE_SYNTAX
            )
            if a <= 0 or b <= 0:
                raise AnnotationError(
                    path,
                    line_no,
                    "has a non-positive axis radius",
                    ELLIPSE_SYNTAX,
                    lines[i + 2 + k],
                )
            ellipses.append(Ellipse(a, b, angle, cx, cy))
        images.append(FDDBImage(name, ellipses, fold, i + 1))
        i += 2 + count
    return images


def fold_image_list(root: Path, fold: int) -> list[str] | None:
    path = folds_folder(root) / f"FDDB-fold-{fold:02d}.txt"
    if not path.is_file():
        return None
    return [line.strip() for line in read_lines(path, "FDDB fold list") if line.strip()]


def read_folds(config: FDDBConfig) -> dict[int, list[FDDBImage]]:
    root = config.root
    require_path(
        folds_folder(root),
        "FDDB folds folder",
        DATASET,
        "Expected ROOT/FDDB-folds/FDDB-fold-01-ellipseList.txt ... (FDDB-folds.tgz).",
    )
    folds = {}
    for fold in sorted(config.test_folds + config.val_folds + config.train_folds):
        path = require_path(
            ellipse_list_path(root, fold), f"FDDB ellipse list of fold {fold}", DATASET
        )
        folds[fold] = parse_ellipse_list(path, fold)
    return folds


def rescale_factor(image: FDDBImage, max_face_px: float | None) -> float | None:
    """CAnOPIC: scale ≤ 1 bringing the smallest face's major-axis diameter to at most
    ``max_face_px``."""
    if max_face_px is None or not image.ellipses:
        return None
    smallest = min(e.major_diameter for e in image.ellipses)
    return min(1.0, max_face_px / smallest)


@register_dataset(DATASET)
class FDDBAdapter(FolderAdapter):
    """FDDB: face ellipses in news pictures (the CAnOPIC detection test set, §4 experiment 3).

    The layout is that of the published ``originalPics.tar.gz`` and ``FDDB-folds.tgz``, extracted.

    ``FDDB-fold-XX-ellipseList.txt`` syntax: an image path line (no extension), a face-count line,
    then one line per face ``major_axis_radius minor_axis_radius angle center_x center_y 1``
    (pixels, angle in radians from the x axis).

    **Ellipse → box rule**: the axis-aligned bounding box of the rotated ellipse, with semi-axes
    ``a``, ``b`` and angle ``θ``: half-width ``sqrt(a² cos²θ + b² sin²θ)``, half-height
    ``sqrt(a² sin²θ + b² cos²θ)``, centred on ``(center_x, center_y)``, then clipped to the picture.

    **CAnOPIC rescale**: each picture is downsampled so that its smallest face has a major-axis
    diameter ``2·max(a, b)`` of at most ``max_face_px`` (40) pixels; pictures whose smallest face is
    already at most that size keep their scale (never upsampled). The result is letterboxed on a
    black ``image_size`` canvas (448 by default, which holds FDDB pictures at their scale; a picture
    larger than the canvas is shrunk further, which keeps the rule).

    Splits: FDDB is a test set (10 folds for cross-validation); ``test_folds`` (all ten by default),
    ``val_folds`` and ``train_folds`` choose which folds go where. A scene's image id is
    ``fold · 100000 + line`` (the line of its path in the fold's ellipse list).
    """

    Config = FDDBConfig
    layout = LAYOUT
    config: FDDBConfig

    def _scenes(self, images: list[FDDBImage], split: str, cache_dir) -> tuple[Scenes, str]:
        config = self.config
        base = pictures_root(config.root)
        paths = [base / f"{image.name}.jpg" for image in images]
        require_files(paths, f"FDDB pictures of the {split} split", base, DATASET)
        requests = [
            ImageRequest(p, max_scale=rescale_factor(im, config.max_face_px) or 1.0)
            for p, im in zip(paths, images)
        ]
        loaded = load_images(
            requests,
            size=config.image_size,
            mode="letterbox",
            workers=config.workers,
            cache_dir=self.cache_root(cache_dir),
            max_pixels=config.max_image_pixels,
            namespace=f"{DATASET}-{split}",
        )
        boxes = []
        for row, image in enumerate(images):
            ellipses = [e.bounding_box() for e in image.ellipses]
            xyxy = torch.tensor(ellipses, dtype=torch.float64).reshape(-1, 4)
            boxes.append(loaded.map_boxes(row, xyxy))
        scenes = Scenes(
            loaded.images,
            boxes,
            [torch.zeros(len(b), dtype=torch.long) for b in boxes],
            [[] for _ in images],
            ["face"],
            [image.fold * 100_000 + image.line for image in images],
            store=loaded.store,
        )
        return scenes, loaded.digest

    def load(self, cache_dir: str | Path | None = None) -> BenchmarkData:
        """FDDB face boxes (ellipses → bounding boxes), rescaled so the smallest face is ≤ 40 px
        (CAnOPIC)."""
        config = self.config
        folds = read_folds(config)
        parts, digests = {}, {}
        for split in SPLITS:
            images = [im for fold in config.folds(split) for im in folds[fold]]
            parts[split], digests[split] = self._scenes(images, split, cache_dir)
        scenes = SceneSplits(**parts)
        faces = sum(len(b) for s in SPLITS for b in scenes[s].boxes)
        rescaled = (
            f"downsampled so the smallest face is ≤ {config.max_face_px:g} px, "
            if config.max_face_px
            else ""
        )
        description = (
            f"FDDB: {split_sizes(scenes)} pictures (train/val/test; test folds "
            f"{config.test_folds}), {faces} faces as bounding boxes of their ellipses, "
            f"{rescaled}on a {config.image_size}x{config.image_size} canvas."
        )
        return fingerprinted(DATASET, description, scenes=(scenes, digests))

    def check(self) -> CheckReport:
        """Pictures and faces per fold and split, mismatches with the fold lists, missing
        pictures."""
        config = self.config
        report = self.report()
        folds = read_folds(config)
        report.found.append(f"FDDB-folds/ ({len(folds)} ellipse lists)")
        has_original = (config.root / "originalPics").is_dir()
        report.found.append("originalPics/" if has_original else "pictures directly under the root")
        for fold, images in folds.items():
            faces = sum(len(im.ellipses) for im in images)
            report.counts[f"fold {fold:02d}"] = {"images": len(images), "faces": faces}
            listed = fold_image_list(config.root, fold)
            if listed is not None and listed != [im.name for im in images]:
                report.notes.append(
                    f"FDDB-fold-{fold:02d}.txt lists {len(listed)} pictures but the ellipse list "
                    f"has {len(images)} (or another order): the ellipse list is used."
                )
        for split in SPLITS:
            images = [im for fold in config.folds(split) for im in folds[fold]]
            faces = sum(len(im.ellipses) for im in images)
            report.counts[split] = {"images": len(images), "faces": faces}
        base = pictures_root(config.root)
        paths = [base / f"{im.name}.jpg" for images in folds.values() for im in images]
        report.check_files(paths)
        return report
