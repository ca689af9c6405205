"""Content fingerprints of loaded datasets (they enter cache keys and result rows)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch

from privbench.api.profiling import section
from privbench.data.containers import SPLITS, BenchmarkData, LabeledSplits, Scenes, SceneSplits


def hash_tensor(digest: Any, tensor: torch.Tensor) -> Any:
    """Feed ``tensor``'s dtype, shape and bytes to the hashlib object ``digest``; returns it."""
    tensor = tensor.contiguous()
    digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    digest.update(tensor.numpy().tobytes())
    return digest


@section("hash")
def tensor_digest(tensor: torch.Tensor) -> str:
    """SHA-256 (hex) of one tensor's dtype, shape and bytes."""
    return hash_tensor(hashlib.sha256(), tensor).hexdigest()


class ContentHasher:
    """SHA-256 over tensors, pixel digests and JSON values, in the order they are added."""

    def __init__(self, *labels: Any):
        self._digest = hashlib.sha256(json.dumps(labels, default=str).encode())

    def tensor(self, tensor: torch.Tensor) -> ContentHasher:
        self._digest.update(tensor_digest(tensor).encode())
        return self

    def text(self, value: str) -> ContentHasher:
        self._digest.update(value.encode())
        return self

    def json(self, value: Any) -> ContentHasher:
        self._digest.update(json.dumps(value, sort_keys=True, default=str).encode())
        return self

    def hexdigest(self, length: int = 16) -> str:
        return self._digest.hexdigest()[:length]


def fingerprint_labeled(
    hasher: ContentHasher,
    part: str,
    split: str,
    images_digest: str,
    labels: torch.Tensor,
    class_names: list[str],
) -> None:
    hasher.json([part, split, images_digest, class_names]).tensor(labels)


def fingerprint_scenes(
    hasher: ContentHasher, split: str, images_digest: str, scenes: Scenes
) -> None:
    hasher.json(
        ["scenes", split, images_digest, scenes.categories, scenes.captions, scenes.image_ids]
    )
    for boxes, labels in zip(scenes.boxes, scenes.box_labels):
        hasher.tensor(boxes).tensor(labels)


def fingerprint_labeled_splits(
    hasher: ContentHasher, part: str, splits: LabeledSplits, digests: dict[str, str]
) -> ContentHasher:
    """:func:`fingerprint_labeled` of every split of ``splits`` in train / val / test order; returns
    ``hasher``."""
    for split, labeled in splits.items():
        fingerprint_labeled(
            hasher, part, split, digests[split], labeled.labels, labeled.class_names
        )
    return hasher


def fingerprint_scene_splits(
    hasher: ContentHasher, scenes: SceneSplits, digests: dict[str, str]
) -> ContentHasher:
    """:func:`fingerprint_scenes` of every split of ``scenes`` in train / val / test order; returns
    ``hasher``."""
    for split in SPLITS:
        fingerprint_scenes(hasher, split, digests[split], scenes[split])
    return hasher


def split_sizes(splits: LabeledSplits | SceneSplits) -> str:
    """``"train/val/test"`` sizes of a split set, as the dataset descriptions print them."""
    return "/".join(str(len(splits[split])) for split in SPLITS)


def fingerprinted(
    dataset: str, description: str, **parts: tuple[LabeledSplits | SceneSplits, dict[str, str]]
) -> BenchmarkData:
    """The :class:`BenchmarkData` of a dataset read from files: each part (``identities``,
    ``face_vs_noface``, ``scenes``) given as its splits and the pixel digest of each split, in
    the order they enter the fingerprint."""
    hasher = ContentHasher(dataset)
    for part, (splits, digests) in parts.items():
        if isinstance(splits, SceneSplits):
            fingerprint_scene_splits(hasher, splits, digests)
        else:
            fingerprint_labeled_splits(hasher, part, splits, digests)
    return BenchmarkData(
        name=dataset,
        fingerprint=hasher.hexdigest(),
        description=description,
        **{part: splits for part, (splits, _) in parts.items()},
    )
