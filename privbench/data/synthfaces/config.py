"""What the synthfaces data depends on: its config, the presets, the generator version."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from privbench.api.config import ComponentConfig, validate_config
from privbench.api.errors import ConfigError
from privbench.data.containers import SPLITS

#: Bumped whenever the generator's output changes for a given config (enters the cache key).
GENERATOR_VERSION = "1"


class SynthFacesConfig(ComponentConfig):
    """Everything the generated data depends on (its hash, with the generator version, keys the
    cache)."""

    n_identities: int = Field(40, ge=2, le=2000, description="number of synthetic identities")
    identities_per_group: int = Field(
        4,
        ge=1,
        le=12,
        description="identities per look-alike group (shared skin, hair, head shape, beard)",
    )
    faces_per_identity_train: int = Field(
        60, ge=1, le=2000, description="face crops per identity, train split"
    )
    faces_per_identity_val: int = Field(
        10, ge=1, le=2000, description="face crops per identity, validation split"
    )
    faces_per_identity_test: int = Field(
        15, ge=1, le=2000, description="face crops per identity, test split"
    )
    nonfaces_train: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="non-face crops in the train split (default: as many as face crops)",
    )
    nonfaces_val: int | None = Field(
        None, ge=1, le=1_000_000, description="non-face crops, validation split"
    )
    nonfaces_test: int | None = Field(
        None, ge=1, le=1_000_000, description="non-face crops, test split"
    )
    hard_negative_fraction: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="share of non-face crops that are round skin-coloured blobs",
    )
    scenes_train: int = Field(300, ge=0, le=1_000_000, description="scenes in the train split")
    scenes_val: int = Field(50, ge=0, le=1_000_000, description="scenes in the validation split")
    scenes_test: int = Field(100, ge=0, le=1_000_000, description="scenes in the test split")
    max_faces_per_scene: int = Field(4, ge=0, le=8, description="faces per scene: 0 to this")
    max_objects_per_scene: int = Field(3, ge=0, le=6, description="objects per scene: 0 to this")
    captions_per_scene: int = Field(5, ge=1, le=5, description="reference captions per scene")
    crop_size_px: int = Field(
        64, ge=64, le=256, description="side of the face / non-face crops (CAnOPIC: 64)"
    )
    scene_size_px: int = Field(128, ge=64, le=512, description="side of the scenes")
    noise_std: float = Field(
        0.02, ge=0.0, le=0.2, description="mean sensor noise standard deviation (intensity)"
    )
    occlusion_probability: float = Field(
        0.06, ge=0.0, le=1.0, description="chance that a face crop is partly occluded"
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, description="generator seed")

    @model_validator(mode="after")
    def _group_fits(self) -> SynthFacesConfig:
        if self.identities_per_group > self.n_identities:
            raise ValueError(
                f"identities_per_group ({self.identities_per_group}) cannot exceed n_identities "
                f"({self.n_identities})"
            )
        return self

    def faces_per_identity(self, split: str) -> int:
        return getattr(self, f"faces_per_identity_{split}")

    def nonfaces(self, split: str) -> int:
        value = getattr(self, f"nonfaces_{split}")
        return self.n_identities * self.faces_per_identity(split) if value is None else value

    def scenes(self, split: str) -> int:
        return getattr(self, f"scenes_{split}")


SYNTHFACES_PRESETS: dict[str, dict[str, Any]] = {
    # A few seconds: used by unit tests and `privbench show`.
    "tiny": {
        "n_identities": 6,
        "identities_per_group": 3,
        "faces_per_identity_train": 6,
        "faces_per_identity_val": 2,
        "faces_per_identity_test": 3,
        "scenes_train": 12,
        "scenes_val": 4,
        "scenes_test": 6,
    },
    # The default benchmark: under a minute to generate on 2 CPU cores.
    "quick": {
        "n_identities": 40,
        "identities_per_group": 4,
        "faces_per_identity_train": 60,
        "faces_per_identity_val": 10,
        "faces_per_identity_test": 15,
        "scenes_train": 300,
        "scenes_val": 50,
        "scenes_test": 100,
    },
    # CAnOPIC's scale: 100 identities, 30 validation and 30 test crops each.
    "standard": {
        "n_identities": 100,
        "identities_per_group": 4,
        "faces_per_identity_train": 80,
        "faces_per_identity_val": 30,
        "faces_per_identity_test": 30,
        "scenes_train": 2000,
        "scenes_val": 250,
        "scenes_test": 500,
    },
}


def synthfaces_config(preset: str = "quick", seed: int = 0, **overrides: Any) -> SynthFacesConfig:
    """The validated config of ``preset`` with ``seed`` and ``overrides`` applied."""
    if preset not in SYNTHFACES_PRESETS:
        raise ConfigError(
            f"Unknown synthfaces preset {preset!r}; accepted presets: "
            f"{', '.join(sorted(SYNTHFACES_PRESETS))}."
        )
    values = {**SYNTHFACES_PRESETS[preset], "seed": seed, **overrides}
    return validate_config(
        SynthFacesConfig, values, what=f"dataset 'synthfaces' (preset {preset!r})"
    )


def describe_config(config: SynthFacesConfig, preset: str) -> str:
    faces = {split: config.n_identities * config.faces_per_identity(split) for split in SPLITS}
    return (
        f"synthfaces ({preset}, seed {config.seed}, generator v{GENERATOR_VERSION}): "
        f"{config.n_identities} synthetic identities in look-alike groups of "
        f"{config.identities_per_group}; "
        f"{config.crop_size_px}x{config.crop_size_px} face crops per split "
        f"{'/'.join(str(faces[s]) for s in SPLITS)} (train/val/test), as many non-face crops "
        f"(objects, textures, {config.hard_negative_fraction:.0%} skin-coloured round blobs); "
        f"{config.scene_size_px}x{config.scene_size_px} scenes "
        f"{'/'.join(str(config.scenes(s)) for s in SPLITS)} "
        f"with 0-{config.max_faces_per_scene} faces, 0-{config.max_objects_per_scene} objects, "
        f"COCO boxes and "
        f"{config.captions_per_scene} captions each."
    )
