"""The ``widerface`` dataset: WIDER FACE face boxes in scenes (face-detection tasks and attacks)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field

from privbench.api.adapter import AdapterConfig, FolderAdapter
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
    parse_numbers,
    read_lines,
    require_files,
    require_path,
    split_sizes,
)

LAYOUT = """\
ROOT/wider_face_split/wider_face_train_bbx_gt.txt
ROOT/wider_face_split/wider_face_val_bbx_gt.txt
ROOT/WIDER_train/images/0--Parade/0_Parade_marchingband_1_849.jpg
ROOT/WIDER_val/images/0--Parade/0_Parade_marchingband_1_20.jpg
"""
DATASET = "widerface"
FACE_SYNTAX = "x1 y1 w h blur expression illumination invalid occlusion pose (ten integers)"
BLUR_LEVELS = ("clear", "normal", "heavy")
OCCLUSION_LEVELS = ("none", "partial", "heavy")


@dataclass(frozen=True)
class WiderFace:
    x1: float
    y1: float
    w: float
    h: float
    blur: int
    expression: int
    illumination: int
    invalid: int
    occlusion: int
    pose: int


@dataclass
class WiderImage:
    file: str  # relative to WIDER_<set>/images, e.g. 0--Parade/0_Parade_marchingband_1_849.jpg
    faces: list[WiderFace]
    line: int  # line of the image path in the annotation file


class WiderFaceConfig(AdapterConfig):
    image_size: int = Field(
        256, ge=16, le=2048, description="side of the output scenes (2PSC resized WIDER to 256x256)"
    )
    resize: Literal["letterbox", "stretch"] = Field(
        "letterbox", description="keep the aspect (centred on black) or stretch to the square"
    )
    min_face_px: float = Field(
        10.0,
        ge=0.0,
        description=(
            "drop faces narrower or lower than this in the original picture (tiny-face filter)"
        ),
    )
    min_face_px_resized: float = Field(
        0.0, ge=0.0, description="also drop faces narrower or lower than this after resizing"
    )
    keep_invalid: bool = Field(False, description="keep faces flagged invalid")
    max_blur: int = Field(
        2, ge=0, le=2, description="keep faces with blur ≤ this (0 clear, 1 normal, 2 heavy)"
    )
    max_occlusion: int = Field(
        2, ge=0, le=2, description="keep faces with occlusion ≤ this (0 none, 1 partial, 2 heavy)"
    )
    keep_images_without_faces: bool = Field(
        True, description="keep pictures left with no face after filtering"
    )
    val_fraction: float = Field(
        0.1, ge=0.0, lt=1.0, description="share of WIDER train pictures moved to the val split"
    )
    max_train_images: int | None = Field(
        None, ge=1, description="cap on train pictures (seeded hash order); None: all"
    )
    max_val_images: int | None = Field(None, ge=1, description="cap on val pictures")
    max_test_images: int | None = Field(
        None, ge=1, description="cap on test pictures (from WIDER val)"
    )
    seed: int = Field(0, ge=0, description="seed of the train/val division and of the caps")


def annotation_path(root: Path, wider_set: str) -> Path:
    return root / "wider_face_split" / f"wider_face_{wider_set}_bbx_gt.txt"


def image_folder(root: Path, wider_set: str) -> Path:
    return root / f"WIDER_{wider_set}" / "images"


def parse_wider_annotations(path: Path) -> list[WiderImage]:
    """Every image record of a ``wider_face_*_bbx_gt.txt``; malformed lines raise
    AnnotationError."""
    lines = read_lines(path, "WIDER FACE annotation file")
    images: list[WiderImage] = []
    i = 0
    total = len(lines)
    while i < total:
        name = lines[i].strip()
        if not name:
            i += 1
            continue
        name_line = i + 1
        if not name.lower().endswith((".jpg", ".jpeg", ".png")) or len(name.split()) != 1:
            raise AnnotationError(
                path,
                name_line,
                "should name an image",
                "an image path like 0--Parade/0_Parade_marchingband_1_849.jpg",
                lines[i],
            )
        if i + 1 >= total:
            raise AnnotationError(
                path,
                name_line,
                "is the last line: the face count is missing",
                "a face-count line after each image path",
                lines[i],
            )
        count_text = lines[i + 1].strip()
        if not count_text.isdigit():
            raise AnnotationError(
                path,
                i + 2,
                "should be the number of faces of the image above",
                "a non-negative integer",
                lines[i + 1],
            )
        count = int(count_text)
        i += 2
        faces: list[WiderFace] = []
        box_lines = max(count, 1)  # a picture with 0 faces is followed by one placeholder line
        if i + box_lines > total:
            raise AnnotationError(
                path,
                total,
                f"the file ends before the {box_lines} box line(s) of {name}",
                FACE_SYNTAX,
                lines[-1],
            )
        for k in range(box_lines):
            values = parse_numbers(path, i + k + 1, lines[i + k], 10, FACE_SYNTAX)
            if count == 0:
                if any(values):
                    raise AnnotationError(
                        path,
                        i + k + 1,
                        "follows a face count of 0 but is not the all-zero placeholder",
                        "0 0 0 0 0 0 0 0 0 0",
                        lines[i + k],
                    )
                continue
            x1, y1, w, h = values[:4]
            flags = [int(v) for v in values[4:]]
            if any(v != int(v) for v in values[4:]) or not (
                0 <= flags[0] <= 2
                and 0 <= flags[1] <= 1
                and 0 <= flags[2] <= 1
                and 0 <= flags[3] <= 1
                and 0 <= flags[4] <= 2
                and 0 <= flags[5] <= 1
            ):
                raise AnnotationError(
                    path,
                    i + k + 1,
                    "has a flag out of range",
                    "blur 0-2, expression 0-1, illumination 0-1, invalid 0-1, occlusion 0-2, pose "
                    "0-1",
                    lines[i + k],
                )
            if w < 0 or h < 0:
                raise AnnotationError(
                    path, i + k + 1, "has a negative width or height", FACE_SYNTAX, lines[i + k]
                )
            faces.append(WiderFace(x1, y1, w, h, *flags))
        i += box_lines
        images.append(WiderImage(name, faces, name_line))
    return images


def keep_face(face: WiderFace, config: WiderFaceConfig) -> bool:
    """The documented filter: invalid, tiny (original pixels), too blurred or too occluded faces
    go."""
    if face.invalid and not config.keep_invalid:
        return False
    if face.w < config.min_face_px or face.h < config.min_face_px or face.w <= 0 or face.h <= 0:
        return False
    return face.blur <= config.max_blur and face.occlusion <= config.max_occlusion


def select_widerface(config: WiderFaceConfig) -> dict[str, list[tuple[str, WiderImage]]]:
    """Split → ``(WIDER set, image record)`` after filtering faces and dividing WIDER train."""
    root = config.root
    selected: dict[str, list[tuple[str, WiderImage]]] = {}
    records = {}
    for wider_set in ("train", "val"):
        path = require_path(
            annotation_path(root, wider_set),
            f"WIDER FACE {wider_set} annotations",
            DATASET,
            "Expected ROOT/wider_face_split/wider_face_{train,val}_bbx_gt.txt from "
            "wider_face_split.zip.",
        )
        images = []
        for image in parse_wider_annotations(path):
            kept = [f for f in image.faces if keep_face(f, config)]
            if kept or config.keep_images_without_faces:
                images.append(WiderImage(image.file, kept, image.line))
        records[wider_set] = images
    train_images = records["train"]
    order = hash_order([im.file for im in train_images], config.seed, DATASET, "val")
    n_val = round(config.val_fraction * len(train_images))
    val_index = set(order[:n_val])
    selected["train"] = [("train", im) for i, im in enumerate(train_images) if i not in val_index]
    selected["val"] = [("train", im) for i, im in enumerate(train_images) if i in val_index]
    selected["test"] = [("val", im) for im in records["val"]]
    caps = {
        "train": config.max_train_images,
        "val": config.max_val_images,
        "test": config.max_test_images,
    }
    for split, cap in caps.items():
        items = selected[split]
        selected[split] = hash_cap(
            items, [im.file for _, im in items], cap, config.seed, DATASET, "cap", split
        )
    return selected


@register_dataset(DATASET)
class WiderFaceAdapter(FolderAdapter):
    """WIDER FACE: face boxes in scenes (face-detection tasks and attacks).

    The layout is that of the published WIDER FACE archives, extracted.

    ``wider_face_*_bbx_gt.txt`` syntax: an image path line, a face-count line, then one line per
    face ``x1 y1 w h blur expression illumination invalid occlusion pose`` (pixels; blur 0 clear /
    1 normal / 2 heavy; expression 0 typical / 1 exaggerated; illumination 0 normal / 1 extreme;
    invalid 0 / 1; occlusion 0 none / 1 partial / 2 heavy; pose 0 typical / 1 atypical). An image
    with no face has the count 0 followed by one placeholder line of ten zeros.

    Splits: WIDER's test annotations are not public, so privbench's **test** split is the WIDER
    *val* set (where detectors are evaluated, e.g. 2PSC's precision-recall curves) and its train and
    val splits divide the WIDER *train* set (``val_fraction`` of its images, by seeded hash order).

    Face filtering (documented, configurable): faces flagged ``invalid`` are dropped
    (``keep_invalid``); so are faces whose width or height is below ``min_face_px`` pixels in the
    original picture (default 10, the usual tiny-face cut of WIDER training pipelines; WIDER's
    "hard" subset goes down to a few pixels), faces above ``max_blur`` / ``max_occlusion``, and
    (optionally) faces smaller than ``min_face_px_resized`` after resizing to ``image_size``. Boxes
    are clipped to the picture. Pictures are resized to ``image_size`` (letterboxed by default:
    aspect kept, centred on black; ``resize: stretch`` fills the square) and the boxes mapped with
    them. A scene's image id is the line of its path in the annotation file (unique within a WIDER
    set).
    """

    Config = WiderFaceConfig
    layout = LAYOUT
    config: WiderFaceConfig

    def _scenes(
        self, items: list[tuple[str, WiderImage]], split: str, cache_dir
    ) -> tuple[Scenes, str]:
        config = self.config
        paths = [image_folder(config.root, wider_set) / image.file for wider_set, image in items]
        require_files(paths, f"WIDER FACE images of the {split} split", config.root, DATASET)
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
        for row, (_, image) in enumerate(items):
            corners = [[f.x1, f.y1, f.x1 + f.w, f.y1 + f.h] for f in image.faces]
            xyxy = torch.tensor(corners, dtype=torch.float64).reshape(-1, 4)
            mapped = loaded.map_boxes(row, xyxy)
            size = mapped[:, 2:] - mapped[:, :2]
            # boxes lying outside the picture are empty once clipped; the optional resized-size
            # filter
            mapped = mapped[(size > 0).all(dim=1) & (size >= config.min_face_px_resized).all(dim=1)]
            boxes.append(mapped)
            labels.append(torch.zeros(mapped.shape[0], dtype=torch.long))
        image_ids = [image.line for _, image in items]
        scenes = Scenes(
            loaded.images,
            boxes,
            labels,
            [[] for _ in items],
            ["face"],
            image_ids,
            store=loaded.store,
        )
        return scenes, loaded.digest

    def load(self, cache_dir: str | Path | None = None) -> BenchmarkData:
        """WIDER FACE face boxes (train/val from WIDER train, test = WIDER val), filtered and
        resized."""
        config = self.config
        selected = select_widerface(config)
        parts, digests = {}, {}
        for split in SPLITS:
            parts[split], digests[split] = self._scenes(selected[split], split, cache_dir)
        scenes = SceneSplits(**parts)
        faces = "/".join(str(sum(len(b) for b in scenes[s].boxes)) for s in SPLITS)
        description = (
            f"WIDER FACE: {split_sizes(scenes)} pictures (train/val from WIDER train, test = "
            f"WIDER val) with {faces} faces after filtering ({_filter_words(config)}), "
            f"{config.resize} to {config.image_size}x{config.image_size}."
        )
        return fingerprinted(DATASET, description, scenes=(scenes, digests))

    def check(self) -> CheckReport:
        """Pictures and faces per split (before and after filtering) and missing image files."""
        config = self.config
        report = self.report()
        for wider_set in ("train", "val"):
            annotations = annotation_path(config.root, wider_set)
            images_folder = image_folder(config.root, wider_set)
            report.add_found(
                *(str(c.relative_to(config.root)) for c in (annotations, images_folder))
            )
            if annotations.is_file():
                images = parse_wider_annotations(annotations)
                faces = [f for im in images for f in im.faces]
                report.counts[f"WIDER {wider_set}"] = {
                    "images": len(images),
                    "faces": len(faces),
                    "invalid": sum(f.invalid for f in faces),
                    "heavy blur": sum(f.blur == 2 for f in faces),
                    "heavy occl.": sum(f.occlusion == 2 for f in faces),
                    f"< {config.min_face_px:g} px": sum(
                        min(f.w, f.h) < config.min_face_px for f in faces
                    ),
                }
        selected = select_widerface(config)
        for split in SPLITS:
            faces = sum(len(im.faces) for _, im in selected[split])
            report.counts[split] = {"images": len(selected[split]), "faces": faces}
        paths = [
            image_folder(config.root, wider_set) / image.file
            for split in SPLITS
            for wider_set, image in selected[split]
        ]
        report.check_files(paths)
        resized = (
            f", < {config.min_face_px_resized:g} px after resizing dropped when loading"
            if config.min_face_px_resized
            else ""
        )
        kept = _filter_words(config, tiny="width or height <")
        report.notes.append(f"train/val/test count the faces kept by the filter: {kept}{resized}")
        return report


def _filter_words(config: WiderFaceConfig, tiny: str = "<") -> str:
    """The face filter in words (``tiny``: how the size cut is phrased)."""
    return (
        f"invalid {'kept' if config.keep_invalid else 'dropped'}, {tiny} {config.min_face_px:g} "
        f"px dropped, blur ≤ {config.max_blur}, occlusion ≤ {config.max_occlusion}"
    )
