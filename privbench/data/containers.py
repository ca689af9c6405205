"""The containers the data layer hands to the runner.

Images are ``uint8 (N, 3, H, W)`` (compact, exact); encoders receive them as float in [0, 1]. A
split an adapter wrote to its image store (:mod:`privbench.api.arrays`) keeps the store beside the
tensor: the tensor is then a memory map of the file (opened, not read), streamed measurements
read their batches from the file (:mod:`privbench.api.measurements`), and pickling the container
(a Ray task's argument) sends the path instead of the pixels. Every dataset carries a content
fingerprint that enters the cache keys and the result rows, so results computed on different
data are never confused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import torch

from privbench.api.arrays import ArrayFile

SPLITS = ("train", "val", "test")

PartT = TypeVar("PartT", "LabeledImages", "Scenes")


class SplitSet(Generic[PartT]):
    """The train / val / test splits of one part, also readable by split name."""

    train: PartT
    val: PartT
    test: PartT

    def __getitem__(self, split: str) -> PartT:
        if split not in SPLITS:
            raise KeyError(f"unknown split {split!r}; expected one of {SPLITS}")
        return getattr(self, split)

    def items(self) -> Iterator[tuple[str, PartT]]:
        for split in SPLITS:
            yield split, self[split]


class ImageSplit:
    """What every split with images shares: the images, optionally backed by an image store."""

    images: torch.Tensor
    store: ArrayFile | None

    @property
    def image_bytes(self) -> int:
        return int(self.images.numel())

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.store is not None:
            state["images"] = None  # reopened from the store's path on the other side
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("images") is None and state.get("store") is not None:
            state["images"] = state["store"].tensor()
        self.__dict__.update(state)


@dataclass
class LabeledImages(ImageSplit):
    """Images with one integer label each (identity, or face / no-face)."""

    images: torch.Tensor  # uint8 (N, 3, H, W)
    labels: torch.Tensor  # int64 (N,)
    class_names: list[str]
    store: ArrayFile | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4 or self.images.shape[1] != 3:
            raise ValueError(
                f"images must be uint8 (N, 3, H, W); got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must have shape ({self.images.shape[0]},); got {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass
class LabeledSplits(SplitSet["LabeledImages"]):
    """train / val / test splits of one labelled image collection."""

    train: LabeledImages
    val: LabeledImages
    test: LabeledImages


@dataclass
class Scenes(ImageSplit):
    """Scenes with boxes (xyxy pixels, per-box category ids) and reference captions."""

    images: torch.Tensor  # uint8 (N, 3, H, W)
    boxes: list[torch.Tensor]  # per image: float32 (k, 4) xyxy in pixels
    box_labels: list[torch.Tensor]  # per image: int64 (k,) indices into categories
    captions: list[list[str]]  # per image: reference captions
    categories: list[str]
    image_ids: list[int] = field(default_factory=list)
    store: ArrayFile | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass
class SceneSplits(SplitSet["Scenes"]):
    """train / val / test splits of the scenes."""

    train: Scenes
    val: Scenes
    test: Scenes


@dataclass
class BenchmarkData:
    """Everything one benchmark run reads: the parts an evaluation may ask for, by name.

    ``identities``: face crops labelled by identity (face-ID attacks).
    ``face_vs_noface``: crops labelled 1 = face, 0 = no face (the CAnOPIC utility task).
    ``scenes``: larger scenes with face/object boxes and captions (detection, captioning).
    """

    name: str
    fingerprint: str
    identities: LabeledSplits | None = None
    face_vs_noface: LabeledSplits | None = None
    scenes: SceneSplits | None = None
    description: str = ""

    def available_parts(self) -> list[str]:
        """The parts this dataset provides, of ``identities``, ``face_vs_noface``, ``scenes``."""
        return [
            p for p in ("identities", "face_vs_noface", "scenes") if getattr(self, p) is not None
        ]

    def has_part(self, name: str) -> bool:
        return name in self.available_parts()

    def source(self, label: str) -> BenchmarkData:
        """One named source of a composite dataset (``data: LABEL`` in a spec); a plain dataset
        has none."""
        from privbench.api.errors import ConfigError

        raise ConfigError(
            f"'data: {label}' names a source, but dataset {self.name!r} is not a composite."
        )

    def part(self, name: str):
        value = getattr(self, name, None)
        if value is None:
            from privbench.api.errors import DataError

            available = self.available_parts()
            raise DataError(
                f"Dataset {self.name!r} has no part {name!r} (it provides: "
                f"{', '.join(available) or 'nothing'}). "
                f"Choose evaluations that use those parts, or a dataset that provides {name!r}."
            )
        return value
