"""Seeded, stable splits: hash orders, caps, per-identity splits, labelled split tensors.

A file's place in a hash order depends only on its own name and the seed, so adding files
elsewhere never reshuffles a split.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from privbench.api.arrays import ArrayFile, ArrayWriter, open_array
from privbench.api.config import stable_hash
from privbench.data.containers import LabeledImages
from privbench.data.formats.images import DEFAULT_MAX_IMAGE_PIXELS, ImageRequest, load_images


def hash_order(names: Sequence[str], seed: int, *salt: Any) -> list[int]:
    """Indices of ``names`` sorted by SHA-256 of (seed, salt, name): a seeded shuffle in which an
    item's rank depends only on its own name, never on which other items exist or on library
    versions."""
    prefix = json.dumps([int(seed), *salt], default=str)
    keys = [hashlib.sha256(f"{prefix}\0{name}".encode()).digest() for name in names]
    return sorted(range(len(names)), key=keys.__getitem__)


def hash_cap(
    items: Sequence[Any], names: Sequence[str], cap: int | None, seed: int, *salt: Any
) -> list[Any]:
    """``items``, or (when there are more than ``cap``) the ``cap`` of them first in the seeded hash
    order of their ``names``, kept in their original order."""
    if cap is None or len(items) <= cap:
        return list(items)
    keep = set(hash_order(names, seed, *salt)[:cap])
    return [item for i, item in enumerate(items) if i in keep]


def split_per_identity(
    items: Sequence[Any],
    names: Sequence[str],
    test: int,
    val: int,
    max_train: int | None,
    seed: int,
    dataset: str,
) -> dict[str, list[Any]]:
    """One identity's ``items`` divided in the seeded hash order of their ``names``: the first
    ``test`` go to test, the next ``val`` to val, the rest (at most ``max_train``) to train; each
    split sorted by name."""
    order = hash_order(names, seed, dataset, "split")
    train = order[test + val :]
    if max_train is not None:
        train = train[:max_train]
    chosen = {"test": order[:test], "val": order[test : test + val], "train": train}
    return {
        split: [items[i] for i in sorted(rows, key=names.__getitem__)]
        for split, rows in chosen.items()
    }


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
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> tuple[LabeledImages, str]:
    """One split of labelled crops and the digest of its pixels."""
    loaded = load_images(
        requests,
        size=size,
        mode=mode,
        workers=workers,
        cache_dir=cache_dir,
        namespace=namespace,
        max_pixels=max_pixels,
    )
    labels_tensor = torch.tensor(list(labels), dtype=torch.long)
    return LabeledImages(
        loaded.images, labels_tensor, class_names, store=loaded.store
    ), loaded.digest


def empty_labeled(size: int, class_names: list[str]) -> LabeledImages:
    return LabeledImages(
        torch.zeros(0, 3, size, size, dtype=torch.uint8),
        torch.zeros(0, dtype=torch.long),
        class_names,
    )


def concat_labeled(
    parts: Sequence[LabeledImages], labels: Sequence[int], class_names: list[str]
) -> LabeledImages:
    """The images of ``parts`` one after the other, part ``i``'s images all labelled
    ``labels[i]``. Parts read from image stores are concatenated into a new store beside the
    first (content-addressed by the parts' digests, written part by part: never in memory)."""
    stacked = torch.cat(
        [torch.full((len(p),), label, dtype=torch.long) for p, label in zip(parts, labels)]
    )
    stores = [p.store for p in parts]
    if not parts or any(store is None for store in stores):
        return LabeledImages(torch.cat([p.images for p in parts]), stacked, class_names)
    key = stable_hash([store.digest for store in stores], length=32)
    path = stores[0].path.parent / f"concat-{key}.npy"
    store = open_array(path)
    if store is None:
        shape = (sum(len(s) for s in stores), *stores[0].shape[1:])
        with ArrayWriter(path, shape, torch.uint8) as writer:
            start = 0
            for part in stores:
                for chunk in torch.arange(len(part)).split(1024):
                    writer.write(start, part.read(chunk))
                    start += chunk.numel()
        store = ArrayFile(path)
    return LabeledImages(store.tensor(), stacked, class_names, store=store)
