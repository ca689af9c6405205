"""The VGGFace2 protocol of CAnOPIC: options, the loose-box CSV, identity selection and crops.

Read by :class:`~privbench.data.adapters.vggface2.VGGFace2Adapter`; see its documentation.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from privbench.api.adapter import AdapterConfig
from privbench.api.errors import DataError
from privbench.data.containers import SPLITS
from privbench.data.formats import (
    AnnotationError,
    ImageRequest,
    list_images,
    require_files,
    require_path,
    split_per_identity,
)

DATASET = "vggface2"
CSV_HEADER = ["NAME_ID", "X", "Y", "W", "H"]
CSV_SYNTAX = (
    "lines NAME_ID,X,Y,W,H like n000002/0001_01,161,140,224,324 after the header NAME_ID,X,Y,W,H"
)


class VGGFace2Config(AdapterConfig):
    subset: Literal["test", "train"] = Field(
        "test",
        description="VGGFace2 folder the identities come from (CAnOPIC: the held-out test set)",
    )
    n_identities: int = Field(
        100, ge=2, description="identities with the most images (CAnOPIC: 100)"
    )
    test_per_identity: int = Field(30, ge=1, description="test images per identity (CAnOPIC: 30)")
    val_per_identity: int = Field(
        30, ge=1, description="validation images per identity (CAnOPIC: 30)"
    )
    max_train_per_identity: int | None = Field(
        None, ge=1, description="cap on training images per identity (None: all the rest)"
    )
    crop: Literal["loose-square", "loose", "full"] = Field(
        "loose-square", description="crop of each picture (see the module docs)"
    )
    crop_scale: float = Field(
        1.0,
        gt=0.2,
        le=4.0,
        description="side of the loose-square crop relative to max(W, H) of the loose box",
    )
    image_size: int = Field(64, ge=8, le=1024, description="side of the output crops (CAnOPIC: 64)")
    seed: int = Field(0, ge=0, description="seed of the per-identity hash order")
    nonfaces: dict[str, Any] | None = Field(
        None, description="ImageNet adapter config (at least path): adds the face_vs_noface part"
    )
    face_vs_noface_train_faces: int | None = Field(
        None,
        ge=1,
        description=(
            "face-class training crops drawn from the other VGGFace2 subset (None: the identity "
            "training crops)"
        ),
    )

    @model_validator(mode="after")
    def _train_faces_need_nonfaces(self) -> VGGFace2Config:
        if self.face_vs_noface_train_faces is not None and self.nonfaces is None:
            raise ValueError(
                "face_vs_noface_train_faces needs nonfaces (the ImageNet config of the no-face "
                "class)"
            )
        if self.face_vs_noface_train_faces is not None and self.crop == "full":
            raise ValueError(
                "face_vs_noface_train_faces draws loose crops: use crop loose-square or loose"
            )
        return self


# -- annotation files
# ---------------------------------------------------------------------------------
def loose_bb_path(root: Path, subset: str) -> Path:
    return root / "bb_landmark" / f"loose_bb_{subset}.csv"


def iter_loose_bb(path: Path) -> Iterator[tuple[int, str, tuple[float, float, float, float]]]:
    """``(line number, NAME_ID, (X, Y, W, H))`` of every row of a ``loose_bb_*.csv``, validated."""
    if not path.is_file():
        raise DataError(
            f"VGGFace2 bounding boxes {str(path)!r} do not exist (the bb_landmark folder of the "
            f"VGGFace2 download)."
        )
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != CSV_HEADER:
            raise AnnotationError(
                path,
                1,
                f"has the header {header!r}",
                "the header NAME_ID,X,Y,W,H",
                ",".join(header or []),
            )
        for row in reader:
            line_no = reader.line_num
            if not row or all(not field.strip() for field in row):
                continue
            if len(row) != 5:
                raise AnnotationError(
                    path, line_no, f"has {len(row)} fields instead of 5", CSV_SYNTAX, ",".join(row)
                )
            name = row[0].strip()
            identity, _, image = name.partition("/")
            if not identity or not image or "/" in image:
                raise AnnotationError(
                    path,
                    line_no,
                    f"NAME_ID {name!r} is not <identity>/<image>",
                    CSV_SYNTAX,
                    ",".join(row),
                )
            try:
                x, y, w, h = (float(v) for v in row[1:])
            except ValueError:
                raise AnnotationError(
                    path, line_no, "X, Y, W or H is not a number", CSV_SYNTAX, ",".join(row)
                ) from None
            if not (w > 0 and h > 0):
                raise AnnotationError(
                    path, line_no, "W and H must be positive", CSV_SYNTAX, ",".join(row)
                )
            yield line_no, name, (x, y, w, h)


@dataclass
class Face:
    name: str  # NAME_ID, e.g. n000002/0001_01
    box: tuple[float, float, float, float] | None  # loose X, Y, W, H (None with crop "full")

    @property
    def identity(self) -> str:
        return self.name.split("/", 1)[0]


def count_images(config: VGGFace2Config, subset: str) -> dict[str, int]:
    """Images per identity of ``subset``: from the CSV, or (crop "full") from the identity
    folders."""
    if config.crop == "full":
        folder = require_path(
            config.root / subset,
            f"VGGFace2 {subset} folder",
            DATASET,
            "Expected ROOT/<subset>/n000001/0001_01.jpg.",
        )
        counts = {}
        for entry in sorted(p for p in folder.iterdir() if p.is_dir()):
            counts[entry.name] = len(list_images(entry))
        return {k: v for k, v in counts.items() if v}
    counts: dict[str, int] = {}
    for _, name, _ in iter_loose_bb(loose_bb_path(config.root, subset)):
        identity = name.split("/", 1)[0]
        counts[identity] = counts.get(identity, 0) + 1
    return counts


def faces_of(config: VGGFace2Config, subset: str, identities: set[str]) -> dict[str, list[Face]]:
    """Every face (name and loose box) of ``identities`` in ``subset``, per identity, sorted by
    name."""
    found: dict[str, list[Face]] = {identity: [] for identity in identities}
    if config.crop == "full":
        for identity in identities:
            files = list_images(config.root / subset / identity)
            found[identity] = [Face(f"{identity}/{p.stem}", None) for p in files]
        return found
    for _, name, box in iter_loose_bb(loose_bb_path(config.root, subset)):
        identity = name.split("/", 1)[0]
        if identity in found:
            found[identity].append(Face(name, box))
    for faces in found.values():
        faces.sort(key=lambda f: f.name)
    return found


def select_identities(counts: dict[str, int], config: VGGFace2Config, subset: str) -> list[str]:
    """The ``n_identities`` identities with the most images (ties by name), sorted by name."""
    needed = config.test_per_identity + config.val_per_identity + 1
    eligible = [(-count, identity) for identity, count in counts.items() if count >= needed]
    if len(eligible) < config.n_identities:
        raise DataError(
            f"VGGFace2 {subset}: only {len(eligible)} identities have at least {needed} images "
            f"(test {config.test_per_identity} + val {config.val_per_identity} + 1 train), "
            f"{config.n_identities} requested. "
            f"Lower n_identities or the per-identity counts."
        )
    return sorted(identity for _, identity in sorted(eligible)[: config.n_identities])


def split_faces(faces: list[Face], config: VGGFace2Config) -> dict[str, list[Face]]:
    """Test first, then validation, then training, in the seeded hash order of the file names."""
    return split_per_identity(
        faces,
        [f.name for f in faces],
        config.test_per_identity,
        config.val_per_identity,
        config.max_train_per_identity,
        config.seed,
        DATASET,
    )


def crop_request(root: Path, subset: str, face: Face, config: VGGFace2Config) -> ImageRequest:
    path = root / subset / f"{face.name}.jpg"
    if config.crop == "full" or face.box is None:
        return ImageRequest(path)
    x, y, w, h = face.box
    if config.crop == "loose":
        return ImageRequest(path, crop=(x, y, x + w, y + h))
    side = config.crop_scale * max(w, h)
    cx, cy = x + w / 2, y + h / 2
    return ImageRequest(path, crop=(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))


@dataclass
class VGGFace2Selection:
    subset: str
    identities: list[str]
    splits: dict[str, list[Face]]  # split → faces, identity-major
    counts: dict[str, int]  # images per identity of the subset


def select_vggface2(config: VGGFace2Config) -> VGGFace2Selection:
    counts = count_images(config, config.subset)
    identities = select_identities(counts, config, config.subset)
    per_identity = faces_of(config, config.subset, set(identities))
    splits: dict[str, list[Face]] = {split: [] for split in SPLITS}
    for identity in identities:
        for split, faces in split_faces(per_identity[identity], config).items():
            splits[split].extend(faces)
    return VGGFace2Selection(config.subset, identities, splits, counts)


def sample_extra_faces(
    config: VGGFace2Config, count: int, exclude: set[str]
) -> tuple[str, list[Face]]:
    """``count`` loose crops from the other subset (not from ``exclude``), the smallest SHA-256
    ranks of a streaming pass over its CSV (memory O(count), any CSV size)."""
    subset = "train" if config.subset == "test" else "test"
    prefix = json.dumps([config.seed, DATASET, "face-vs-noface"])
    heap: list[
        tuple[bytes, str, tuple[float, float, float, float]]
    ] = []  # max-heap by negated rank
    for _, name, box in iter_loose_bb(loose_bb_path(config.root, subset)):
        if name.split("/", 1)[0] in exclude:
            continue
        rank = hashlib.sha256(f"{prefix}\0{name}".encode()).digest()
        negated = bytes(255 - b for b in rank)
        if len(heap) < count:
            heapq.heappush(heap, (negated, name, box))
        elif negated > heap[0][0]:
            heapq.heapreplace(heap, (negated, name, box))
    if len(heap) < count:
        raise DataError(
            f"VGGFace2 {subset}: {count} extra face crops requested but only {len(heap)} are "
            f"available."
        )
    return subset, sorted((Face(name, box) for _, name, box in heap), key=lambda f: f.name)


def require_face_files(config: VGGFace2Config, subset: str, faces: list[Face]) -> None:
    require_files(
        [config.root / subset / f"{f.name}.jpg" for f in faces],
        f"VGGFace2 {subset} images selected by the protocol",
        config.root / subset,
        DATASET,
    )
