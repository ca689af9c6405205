"""ImageFolder scan: one sub-folder per class (sorted names → labels ``0..C−1``), images inside."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from privbench.api.errors import DataError
from privbench.data.containers import LabeledImages
from privbench.data.formats.images import IMAGE_EXTENSIONS, ImageRequest, load_images


@dataclass
class ImageFolderIndex:
    """The files of an ImageFolder: parallel lists of paths and labels, and the class names."""

    root: Path
    paths: list[Path]
    labels: list[int]
    classes: list[str]

    def __len__(self) -> int:
        return len(self.paths)


def list_images(folder: Path, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files directly inside ``folder`` (by extension, case-insensitive), sorted by name."""
    accepted = {e.lower() for e in extensions}
    with os.scandir(folder) as entries:
        names = sorted(
            e.name
            for e in entries
            if e.is_file() and os.path.splitext(e.name)[1].lower() in accepted
        )
    return [folder / name for name in names]


def scan_image_folder(
    root: str | Path,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    classes: Sequence[str] | None = None,
) -> ImageFolderIndex:
    """Index an ImageFolder without reading any image: class = sub-folder (sorted), files sorted by
    name.

    ``classes`` restricts the scan to those sub-folders (in that order); each must exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"ImageFolder {str(root)!r} does not exist (expected one sub-folder of images per "
            f"class)."
        )
    if classes is None:
        with os.scandir(root) as entries:
            classes = sorted(e.name for e in entries if e.is_dir())
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            raise DataError(f"ImageFolder {str(root)!r} has no class folder {name!r}.")
        files = list_images(folder, extensions)
        paths.extend(files)
        labels.extend([label] * len(files))
    if not paths:
        raise DataError(
            f"ImageFolder {str(root)!r} holds no images (looked for {', '.join(extensions)} files "
            f"in "
            f"{len(classes)} class sub-folders)."
        )
    return ImageFolderIndex(root, paths, labels, list(classes))


def read_image_folder(
    root: str | Path,
    *,
    size: int | tuple[int, int] | None = None,
    mode: str = "stretch",
    workers: int | None = None,
    cache_dir: str | Path | None = None,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> LabeledImages:
    """An ImageFolder read into :class:`LabeledImages`. ``size=None`` keeps the native size (all
    images must then share one size); ``cache_dir`` enables the content-addressed tensor cache."""
    index = scan_image_folder(root, extensions)
    loaded = load_images(
        [ImageRequest(p) for p in index.paths],
        size=size,
        mode=mode,
        workers=workers,
        cache_dir=cache_dir,
        namespace="imagefolder",
    )
    labels = torch.tensor(index.labels, dtype=torch.long)
    return LabeledImages(loaded.images, labels, index.classes, store=loaded.store)
