"""The ``synthfaces`` dataset: generated on first use, then loaded from its cache folder."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from privbench.api.adapter import DatasetAdapter, dataset_cache_root
from privbench.api.arrays import open_array, write_array
from privbench.api.cache import load_verified
from privbench.api.config import stable_hash
from privbench.api.errors import DataError
from privbench.api.registry import register_dataset
from privbench.data.containers import (
    SPLITS,
    BenchmarkData,
    LabeledImages,
    LabeledSplits,
    Scenes,
    SceneSplits,
)
from privbench.data.synthfaces.config import (
    GENERATOR_VERSION,
    SynthFacesConfig,
    describe_config,
    synthfaces_config,
)
from privbench.data.synthfaces.files import (
    TENSOR_FORMAT,
    read_synthfaces_folder,
    write_json,
    write_synthfaces,
)
from privbench.data.synthfaces.generate import generate_synthfaces

#: Counters of what :func:`load_or_generate` did in this process (tests check cache reuse with
#: them).
STATS = {"generated": 0, "read_from_files": 0, "loaded_tensors": 0}

TENSOR_FILE = "tensors.pt"
MANIFEST_FILE = "manifest.json"


def dataset_key(config: SynthFacesConfig) -> str:
    """Cache key: hash of the generator config and the generator version."""
    return stable_hash(
        {
            "dataset": "synthfaces",
            "generator": GENERATOR_VERSION,
            "config": config.model_dump(mode="json"),
        }
    )


def dataset_folder(config: SynthFacesConfig, cache_dir: str | Path | None = None) -> Path:
    """Where ``config``'s data lives: ``<cache_dir>/synthfaces-<key>`` (default cache:
    ``$PRIVBENCH_CACHE/datasets``)."""
    return dataset_cache_root(cache_dir) / f"synthfaces-{dataset_key(config)}"


def _payload_to_data(payload: dict[str, Any], name: str, description: str) -> BenchmarkData:
    identities = {}
    face_vs_noface = {}
    scenes = {}
    stores = payload["stores"]
    for split in SPLITS:
        faces = payload["identities"][split]
        identities[split] = LabeledImages(
            faces["images"],
            faces["labels"].long(),
            list(payload["class_names"]),
            store=stores.get(("identities", split)),
        )
        nonfaces = payload["nonfaces"][split]["images"]
        face_vs_noface[split] = LabeledImages(
            payload["face_vs_noface"][split]["images"],
            torch.cat(
                [
                    torch.ones(len(faces["labels"]), dtype=torch.long),
                    torch.zeros(nonfaces.shape[0], dtype=torch.long),
                ]
            ),
            ["no-face", "face"],
            store=stores.get(("face_vs_noface", split)),
        )
        s = payload["scenes"][split]
        scenes[split] = Scenes(
            images=s["images"],
            boxes=list(s["boxes"]),
            box_labels=list(s["box_labels"]),
            captions=[list(c) for c in s["captions"]],
            categories=list(payload["categories"]),
            image_ids=list(s["image_ids"]),
            store=stores.get(("scenes", split)),
        )
    return BenchmarkData(
        name=name,
        fingerprint=payload["fingerprint"],
        identities=LabeledSplits(**identities),
        face_vs_noface=LabeledSplits(**face_vs_noface),
        scenes=SceneSplits(**scenes),
        description=description,
    )


def _expected_counts(config: SynthFacesConfig) -> dict[str, dict[str, int]]:
    return {
        split: {
            "faces": config.n_identities * config.faces_per_identity(split),
            "nonfaces": config.nonfaces(split),
            "scenes": config.scenes(split),
        }
        for split in SPLITS
    }


def _payload_matches(payload: dict[str, Any], config: SynthFacesConfig) -> bool:
    try:
        if payload.get("format") != TENSOR_FORMAT:
            return False
        for split, counts in _expected_counts(config).items():
            if payload["identities"][split]["images"].shape[0] != counts["faces"]:
                return False
            if payload["nonfaces"][split]["images"].shape[0] != counts["nonfaces"]:
                return False
            if payload["scenes"][split]["images"].shape[0] != counts["scenes"]:
                return False
        return True
    except (KeyError, AttributeError, TypeError):
        return False


#: The image stores of a payload: (payload part, split) → file name under ``STORE_FOLDER``.
STORE_FOLDER = "stores"


def _store_name(part: str, split: str) -> str:
    return f"{part}-{split}.npy"


def _load_tensors(folder: Path) -> dict[str, Any] | None:
    """The cached payload of ``folder``: the small tensors from ``tensors.pt``, every split's
    images memory-mapped from its image store (opened, not read). None when anything is
    missing or damaged: then it is rebuilt from the files, never trusted."""
    path = folder / TENSOR_FILE
    if not path.is_file():
        return None
    try:
        payload = load_verified(path)
        if payload is None:
            return None
        payload["stores"] = {}
        for part in ("identities", "nonfaces", "scenes", "face_vs_noface"):
            for split in SPLITS:
                store = open_array(folder / STORE_FOLDER / _store_name(part, split))
                if store is None:
                    return None
                payload.setdefault(part, {}).setdefault(split, {})["images"] = store.tensor()
                payload["stores"][(part, split)] = store
        return payload
    # A corrupt tensor file is rebuilt from the files, never trusted.
    except Exception:  # noqa: BLE001
        return None


def _save_tensors(payload: dict[str, Any], folder: Path) -> None:
    """Write every split's images to its image store (face vs no-face: faces then non-faces)
    and the rest of the payload to ``tensors.pt``."""
    from privbench.api.cache import atomic_torch_save

    small: dict[str, Any] = {key: value for key, value in payload.items() if key != "stores"}
    for split in SPLITS:
        images = {
            "identities": payload["identities"][split]["images"],
            "nonfaces": payload["nonfaces"][split]["images"],
            "scenes": payload["scenes"][split]["images"],
        }
        images["face_vs_noface"] = torch.cat([images["identities"], images["nonfaces"]])
        for part, values in images.items():
            write_array(folder / STORE_FOLDER / _store_name(part, split), values)
    for part in ("identities", "nonfaces", "scenes"):
        small[part] = {
            split: {key: value for key, value in entry.items() if key != "images"}
            for split, entry in payload[part].items()
        }
    atomic_torch_save(small, folder / TENSOR_FILE)


def load_or_generate(
    config: SynthFacesConfig, cache_dir: str | Path | None = None
) -> tuple[dict[str, Any], Path]:
    """The tensor payload of ``config``: from the tensor cache, else from the files, else generated.

    Generation writes into a private temporary folder that is renamed into place only when
    complete, so an interrupted or concurrent run never leaves (or reads) half-written data.
    """
    folder = dataset_folder(config, cache_dir)
    manifest = folder / MANIFEST_FILE
    if manifest.is_file():
        payload = _load_tensors(folder)
        if payload is not None and _payload_matches(payload, config):
            STATS["loaded_tensors"] += 1
            return payload, folder
        try:
            payload = read_synthfaces_folder(folder)
        except (DataError, OSError, ValueError, KeyError):
            payload = None
        if payload is not None and _payload_matches(payload, config):
            STATS["read_from_files"] += 1
            _save_tensors(payload, folder)
            return _reopened(folder), folder
        shutil.rmtree(folder, ignore_errors=True)  # incomplete or damaged: generate again

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        started = time.perf_counter()
        splits, traits = generate_synthfaces(config)
        generated_s = time.perf_counter() - started
        write_synthfaces(splits, traits, config, staging)
        written_s = time.perf_counter() - started - generated_s
        payload = read_synthfaces_folder(staging)
        _save_tensors(payload, staging)
        write_json(
            staging / MANIFEST_FILE,
            {
                "dataset": "synthfaces",
                "generator_version": GENERATOR_VERSION,
                "key": dataset_key(config),
                "config": config.model_dump(mode="json"),
                "fingerprint": payload["fingerprint"],
                "counts": _expected_counts(config),
                "generation_seconds": round(generated_s, 3),
                "writing_seconds": round(written_s, 3),
                "torch": torch.__version__,
            },
        )
        STATS["generated"] += 1
        try:
            os.replace(staging, folder)
        except OSError:  # another process finished first: use its copy (identical content)
            shutil.rmtree(staging, ignore_errors=True)
            existing = _load_tensors(folder)
            if existing is not None and _payload_matches(existing, config):
                return existing, folder
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _reopened(folder), folder


def _reopened(folder: Path) -> dict[str, Any]:
    """The payload just written to ``folder``, read back through its image stores."""
    payload = _load_tensors(folder)
    if payload is None:
        raise DataError(
            f"synthfaces: the data just written to {str(folder)!r} cannot be read back."
        )
    return payload


@register_dataset("synthfaces")
class SynthFacesAdapter(DatasetAdapter):
    """The embedded synthfaces benchmark data (generated on first use, then loaded from the cache).

    Options: ``preset`` (``tiny``, ``quick`` (default) or ``standard``, see
    :data:`~privbench.data.synthfaces.config.SYNTHFACES_PRESETS`), ``seed`` (default 0) and any
    :class:`SynthFacesConfig` field, which overrides the preset's value.
    """

    Config = SynthFacesConfig
    config: SynthFacesConfig

    def __init__(self, config: SynthFacesConfig, preset: str = "quick"):
        super().__init__(config)
        self.preset = preset

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> SynthFacesAdapter:
        """The config of ``options["preset"]`` with the seed and the other options applied."""
        overrides = dict(options)
        preset = overrides.pop("preset", "quick")
        seed = overrides.pop("seed", 0)
        return cls(synthfaces_config(preset, seed, **overrides), preset)

    def load(self, cache_dir: str | Path | None = None) -> BenchmarkData:
        """The data of this config; ``cache_dir``: the cache root (default:
        ``$PRIVBENCH_CACHE/datasets`` or ``~/.cache/privbench/datasets``)."""
        payload, _ = load_or_generate(self.config, cache_dir)
        description = describe_config(self.config, self.preset)
        return _payload_to_data(payload, f"synthfaces-{self.preset}", description)


def build_synthfaces(
    preset: str = "quick", seed: int = 0, cache_dir: str | Path | None = None, **overrides: Any
) -> BenchmarkData:
    """The embedded synthfaces benchmark data of ``preset`` (see :class:`SynthFacesAdapter`)."""
    return SynthFacesAdapter.from_options({"preset": preset, "seed": seed, **overrides}).load(
        cache_dir
    )
