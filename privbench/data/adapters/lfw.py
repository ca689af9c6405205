"""The ``lfw`` dataset: Labeled Faces in the Wild identities, and its verification pairs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import Field, model_validator

from privbench.api.adapter import AdapterConfig, FolderAdapter
from privbench.api.errors import DataError
from privbench.api.registry import register_dataset
from privbench.data.containers import SPLITS, BenchmarkData, LabeledSplits
from privbench.data.formats import (
    AnnotationError,
    CheckReport,
    ImageRequest,
    fingerprinted,
    list_images,
    load_images,
    load_labeled_split,
    read_lines,
    require_files,
    split_per_identity,
    split_sizes,
)

LAYOUT = """\
ROOT/lfw/Aaron_Peirsol/Aaron_Peirsol_0001.jpg      250x250 pictures, one folder per person
ROOT/pairs.txt                                     10 folds of 300 matched + 300 mismatched pairs
ROOT/pairsDevTrain.txt, ROOT/pairsDevTest.txt      (optional) the development view
"""
DATASET = "lfw"
IMAGE_FOLDERS = ("lfw", "lfw-deepfunneled", "lfw_funneled")
PAIR_SYNTAX = "matched pairs 'Name<TAB>i<TAB>j' and mismatched pairs 'Name1<TAB>i<TAB>Name2<TAB>j'"


class LFWConfig(AdapterConfig):
    min_images_per_identity: int = Field(
        20, ge=2, description="people with at least this many pictures"
    )
    n_identities: int | None = Field(
        None, ge=2, description="keep the people with most pictures (None: all eligible)"
    )
    test_per_identity: int = Field(5, ge=1, description="test pictures per person")
    val_per_identity: int = Field(5, ge=1, description="validation pictures per person")
    max_train_per_identity: int | None = Field(
        None, ge=1, description="cap on training pictures per person"
    )
    center_crop_px: int | None = Field(
        150,
        ge=8,
        le=250,
        description="side of the central crop of the 250x250 pictures (None: whole)",
    )
    image_size: int = Field(64, ge=8, le=1024, description="side of the output crops")
    images_folder: str | None = Field(
        None,
        description="folder of the person folders (default: lfw, lfw-deepfunneled or lfw_funneled)",
    )
    seed: int = Field(0, ge=0, description="seed of the per-person hash order")

    @model_validator(mode="after")
    def _enough_per_identity(self) -> LFWConfig:
        needed = self.test_per_identity + self.val_per_identity + 1
        if self.min_images_per_identity < needed:
            raise ValueError(f"min_images_per_identity must be at least test + val + 1 = {needed}")
        return self


def people_folder(root: Path, images_folder: str | None = None) -> Path:
    """The folder holding one sub-folder per person."""
    if images_folder is not None:
        folder = Path(images_folder).expanduser()
        folder = folder if folder.is_absolute() else root / folder
        if not folder.is_dir():
            raise DataError(f"LFW images folder {str(folder)!r} does not exist.")
        return folder
    for name in IMAGE_FOLDERS:
        if (root / name).is_dir():
            return root / name
    if root.name in IMAGE_FOLDERS or any(
        (root / d).is_dir() and (root / d / f"{d}_0001.jpg").is_file() for d in _first_dirs(root)
    ):
        return root
    raise DataError(
        f"LFW: no person folders under {str(root)!r}. Expected ROOT/lfw/<Name>/<Name>_0001.jpg "
        f"(or lfw-deepfunneled / lfw_funneled), or ROOT being that lfw folder."
    )


def _first_dirs(root: Path, count: int = 5) -> list[str]:
    with os.scandir(root) as entries:
        return sorted(e.name for e in entries if e.is_dir())[:count]


def picture_path(folder: Path, name: str, number: int) -> Path:
    return folder / name / f"{name}_{number:04d}.jpg"


def count_pictures(folder: Path) -> dict[str, int]:
    with os.scandir(folder) as entries:
        people = sorted(e.name for e in entries if e.is_dir())
    return {person: n for person in people if (n := len(list_images(folder / person)))}


@dataclass
class LFWPair:
    first: tuple[str, int]
    second: tuple[str, int]
    same: bool
    fold: int
    line: int


def read_lfw_pairs(path: Path) -> list[LFWPair]:
    """Every pair of an LFW pair file (``pairs.txt``, ``pairsDevTrain.txt``,
    ``pairsDevTest.txt``)."""
    lines = read_lines(path, "LFW pair file")
    if not lines:
        raise AnnotationError(path, 1, "is empty", "a header '10<TAB>300' or '1100'")
    header = lines[0].split()
    try:
        numbers = [int(v) for v in header]
    except ValueError:
        numbers = []
    if len(numbers) == 1:
        sets, per_class = 1, numbers[0]
    elif len(numbers) == 2:
        sets, per_class = numbers
    else:
        raise AnnotationError(
            path,
            1,
            "is not a pair-file header",
            "'<sets><TAB><pairs per class>' (pairs.txt: 10<TAB>300) or '<pairs per class>' (dev "
            "files)",
            lines[0],
        )
    expected = 1 + sets * 2 * per_class
    body = [(i + 1, line) for i, line in enumerate(lines) if i > 0 and line.strip()]
    if len(body) != expected - 1:
        raise AnnotationError(
            path,
            len(lines),
            f"has {len(body)} pair lines but its header announces {sets} x 2 x {per_class} = "
            f"{expected - 1}",
            PAIR_SYNTAX,
        )
    pairs = []
    for position, (line_no, line) in enumerate(body):
        fold, within = divmod(position, 2 * per_class)
        same = within < per_class
        fields = line.split()
        try:
            if same:
                if len(fields) != 3:
                    raise ValueError
                pair = LFWPair(
                    (fields[0], int(fields[1])), (fields[0], int(fields[2])), True, fold, line_no
                )
            else:
                if len(fields) != 4:
                    raise ValueError
                pair = LFWPair(
                    (fields[0], int(fields[1])), (fields[2], int(fields[3])), False, fold, line_no
                )
        except ValueError:
            kind = (
                "matched 'Name<TAB>i<TAB>j'" if same else "mismatched 'Name1<TAB>i<TAB>Name2<TAB>j'"
            )
            raise AnnotationError(
                path,
                line_no,
                f"should be a {kind} pair (line {within + 1} of set {fold + 1})",
                PAIR_SYNTAX,
                line,
            ) from None
        if pair.first[1] < 1 or pair.second[1] < 1:
            raise AnnotationError(path, line_no, "has a picture number below 1", PAIR_SYNTAX, line)
        pairs.append(pair)
    return pairs


def find_pair_file(root: Path, name: str = "pairs.txt") -> Path:
    for candidate in (root / name, root.parent / name, root / "lfw" / name):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"LFW pair file {name!r} not found in {str(root)!r} (nor beside or inside its lfw folder)."
    )


@dataclass
class FacePairs:
    """Verification pairs: two crops each, same person or not, and the fold of each pair."""

    first: torch.Tensor  # uint8 (P, 3, S, S)
    second: torch.Tensor
    same: torch.Tensor  # bool (P,)
    fold: torch.Tensor  # int64 (P,)
    names: list[tuple[str, str]]

    def __len__(self) -> int:
        return int(self.same.shape[0])


def select_lfw(config: LFWConfig) -> tuple[Path, list[str], dict[str, list[Path]], dict[str, int]]:
    folder = people_folder(config.root, config.images_folder)
    counts = count_pictures(folder)
    eligible = sorted(
        (-n, person) for person, n in counts.items() if n >= config.min_images_per_identity
    )
    if config.n_identities is not None:
        if len(eligible) < config.n_identities:
            raise DataError(
                f"LFW: only {len(eligible)} people have at least {config.min_images_per_identity} "
                f"pictures, "
                f"{config.n_identities} requested. Lower n_identities or min_images_per_identity."
            )
        eligible = eligible[: config.n_identities]
    if len(eligible) < 2:
        raise DataError(
            f"LFW: {len(eligible)} people have at least {config.min_images_per_identity} pictures "
            f"under {str(folder)!r}; at least 2 are needed."
        )
    people = sorted(person for _, person in eligible)
    splits: dict[str, list[Path]] = {split: [] for split in SPLITS}
    for person in people:
        files = list_images(folder / person)
        divided = split_per_identity(
            files,
            [f.name for f in files],
            config.test_per_identity,
            config.val_per_identity,
            config.max_train_per_identity,
            config.seed,
            DATASET,
        )
        for split, chosen in divided.items():
            splits[split].extend(chosen)
    return folder, people, splits, counts


@register_dataset(DATASET)
class LFWAdapter(FolderAdapter):
    """LFW (Labeled Faces in the Wild): identities for face-ID attacks, and the verification pairs.

    The layout is that of the published ``lfw.tgz`` and pair files. ``ROOT`` may also be the
    ``lfw`` folder itself (pair files then beside it or inside it); the deep-funneled
    (``lfw-deepfunneled``) and funneled (``lfw_funneled``) copies are found too.

    Pair files: a header ``<sets>\\t<n>`` (``pairs.txt``: ``10\\t300``) or ``<n>`` (the dev files),
    then per set ``n`` matched lines ``Name\\ti\\tj`` and ``n`` mismatched lines
    ``Name1\\ti\\tName2\\tj`` (i, j: 1-based picture numbers, file ``Name/Name_%04d.jpg``).

    Identities: people with at least ``min_images_per_identity`` pictures (20 by default, the
    usual 62-person LFW identification subset), the ``n_identities`` with most pictures when set
    (ties by name); per person ``test_per_identity`` test and ``val_per_identity`` val pictures,
    the rest train, in a seeded hash order. Crops: the central ``center_crop_px`` (150) pixels of
    the 250x250 pictures, where LFW's Viola-Jones detections were centred (``null``: the whole
    picture), resized to ``image_size``. :meth:`pairs` (or :func:`load_lfw_pairs`) reads a pair
    file's pictures.
    """

    Config = LFWConfig
    layout = LAYOUT
    config: LFWConfig

    def _request(self, folder: Path, name: str, number: int) -> ImageRequest:
        path = picture_path(folder, name, number)
        return ImageRequest(path, center_crop_px=self.config.center_crop_px)

    def pairs(
        self, pairs_file: str = "pairs.txt", cache_dir: str | Path | None = None
    ) -> FacePairs:
        """The pictures of an LFW pair file, cropped and resized as the identities are."""
        config = self.config
        folder = people_folder(config.root, config.images_folder)
        pairs = read_lfw_pairs(find_pair_file(config.root, pairs_file))
        loaded = []
        for side in ("first", "second"):
            named = [p.first if side == "first" else p.second for p in pairs]
            requests = [self._request(folder, *picture) for picture in named]
            require_files(
                [r.path for r in requests], f"LFW pictures named in {pairs_file}", folder, DATASET
            )
            loaded.append(
                load_images(
                    requests,
                    size=config.image_size,
                    mode="stretch",
                    workers=config.workers,
                    cache_dir=self.cache_root(cache_dir),
                    max_pixels=config.max_image_pixels,
                    namespace=f"{DATASET}-pairs-{side}",
                )
            )
        return FacePairs(
            loaded[0].images,
            loaded[1].images,
            torch.tensor([p.same for p in pairs]),
            torch.tensor([p.fold for p in pairs], dtype=torch.long),
            [(p.first[0], p.second[0]) for p in pairs],
        )

    def load(self, cache_dir: str | Path | None = None) -> BenchmarkData:
        """LFW identities (people with ≥ 20 pictures by default), central crops; pairs via
        :meth:`pairs`."""
        config = self.config
        _, people, splits, _ = select_lfw(config)
        label_of = {person: i for i, person in enumerate(people)}
        parts, digests = {}, {}
        for split in SPLITS:
            files = splits[split]
            parts[split], digests[split] = load_labeled_split(
                [ImageRequest(f, center_crop_px=config.center_crop_px) for f in files],
                [label_of[f.parent.name] for f in files],
                list(people),
                size=config.image_size,
                mode="stretch",
                workers=config.workers,
                cache_dir=self.cache_root(cache_dir),
                max_pixels=config.max_image_pixels,
                namespace=f"{DATASET}-{split}",
            )
        identities = LabeledSplits(**parts)
        description = (
            f"LFW: {len(people)} people with ≥ {config.min_images_per_identity} pictures, "
            f"{split_sizes(identities)} crops (train/val/test), "
            f"central {config.center_crop_px or 250} px resized to "
            f"{config.image_size}x{config.image_size}."
        )
        return fingerprinted(DATASET, description, identities=(identities, digests))

    def check(self) -> CheckReport:
        """People and pictures, the identity splits, the pair files and any picture they name
        that is missing."""
        config = self.config
        report = self.report()
        folder, people, splits, counts = select_lfw(config)
        report.found.append(
            f"{folder.name}/ ({len(counts)} people, {sum(counts.values())} pictures)"
        )
        for split in SPLITS:
            report.counts[split] = {"images": len(splits[split]), "identities": len(people)}
        checked: list[Path] = []
        for name in ("pairs.txt", "pairsDevTrain.txt", "pairsDevTest.txt"):
            try:
                pair_path = find_pair_file(config.root, name)
            except DataError:
                continue
            pairs = read_lfw_pairs(pair_path)
            sets = len({p.fold for p in pairs})
            report.found.append(f"{name} ({len(pairs)} pairs, {sets} sets)")
            matched = sum(p.same for p in pairs)
            report.counts[name] = {
                "images": 2 * len(pairs),
                "pairs": len(pairs),
                "matched": matched,
            }
            for p in pairs:
                checked += [picture_path(folder, *p.first), picture_path(folder, *p.second)]
        checked = sorted(set(checked))
        report.check_files(checked)
        report.checked_files += sum(len(v) for v in splits.values())
        return report


def load_lfw_pairs(
    path: str | Path,
    pairs_file: str = "pairs.txt",
    cache_dir: str | Path | None = None,
    **options: Any,
) -> FacePairs:
    """The pictures of an LFW pair file under ``path``, cropped and resized as the identities
    are (``options``: any :class:`LFWConfig` field)."""
    return LFWAdapter.from_options({**options, "path": path}).pairs(pairs_file, cache_dir)
