"""The ``imagenet`` dataset: ILSVRC2012 crops as the no-face class (CAnOPIC §4, experiment 2)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from privbench.api.adapter import AdapterConfig, FolderAdapter
from privbench.api.errors import DataError
from privbench.api.registry import register_dataset
from privbench.data.containers import BenchmarkData, LabeledSplits
from privbench.data.formats import (
    IMAGE_EXTENSIONS,
    AnnotationError,
    CheckReport,
    ImageRequest,
    empty_labeled,
    fingerprinted,
    hash_order,
    list_images,
    load_labeled_split,
    read_lines,
    split_sizes,
)

LAYOUT = """\
ROOT/train/n01440764/n01440764_10026.JPEG      one folder per synset
ROOT/val/ILSVRC2012_val_00000001.JPEG           flat, as published ...
ROOT/val/n01440764/ILSVRC2012_val_00000293.JPEG ... or sorted into synset folders
ROOT/face_free.txt                              optional: a face-free list (any name; see below)
"""
DATASET = "imagenet"
FACE_CLASSES = ["no-face", "face"]


class ImageNetConfig(AdapterConfig):
    train_images: int | None = Field(
        100_000, ge=0, description="no-face training images from train/ (None: all)"
    )
    val_images: int = Field(3_000, ge=0, description="no-face validation images from val/")
    test_images: int = Field(
        3_000, ge=0, description="no-face test images from val/, disjoint from the validation ones"
    )
    face_free_list: str | None = Field(
        None,
        description=(
            "text file (path absolute or relative to the root) listing face-free images relative "
            "to the root, one per line"
        ),
    )
    crop: Literal["center-square", "full"] = Field(
        "center-square", description="largest centred square, or the whole image (stretched)"
    )
    image_size: int = Field(64, ge=8, le=1024, description="side of the output crops (CAnOPIC: 64)")
    seed: int = Field(0, ge=0, description="seed of the hash-order draw")


@dataclass
class ImageNetIndex:
    """Candidate files per source folder (relative to the root, sorted)."""

    root: Path
    train: list[str]
    val: list[str]
    listed: bool  # from a face-free list (not a scan)


def _scan_pool(folder: Path) -> list[str]:
    """Relative paths of the images in ``folder`` (flat) and in its synset sub-folders."""
    if not folder.is_dir():
        return []
    names: list[str] = [f"{folder.name}/{p.name}" for p in list_images(folder)]
    with os.scandir(folder) as entries:
        subfolders = sorted(e.name for e in entries if e.is_dir())
    for sub in subfolders:
        names.extend(f"{folder.name}/{sub}/{p.name}" for p in list_images(folder / sub))
    return names


def read_face_free_list(path: Path) -> tuple[list[str], list[str]]:
    """The train/ and val/ entries of a face-free list (relative paths), validated line by line."""
    train, val = [], []
    accepted = tuple(IMAGE_EXTENSIONS)
    for line_no, line in enumerate(read_lines(path, "ImageNet face-free list"), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        relative = text.replace("\\", "/")
        relative = relative.removeprefix("./")
        head = relative.split("/", 1)[0]
        if head not in ("train", "val") or "/" not in relative or ".." in relative.split("/"):
            raise AnnotationError(
                path,
                line_no,
                "is not a path under train/ or val/",
                "lines like train/n01440764/n01440764_10026.JPEG or "
                "val/ILSVRC2012_val_00000001.JPEG",
                line,
            )
        if not relative.lower().endswith(accepted):
            raise AnnotationError(
                path,
                line_no,
                "does not name an image file",
                f"a file name ending in one of {', '.join(IMAGE_EXTENSIONS)}",
                line,
            )
        (train if head == "train" else val).append(relative)
    return sorted(set(train)), sorted(set(val))


def index_imagenet(config: ImageNetConfig) -> ImageNetIndex:
    root = config.root
    if config.face_free_list is not None:
        list_path = Path(config.face_free_list).expanduser()
        if not list_path.is_absolute():
            list_path = root / list_path
        train, val = read_face_free_list(list_path)
        return ImageNetIndex(root, train, val, listed=True)
    if not (root / "train").is_dir() and not (root / "val").is_dir():
        raise DataError(
            f"ImageNet folder {str(root)!r} has neither train/ nor val/. Expected "
            f"ROOT/train/<synset>/<file>.JPEG and "
            f"ROOT/val/ILSVRC2012_val_<n>.JPEG (flat or in synset folders), as the ILSVRC2012 "
            f"archives extract."
        )
    return ImageNetIndex(root, _scan_pool(root / "train"), _scan_pool(root / "val"), listed=False)


def _take(count: int | None, pool: list[str], what: str, root: Path) -> None:
    if count is not None and count > len(pool):
        raise DataError(
            f"ImageNet: {count} {what} requested but only {len(pool)} candidate images are "
            f"available under {str(root)!r}; "
            f"lower the count or point at a larger copy."
        )


def select_imagenet(config: ImageNetConfig, index: ImageNetIndex) -> dict[str, list[str]]:
    """Relative paths of the train / val / test no-face images."""
    _take(config.train_images, index.train, "train images (from train/)", index.root)
    _take(
        config.val_images + config.test_images,
        index.val,
        "val + test images (from val/)",
        index.root,
    )
    train_order = [index.train[i] for i in hash_order(index.train, config.seed, DATASET, "train")]
    val_order = [index.val[i] for i in hash_order(index.val, config.seed, DATASET, "val")]
    n_train = len(train_order) if config.train_images is None else config.train_images
    n_val, n_test = config.val_images, config.test_images
    return {
        "train": sorted(train_order[:n_train]),
        "val": sorted(val_order[:n_val]),
        "test": sorted(val_order[n_val : n_val + n_test]),
    }


def _requests(root: Path, relative: list[str], crop: str) -> list[ImageRequest]:
    return [ImageRequest(root / name, center_square=(crop == "center-square")) for name in relative]


@register_dataset(DATASET)
class ImageNetAdapter(FolderAdapter):
    """ImageNet / ILSVRC2012 as the **no-face class** (CAnOPIC §4, experiment 2).

    The layout is that of the published ILSVRC2012 train and validation archives, extracted.

    Protocol (CAnOPIC: 100,000 faceless ILSVRC2012 train images for training, 3,000 faceless
    validation images for testing): ``train_images`` are drawn from ``train/``; ``val_images`` and
    ``test_images`` from ``val/``, disjoint. Draws are a seeded hash order (a file's rank depends
    only on its own name and the seed). ImageNet is not face-free (people appear in many classes),
    so a **face-free list** can restrict the candidates: a text file with one path relative to ROOT
    per line (``train/n01440764/n01440764_10026.JPEG``, ``val/ILSVRC2012_val_00000001.JPEG``), blank
    lines and ``#`` comments ignored. With a list nothing is scanned: only the listed files are
    read.

    Crops: the largest centred square (``crop: center-square``, default) or the whole image,
    resized to ``image_size`` (64, as CAnOPIC's crops). All labels are 0 with class names
    ``["no-face", "face"]``, ready to be joined with face crops (see
    :class:`~privbench.data.adapters.vggface2.VGGFace2`'s ``nonfaces``).
    """

    Config = ImageNetConfig
    layout = LAYOUT
    config: ImageNetConfig

    def nonfaces(self, cache_dir: str | Path | None = None) -> tuple[LabeledSplits, dict[str, str]]:
        """The no-face crops of every split (labels 0, class names ``["no-face", "face"]``) and
        the pixel digest of each split."""
        config = self.config
        selected = select_imagenet(config, index_imagenet(config))
        parts, digests = {}, {}
        for split, names in selected.items():
            if not names:
                parts[split], digests[split] = (
                    empty_labeled(config.image_size, FACE_CLASSES),
                    "empty",
                )
                continue
            parts[split], digests[split] = load_labeled_split(
                _requests(config.root, names, config.crop),
                [0] * len(names),
                FACE_CLASSES,
                size=config.image_size,
                mode="stretch",
                workers=config.workers,
                cache_dir=self.cache_root(cache_dir),
                max_pixels=config.max_image_pixels,
                namespace=f"{DATASET}-{split}",
            )
        return LabeledSplits(**parts), digests

    def load(self, cache_dir: str | Path | None = None) -> BenchmarkData:
        """ILSVRC2012 no-face crops (the face_vs_noface part, no-face class only; join with
        faces via vggface2's ``nonfaces``)."""
        config = self.config
        splits, digests = self.nonfaces(cache_dir)
        listed = f", face-free list {config.face_free_list}" if config.face_free_list else ""
        description = (
            f"ILSVRC2012 no-face crops {split_sizes(splits)} (train/val/test), "
            f"{config.image_size}x{config.image_size} ({config.crop}){listed}; no-face class only."
        )
        return fingerprinted(DATASET, description, face_vs_noface=(splits, digests))

    def check(self) -> CheckReport:
        """What an ImageNet folder holds and whether every image the adapter would read is
        there."""
        config = self.config
        index = index_imagenet(config)
        report = self.report()
        report.add_found("train", "val")
        if config.face_free_list:
            report.found.append(
                f"face-free list {config.face_free_list} ({len(index.train)} train, "
                f"{len(index.val)} val entries)"
            )
        synsets = len({n.split("/")[1] for n in index.train})
        report.counts["train/ (candidates)"] = {"images": len(index.train), "classes": synsets}
        report.counts["val/ (candidates)"] = {"images": len(index.val)}
        selected = select_imagenet(config, index)
        for split, names in selected.items():
            report.counts[split] = {"images": len(names)}
        paths = [config.root / name for names in selected.values() for name in names]
        report.check_files(paths)
        return report
