"""``synthfaces``: the embedded benchmark dataset, generated locally and deterministically.

Real face and caption datasets cannot be downloaded by privbench, so its default benchmark is
generated from a seed: face crops of synthetic identities (the face-ID attack and the face vs
no-face task of CAnOPIC, §4), non-face crops of objects, textures and hard negatives, and scenes
with faces, objects, boxes and reference captions (detection and 2PSC-style captioning).

Design (why it measures what it should):

- **Identities come in look-alike groups.** Each group shares the coarse traits (skin tone and
  hair colour from small palettes, hair style, head shape, beard); its members differ only in
  fine ones (eye size, shape, spacing, tilt and iris colour, eyebrows, nose, mouth, lips, ears,
  glasses, mole, moustache), and every two members of a group differ in at least
  :data:`MIN_FINE_DIFFERENCES` of them. A sharp camera therefore identifies everyone, while a
  blurred one keeps "there is a face" (a skin-coloured oval, hair on top, shoulders below) and
  at best the group, not the person.
- **Per-image nuisances** (roll ±15°, scale, translation, yaw, expression, gaze, lighting
  direction and level, clothes, background clutter, occasional occlusion, sensor noise) make
  identification a learning problem rather than template matching.
- **Real formats on disk.** Faces are written as a VGGFace2-style ImageFolder
  (``faces/<split>/n000001/0001_01.png``), non-faces as an ImageFolder by category, scenes as
  COCO instances and captions JSON (``scenes/annotations/{instances,captions}_<split>.json``,
  images in ``scenes/<split>/``), and read back through the same readers that read real data.
- **Cached and fingerprinted.** Everything lives under ``<cache>/synthfaces-<key>/`` where the
  key hashes the generator config and :data:`GENERATOR_VERSION`; a tensor file next to it makes
  the second load take about a second. The fingerprint hashes the tensors read back from disk.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import Field, model_validator

from privbench.api.config import ComponentConfig, stable_hash, validate_config
from privbench.data.containers import SPLITS, BenchmarkData, LabeledImages, LabeledSplits, Scenes, SceneSplits
from privbench.data.synthfaces import render
from privbench.api.errors import ConfigError, DataError
from privbench.api.registry import register_dataset

#: Bumped whenever the generator's output changes for a given config (enters the cache key).
GENERATOR_VERSION = "1"
#: Every two identities of a look-alike group differ in at least this many fine traits.
MIN_FINE_DIFFERENCES = 8
#: Images rendered per batch: small enough for the working tensors to stay in the CPU cache
#: (elementwise rendering is memory-bound). The random draws depend on it, so it is fixed.
RENDER_CHUNK = 64
SCENE_CHUNK = 16
SPRITE_SIZE = 64
SPRITE_HEAD_RADIUS = 14.0
SPRITE_HEAD_CENTRE = (32.0, 22.0)
NONFACE_CATEGORIES = render.OBJECT_KINDS + ("texture", render.HARD_NEGATIVE)
SCENE_CATEGORIES = ("face",) + render.OBJECT_KINDS
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight")

#: Counters of what :func:`build_synthfaces` did in this process (tests check cache reuse with them).
STATS = {"generated": 0, "read_from_files": 0, "loaded_tensors": 0}


class SynthFacesConfig(ComponentConfig):
    """Everything the generated data depends on (its hash, with the generator version, keys the cache)."""

    n_identities: int = Field(40, ge=2, le=2000, description="number of synthetic identities")
    identities_per_group: int = Field(
        4, ge=1, le=12, description="identities per look-alike group (shared skin, hair, head shape, beard)"
    )
    faces_per_identity_train: int = Field(60, ge=1, le=2000, description="face crops per identity, train split")
    faces_per_identity_val: int = Field(10, ge=1, le=2000, description="face crops per identity, validation split")
    faces_per_identity_test: int = Field(15, ge=1, le=2000, description="face crops per identity, test split")
    nonfaces_train: int | None = Field(
        None, ge=1, le=1_000_000, description="non-face crops in the train split (default: as many as face crops)"
    )
    nonfaces_val: int | None = Field(None, ge=1, le=1_000_000, description="non-face crops, validation split")
    nonfaces_test: int | None = Field(None, ge=1, le=1_000_000, description="non-face crops, test split")
    hard_negative_fraction: float = Field(
        0.25, ge=0.0, le=1.0, description="share of non-face crops that are round skin-coloured blobs"
    )
    scenes_train: int = Field(300, ge=0, le=1_000_000, description="scenes in the train split")
    scenes_val: int = Field(50, ge=0, le=1_000_000, description="scenes in the validation split")
    scenes_test: int = Field(100, ge=0, le=1_000_000, description="scenes in the test split")
    max_faces_per_scene: int = Field(4, ge=0, le=8, description="faces per scene: 0 to this")
    max_objects_per_scene: int = Field(3, ge=0, le=6, description="objects per scene: 0 to this")
    captions_per_scene: int = Field(5, ge=1, le=5, description="reference captions per scene")
    crop_size_px: int = Field(64, ge=64, le=256, description="side of the face / non-face crops (CAnOPIC: 64)")
    scene_size_px: int = Field(128, ge=64, le=512, description="side of the scenes")
    noise_std: float = Field(0.02, ge=0.0, le=0.2, description="mean sensor noise standard deviation (intensity)")
    occlusion_probability: float = Field(0.06, ge=0.0, le=1.0, description="chance that a face crop is partly occluded")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="generator seed")

    @model_validator(mode="after")
    def _group_fits(self) -> "SynthFacesConfig":
        if self.identities_per_group > self.n_identities:
            raise ValueError(
                f"identities_per_group ({self.identities_per_group}) cannot exceed n_identities ({self.n_identities})"
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
            f"Unknown synthfaces preset {preset!r}; accepted presets: {', '.join(sorted(SYNTHFACES_PRESETS))}."
        )
    values = {**SYNTHFACES_PRESETS[preset], "seed": seed, **overrides}
    return validate_config(SynthFacesConfig, values, what=f"dataset 'synthfaces' (preset {preset!r})")


# -- randomness ----------------------------------------------------------------------------------
def _generator(seed: int, *labels: Any) -> torch.Generator:
    """An independent torch generator for one stage (so changing one part leaves the others alone)."""
    digest = hashlib.sha256(json.dumps([seed, *labels]).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def _python_rng(seed: int, *labels: Any) -> random.Random:
    digest = hashlib.sha256(json.dumps(["py", seed, *labels]).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def _uniform(generator: torch.Generator, shape, low: float, high: float) -> torch.Tensor:
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return low + (high - low) * torch.rand(shape, generator=generator)


def _choice(generator: torch.Generator, count: int, probabilities) -> torch.Tensor:
    weights = torch.as_tensor(probabilities, dtype=torch.float64)
    return torch.multinomial(weights, count, replacement=True, generator=generator)


# -- identities --------------------------------------------------------------------------------
#: Fine traits (three levels each); members of a group differ in the level of several of them.
FINE_TRAIT_LEVELS: dict[str, tuple[float, float, float]] = {
    "eye_spacing": (0.28, 0.35, 0.42),
    "eye_width": (0.11, 0.145, 0.18),
    "eye_aspect": (0.36, 0.55, 0.74),
    "eye_tilt": (-0.12, 0.0, 0.14),
    "eye_height": (-0.14, -0.05, 0.04),
    "brow_thickness": (0.025, 0.055, 0.085),
    "brow_slant": (-0.35, 0.0, 0.35),
    "brow_arch": (0.0, 0.06, 0.12),
    "brow_gap": (-0.02, 0.02, 0.06),
    "nose_length": (0.26, 0.37, 0.48),
    "nose_width": (0.08, 0.14, 0.20),
    "mouth_gap": (0.13, 0.17, 0.21),
    "mouth_width": (0.16, 0.25, 0.34),
    "lip_thickness": (0.03, 0.06, 0.09),
    "ear_size": (0.75, 1.0, 1.3),
}
#: Categorical fine traits: name → probabilities of each value.
FINE_TRAIT_CHOICES: dict[str, tuple[float, ...]] = {
    "iris_index": tuple([1 / len(render.IRIS_COLOURS)] * len(render.IRIS_COLOURS)),
    "glasses": (0.55, 0.25, 0.20),  # none, round, rectangular
    "mole_position": (0.5, 0.1, 0.1, 0.1, 0.1, 0.1),  # none or one of five places
    "moustache": (0.8, 0.2),
    "frame_index": tuple([1 / len(render.FRAME_COLOURS)] * len(render.FRAME_COLOURS)),
}
MOLE_POSITIONS = ((0.0, 0.0), (-0.42, 0.28), (0.44, 0.22), (0.22, -0.55), (-0.18, 0.8), (0.5, -0.12))
BEARD_PROBABILITIES = (0.6, 0.15, 0.1, 0.15)


def sample_identities(n_identities: int, identities_per_group: int, seed: int) -> dict[str, torch.Tensor]:
    """Latent traits of every identity (one row each): coarse ones shared by the look-alike group,
    fine ones drawn per member so that members differ in ≥ :data:`MIN_FINE_DIFFERENCES` traits."""
    generator = _generator(seed, "identities", n_identities, identities_per_group)
    n_groups = math.ceil(n_identities / identities_per_group)
    group = torch.arange(n_identities) // identities_per_group

    # Coarse traits: distinct (skin, hair colour, hair style) combinations per group, as far as possible.
    n_skin, n_hair, n_style = len(render.SKIN_TONES), len(render.HAIR_COLOURS), len(render.HAIR_STYLES)
    combos = torch.randperm(n_skin * n_hair * n_style, generator=generator)
    combos = combos.repeat(math.ceil(n_groups / combos.numel()))[:n_groups]
    group_skin, rest = combos // (n_hair * n_style), combos % (n_hair * n_style)
    group_hair, group_style = rest // n_style, rest % n_style
    group_head_width = _uniform(generator, n_groups, 0.72, 0.84)
    group_jaw = _uniform(generator, n_groups, 0.0, 0.25)
    group_beard = _choice(generator, n_groups, BEARD_PROBABILITIES)

    # Fine traits: level codes with a minimum Hamming distance inside each group.
    names = list(FINE_TRAIT_LEVELS) + list(FINE_TRAIT_CHOICES)
    codes = torch.zeros(n_identities, len(names), dtype=torch.long)
    for g in range(n_groups):
        members = (group == g).nonzero().flatten().tolist()
        accepted: list[torch.Tensor] = []
        for _ in members:
            for attempt in range(200):
                code = torch.cat(
                    [torch.randint(0, 3, (len(FINE_TRAIT_LEVELS),), generator=generator)]
                    + [_choice(generator, 1, p) for p in FINE_TRAIT_CHOICES.values()]
                )
                if all(int((code != other).sum()) >= MIN_FINE_DIFFERENCES for other in accepted):
                    break
            accepted.append(code)
        codes[members] = torch.stack(accepted)

    traits: dict[str, torch.Tensor] = {"group": group}
    for column, (name, levels) in enumerate(FINE_TRAIT_LEVELS.items()):
        level_values = torch.tensor(levels)
        gap = float(level_values[1] - level_values[0])
        traits[name] = level_values[codes[:, column]] + _uniform(generator, n_identities, -0.2, 0.2) * gap
    offset = len(FINE_TRAIT_LEVELS)
    for column, name in enumerate(FINE_TRAIT_CHOICES, start=offset):
        traits[name] = codes[:, column]

    traits["skin_index"] = group_skin[group]
    traits["hair_colour_index"] = group_hair[group]
    traits["hair_style"] = group_style[group]
    traits["head_width"] = group_head_width[group]
    traits["jaw_taper"] = group_jaw[group]
    traits["beard"] = group_beard[group]
    traits["skin"] = render.SKIN_TONES[traits["skin_index"]]
    traits["hair_colour"] = render.HAIR_TABLE[traits["hair_colour_index"]]
    traits["iris"] = render.IRIS_TABLE[traits["iris_index"]]
    traits["frame"] = render.FRAME_TABLE[traits["frame_index"]]
    # A moustache only where the group has no full beard or goatee.
    traits["moustache"] = (traits["moustache"].bool() & (traits["beard"] % 3 == 0)).float()
    mole = torch.tensor(MOLE_POSITIONS)[traits["mole_position"]]
    traits["mole"] = (traits["mole_position"] > 0).float()
    traits["mole_u"], traits["mole_v"] = mole[:, 0], mole[:, 1]
    traits["lip_tint"] = _uniform(generator, n_identities, 0.82, 1.0)
    return traits


def _gather(traits: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    return {key: value[index] for key, value in traits.items()}


# -- nuisances --------------------------------------------------------------------------------
#: Per-image nuisance ranges of face crops (uniform between the bounds unless noted).
NUISANCE_RANGES: dict[str, tuple[float, float]] = {
    "roll": (-math.radians(15), math.radians(15)),  # in-plane rotation (radians)
    "yaw": (-0.4, 0.4),  # left / right turn: shifts the inner features by up to 0.26·yaw head units
    "smile": (-0.3, 1.0),  # mouth-corner lift
    "mouth_open": (0.2, 1.0),  # when open (30 % of images)
    "eye_open": (0.85, 1.05),  # eyelid opening; closed eyes (10 %): 0.05-0.2
    "gaze": (-1.0, 1.0),
    "brow_raise": (-0.015, 0.03),
    "light_azimuth": (-1.0, 1.0),  # radians, 0 = frontal
    "light_elevation": (-0.5, 0.7),
    "ambient": (0.45, 0.65),  # share of ambient light in the shading
    "exposure": (0.78, 1.1),  # global light level
    "crop_radius": (0.28, 0.32),  # head half-height / crop side
    "crop_shift_x": (-0.06, 0.06),  # head centre offset / crop side
    "crop_shift_y": (-0.05, 0.05),
}
MOUTH_OPEN_PROBABILITY = 0.3
EYES_CLOSED_PROBABILITY = 0.1


def _light_directions(azimuth: torch.Tensor, elevation: torch.Tensor) -> torch.Tensor:
    """Unit light directions (x right, y down, z towards the camera) from azimuth and elevation."""
    return torch.stack(
        [torch.sin(azimuth) * torch.cos(elevation), -torch.sin(elevation), torch.cos(azimuth) * torch.cos(elevation)], 1
    )


def sample_poses(count: int, generator: torch.Generator, *, cx, cy, radius) -> dict[str, torch.Tensor]:
    """Per-image nuisances of ``count`` faces (positions and sizes given, in pixels); see :data:`NUISANCE_RANGES`."""
    r = NUISANCE_RANGES

    def draw(name: str) -> torch.Tensor:
        return _uniform(generator, count, *r[name])

    light = _light_directions(draw("light_azimuth"), draw("light_elevation"))
    mouth_open = torch.where(torch.rand(count, generator=generator) < MOUTH_OPEN_PROBABILITY, draw("mouth_open"), torch.zeros(count))
    eye_open = torch.where(
        torch.rand(count, generator=generator) < EYES_CLOSED_PROBABILITY, _uniform(generator, count, 0.05, 0.2), draw("eye_open")
    )
    shirt_index = torch.randint(0, len(render.COLOURS), (count,), generator=generator)
    return {
        "cx": torch.as_tensor(cx, dtype=torch.float32).expand(count).clone(),
        "cy": torch.as_tensor(cy, dtype=torch.float32).expand(count).clone(),
        "radius": torch.as_tensor(radius, dtype=torch.float32).expand(count).clone(),
        "roll": draw("roll"),
        "yaw": draw("yaw"),
        "smile": draw("smile"),
        "mouth_open": mouth_open,
        "eye_open": eye_open,
        "gaze": draw("gaze"),
        "brow_raise": draw("brow_raise"),
        "light": light,
        "ambient": draw("ambient"),
        "shirt": render.COLOUR_TABLE[shirt_index] * _uniform(generator, count, 0.7, 1.0)[:, None],
    }


def _background_params(count: int, generator: torch.Generator, clutter: int = 6) -> dict[str, torch.Tensor]:
    grey = _uniform(generator, (count, 1), 0.15, 0.85)
    return {
        "c1": (0.5 * grey + 0.5 * torch.rand(count, 3, generator=generator)).clamp(0, 1),
        "c2": (0.5 * grey + 0.5 * torch.rand(count, 3, generator=generator)).clamp(0, 1),
        "angle": _uniform(generator, count, 0.0, 2 * math.pi),
        "wave": torch.rand(count, 4, generator=generator),
        "shapes": torch.rand(count, clutter, 10, generator=generator),
    }


def _finish(images: torch.Tensor, generator: torch.Generator, noise_std: float) -> torch.Tensor:
    """Exposure, colour cast and sensor noise, then 8-bit quantization: float (B, 3, H, W) → uint8."""
    count = images.shape[0]
    exposure = _uniform(generator, count, *NUISANCE_RANGES["exposure"])[:, None, None, None]
    cast = 1.0 + _uniform(generator, (count, 3), -0.06, 0.06)[:, :, None, None]
    sigma = noise_std * _uniform(generator, count, 0.5, 1.5)[:, None, None, None]
    noisy = images * exposure * cast + sigma * torch.randn(images.shape, generator=generator)
    return (noisy.clamp(0, 1) * 255).round_().to(torch.uint8)


def _occlude(images: torch.Tensor, pose: dict[str, torch.Tensor], generator: torch.Generator, probability: float) -> torch.Tensor:
    """Occasionally cover part of the face with a coloured bar or blob (a hand, a cup, a scarf)."""
    count, _, height, width = images.shape
    present = (torch.rand(count, generator=generator) < probability).float()
    radius = pose["radius"]
    cx = pose["cx"] + _uniform(generator, count, -0.8, 0.8) * radius
    cy = pose["cy"] + _uniform(generator, count, -0.5, 1.0) * radius
    half_u = _uniform(generator, count, 0.25, 0.55) * radius
    half_v = _uniform(generator, count, 0.2, 0.45) * radius
    angle = _uniform(generator, count, 0, math.pi)
    rounded = torch.rand(count, generator=generator) < 0.5
    colour = torch.where(
        (torch.rand(count, generator=generator) < 0.4)[:, None],
        render.SKIN_TONES[torch.randint(0, len(render.SKIN_TONES), (count,), generator=generator)],
        render.COLOUR_TABLE[torch.randint(0, len(render.COLOURS), (count,), generator=generator)],
    )
    ys, xs = render.pixel_grid(height, width)
    du, dv = render.local_frame(xs, ys, cx, cy, torch.ones(count), angle)
    d = torch.where(
        render.col(rounded),
        render.ellipse_distance(du, dv, render.col(half_u), render.col(half_v)),
        render.box_distance(du, dv, render.col(half_u), render.col(half_v)),
    )
    cover = ((0.5 - d).clamp(0, 1) * render.col(present)).unsqueeze(1)
    return images * (1 - cover) + colour[:, :, None, None] * cover


# -- face and non-face crops ---------------------------------------------------------------------
def render_face_crops(
    traits: dict[str, torch.Tensor], identity: torch.Tensor, config: SynthFacesConfig, generator: torch.Generator
) -> torch.Tensor:
    """Face crops (uint8 ``(N, 3, S, S)``) of the given identities, each with fresh nuisances."""
    size = config.crop_size_px
    count = identity.numel()
    pose = sample_poses(
        count,
        generator,
        cx=size / 2 + _uniform(generator, count, *NUISANCE_RANGES["crop_shift_x"]) * size,
        cy=size * 0.47 + _uniform(generator, count, *NUISANCE_RANGES["crop_shift_y"]) * size,
        radius=_uniform(generator, count, *NUISANCE_RANGES["crop_radius"]) * size,
    )
    people = render.render_people(_gather(traits, identity), pose, size, size)
    images = people.over(render.render_background(_background_params(count, generator), size, size))
    images = _occlude(images, pose, generator, config.occlusion_probability)
    return _finish(images, generator, config.noise_std)


def _object_colours(kind: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Named colour index and RGB of each object (trees: green, or autumn orange / yellow / red)."""
    count = kind.numel()
    colour_index = torch.randint(0, len(render.COLOURS), (count,), generator=generator)
    tree_palette = torch.tensor([render.COLOUR_NAMES.index(n) for n in ("green", "green", "green", "orange", "yellow", "red")])
    tree_colour = tree_palette[torch.randint(0, len(tree_palette), (count,), generator=generator)]
    tree = kind == render.OBJECT_KINDS.index("tree")
    colour_index = torch.where(tree, tree_colour, colour_index)
    rgb = render.COLOUR_TABLE[colour_index] * _uniform(generator, count, 0.85, 1.0)[:, None]
    return colour_index, rgb


def _object_params(kind: torch.Tensor, generator: torch.Generator, *, cx, cy, size) -> dict[str, torch.Tensor]:
    count = kind.numel()
    colour_index, rgb = _object_colours(kind, generator)
    light = _light_directions(_uniform(generator, count, -1.0, 1.0), _uniform(generator, count, -0.2, 0.8))
    blob = kind == len(render.OBJECT_KINDS)
    skin = render.SKIN_TONES[torch.randint(0, len(render.SKIN_TONES), (count,), generator=generator)]
    rgb = torch.where(blob[:, None], skin * _uniform(generator, count, 0.9, 1.05)[:, None], rgb)
    upright = (kind == render.OBJECT_KINDS.index("tree")) | (kind == render.OBJECT_KINDS.index("cup"))
    angle = _uniform(generator, count, -0.18, 0.18) * torch.where(upright, 0.3, 1.0)
    return {
        "kind": kind,
        "colour_index": colour_index,
        "colour": rgb.clamp(0, 1),
        "cx": torch.as_tensor(cx, dtype=torch.float32),
        "cy": torch.as_tensor(cy, dtype=torch.float32),
        "size": torch.as_tensor(size, dtype=torch.float32),
        "angle": angle,
        "light": light,
        "ambient": _uniform(generator, count, 0.35, 0.6),
        "aux": torch.rand(count, 8, generator=generator),
    }


def nonface_categories(count: int, config: SynthFacesConfig, generator: torch.Generator) -> torch.Tensor:
    """Categories (indices into :data:`NONFACE_CATEGORIES`) of a split's non-face crops, shuffled:
    the configured share of hard negatives, a third of the rest textures, the others objects."""
    n_hard = int(round(count * config.hard_negative_fraction))
    rest = count - n_hard
    n_texture = rest // 3
    category = torch.cat(
        [
            torch.randint(0, len(render.OBJECT_KINDS), (rest - n_texture,), generator=generator),
            torch.full((n_texture,), NONFACE_CATEGORIES.index("texture")),
            torch.full((n_hard,), NONFACE_CATEGORIES.index(render.HARD_NEGATIVE)),
        ]
    )
    return category[torch.randperm(count, generator=generator)]


def render_nonface_crops(category: torch.Tensor, config: SynthFacesConfig, generator: torch.Generator) -> torch.Tensor:
    """Non-face crops (uint8 ``(N, 3, S, S)``) of the given categories: objects, textures and the
    hard negatives, over the same cluttered backgrounds, exposure and noise as the faces."""
    size = config.crop_size_px
    count = category.numel()
    texture_id = NONFACE_CATEGORIES.index("texture")
    blob_id = NONFACE_CATEGORIES.index(render.HARD_NEGATIVE)
    object_kind = torch.where(category == blob_id, len(render.OBJECT_KINDS), category.clamp_max(len(render.OBJECT_KINDS) - 1))
    objects = _object_params(
        object_kind,
        generator,
        cx=size / 2 + _uniform(generator, count, -0.08, 0.08) * size,
        cy=size / 2 + _uniform(generator, count, -0.08, 0.08) * size,
        size=torch.where(
            category == blob_id, _uniform(generator, count, 0.6, 0.75) * size, _uniform(generator, count, 0.45, 0.8) * size
        ),
    )
    texture = {
        "kind": torch.randint(0, len(render.TEXTURE_KINDS), (count,), generator=generator),
        "c1": torch.rand(count, 3, generator=generator),
        "c2": torch.rand(count, 3, generator=generator),
        "period": _uniform(generator, count, 4.0, 18.0) * size / 64,
        "angle": _uniform(generator, count, 0, math.pi),
        "noise": torch.rand(count, 1, 8, 8, generator=generator),
    }
    # textures fill the crop or a large patch of it
    full = torch.rand(count, generator=generator) < 0.6
    patch = torch.rand(count, 4, generator=generator)
    images = render.render_background(_background_params(count, generator), size, size)
    is_texture = (category == texture_id)[:, None, None, None]
    if bool(is_texture.any()):
        tex = render.render_textures(texture, size, size)
        ys, xs = render.pixel_grid(size, size)
        d = render.box_distance(
            xs - render.col(patch[:, 0] * size * 0.4 + size * 0.3),
            ys - render.col(patch[:, 1] * size * 0.4 + size * 0.3),
            render.col((0.2 + 0.15 * patch[:, 2]) * size),
            render.col((0.2 + 0.15 * patch[:, 3]) * size),
        )
        inside = torch.where(render.col(full), torch.ones_like(d), (0.5 - d).clamp(0, 1)).unsqueeze(1)
        images = torch.where(is_texture, images * (1 - inside) + tex * inside, images)
    layer = render.render_objects(objects, size, size)
    layer.rgb.mul_(~is_texture)
    layer.alpha.mul_(~is_texture)
    return _finish(layer.over(images), generator, config.noise_std)


# -- scenes ----------------------------------------------------------------------------------------
@dataclass
class SceneItem:
    """One face or object placed in a scene (pixels), with what captions may say about it."""

    category: str  # "face" or an object kind
    box: tuple[float, float, float, float]  # xyxy of what is annotated (head, object)
    extent: tuple[float, float, float, float]  # what is drawn (head + shoulders, object)
    attributes: dict[str, Any]


def _intersects(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _inside(box, size: int, margin: float = 1.0) -> bool:
    return box[0] >= margin and box[1] >= margin and box[2] <= size - margin and box[3] <= size - margin


def layout_scene(rng: random.Random, config: SynthFacesConfig, traits: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Place 0..max faces and 0..max objects without covering any face or object box.

    Items are placed in drawing order (people from far/small to near/large, then objects); each
    new item's drawn extent must not cover an earlier annotated box, and its box must not
    intersect an earlier box. An item that finds no place in 80 tries is dropped.
    """
    size = config.scene_size_px
    weights = [0.1, 0.3, 0.25, 0.2, 0.15] + [0.1] * 4
    n_faces = rng.choices(range(config.max_faces_per_scene + 1), weights[: config.max_faces_per_scene + 1])[0]
    n_objects = rng.randint(0, config.max_objects_per_scene)
    largest = size * (0.16, 0.16, 0.13, 0.105, 0.095, 0.085, 0.08, 0.075, 0.07)[n_faces]
    radii = sorted(rng.uniform(size * 0.05, largest) for _ in range(n_faces))
    identities = rng.sample(range(traits["group"].numel()), k=min(n_faces, traits["group"].numel()))
    identities += [rng.randrange(traits["group"].numel()) for _ in range(n_faces - len(identities))]
    items: list[SceneItem] = []
    people = []
    for radius, identity in zip(radii, identities):
        roll = rng.uniform(-math.radians(15), math.radians(15))
        head_width = float(traits["head_width"][identity])
        for _ in range(80):
            cx, cy = rng.uniform(0, size), rng.uniform(0, size)
            pose = {"cx": torch.tensor([cx]), "cy": torch.tensor([cy]), "radius": torch.tensor([radius]), "roll": torch.tensor([roll])}
            box = tuple(render.head_boxes({"head_width": torch.tensor([head_width])}, pose)[0].tolist())
            extent = (cx - 2.1 * radius, cy - 1.3 * radius, cx + 2.1 * radius, size)
            if not _inside(box, size):
                continue
            if any(_intersects(extent, other.box) or _intersects(box, other.box) for other in items):
                continue
            items.append(SceneItem("face", box, extent, {"identity": identity}))
            people.append({"identity": identity, "cx": cx, "cy": cy, "radius": radius, "roll": roll})
            break
    horizon = rng.uniform(0.45, 0.7)
    objects = []
    for _ in range(n_objects):
        kind = rng.randrange(len(render.OBJECT_KINDS))
        extents = render.OBJECT_EXTENTS[kind].tolist()
        for _ in range(80):
            object_size = rng.uniform(size * 0.13, size * 0.3)
            # objects stand on the ground: their bottom lies below the horizon
            bottom = rng.uniform(horizon * size + 2, size)
            cx, cy = rng.uniform(0, size), bottom - extents[3] * object_size
            box = (cx + extents[0] * object_size - 1, cy + extents[2] * object_size - 1,
                   cx + extents[1] * object_size + 1, cy + extents[3] * object_size + 1)
            if not _inside(box, size) or any(_intersects(box, other.box) for other in items):
                continue
            items.append(SceneItem(render.OBJECT_KINDS[kind], box, box, {}))
            objects.append({"kind": kind, "cx": cx, "cy": cy, "size": object_size})
            break
    return {"people": people, "objects": objects, "outdoor": rng.random() < 0.5, "horizon": horizon}


def render_scenes(
    layouts: list[dict[str, Any]], traits: dict[str, torch.Tensor], config: SynthFacesConfig, generator: torch.Generator
) -> tuple[torch.Tensor, list[list[dict[str, Any]]]]:
    """Render laid-out scenes (uint8 ``(N, 3, S, S)``) and return per-scene annotations.

    Faces are rendered once as RGBA sprites (head radius 14 px on a 64 px canvas) and warped
    into place; objects are drawn directly at scene resolution. Annotations carry the exact
    boxes (head boxes from the pose actually drawn, object boxes from the drawn extents) and the
    attributes captions talk about.
    """
    size = config.scene_size_px
    count = len(layouts)
    annotations: list[list[dict[str, Any]]] = [[] for _ in range(count)]
    if count == 0:
        return torch.empty(0, 3, size, size, dtype=torch.uint8), annotations
    scene_light_azimuth = _uniform(generator, count, -1.0, 1.0)
    backdrop = {
        "outdoor": torch.tensor([layout["outdoor"] for layout in layouts]),
        "horizon": torch.tensor([layout["horizon"] for layout in layouts], dtype=torch.float32),
        "upper": torch.where(
            torch.tensor([layout["outdoor"] for layout in layouts])[:, None],
            torch.tensor([0.45, 0.65, 0.92]) * _uniform(generator, (count, 1), 0.8, 1.05),
            (0.5 + 0.45 * torch.rand(count, 3, generator=generator)),
        ).clamp(0, 1),
        "lower": torch.where(
            torch.tensor([layout["outdoor"] for layout in layouts])[:, None],
            torch.tensor([0.3, 0.55, 0.22]) * _uniform(generator, (count, 1), 0.7, 1.1),
            (0.2 + 0.5 * torch.rand(count, 3, generator=generator)),
        ).clamp(0, 1),
        "frame": torch.rand(count, 4, generator=generator),
    }
    images = render.render_scene_background(backdrop, size, size)
    clutter = _background_params(count, generator, clutter=3)
    clutter_layer = render.render_background(clutter, size, size)
    images = 0.85 * images + 0.15 * clutter_layer

    # people: render sprites, then composite slot by slot (people sorted small → large)
    flat = [(s, p) for s, layout in enumerate(layouts) for p in layout["people"]]
    if flat:
        scene_of = torch.tensor([s for s, _ in flat])
        identity = torch.tensor([p["identity"] for _, p in flat])
        n = len(flat)
        pose = sample_poses(n, generator, cx=SPRITE_HEAD_CENTRE[0], cy=SPRITE_HEAD_CENTRE[1], radius=SPRITE_HEAD_RADIUS)
        pose["roll"] = torch.tensor([p["roll"] for _, p in flat], dtype=torch.float32)
        # one light per scene: every face in a scene is lit from the same side
        azimuth = scene_light_azimuth[scene_of]
        elevation = pose["light"][:, 1].neg().asin()
        pose["light"] = _light_directions(azimuth, elevation)
        layer = render.render_people(_gather(traits, identity), pose, SPRITE_SIZE, SPRITE_SIZE)
        sprites = torch.cat([layer.rgb, layer.alpha], 1)
        radius = torch.tensor([p["radius"] for _, p in flat], dtype=torch.float32)
        head = torch.tensor([[p["cx"], p["cy"]] for _, p in flat], dtype=torch.float32)
        scale = radius / SPRITE_HEAD_RADIUS
        # the sprite's centre lies (sprite centre − head centre) below the head, scaled and rolled
        offset = torch.tensor([SPRITE_SIZE / 2 - SPRITE_HEAD_CENTRE[0], SPRITE_SIZE / 2 - SPRITE_HEAD_CENTRE[1]])
        centre = head + scale[:, None] * offset
        slot = torch.tensor([layouts[s]["people"].index(p) for s, p in flat])
        for k in range(int(slot.max()) + 1):
            rows = (slot == k).nonzero().flatten()
            placed = render.warp_sprites(sprites[rows], centre[rows], scale[rows], size, size)
            target = scene_of[rows]
            images[target] = images[target] * (1 - placed[:, 3:]) + placed[:, :3]
        boxes = render.head_boxes(
            {"head_width": traits["head_width"][identity]},
            {"cx": head[:, 0], "cy": head[:, 1], "radius": radius, "roll": pose["roll"]},
        ).clamp(0, size)
        for i, (s, p) in enumerate(flat):
            identity_i = int(identity[i])
            annotations[s].append(
                {
                    "category": "face",
                    "box": boxes[i].tolist(),
                    "identity": identity_i,
                    "glasses": int(traits["glasses"][identity_i]) > 0,
                    "beard": int(traits["beard"][identity_i]) in (1, 2),
                    "moustache": bool(traits["moustache"][identity_i] > 0),
                    "hair": _hair_words(traits, identity_i),
                    "smiling": float(pose["smile"][i]) > 0.55,
                    "eyes_closed": float(pose["eye_open"][i]) < 0.3,
                }
            )

    # objects, slot by slot
    flat_objects = [(s, o, k) for s, layout in enumerate(layouts) for k, o in enumerate(layout["objects"])]
    if flat_objects:
        scene_of = torch.tensor([s for s, _, _ in flat_objects])
        kind = torch.tensor([o["kind"] for _, o, _ in flat_objects])
        params = _object_params(
            kind,
            generator,
            cx=torch.tensor([o["cx"] for _, o, _ in flat_objects]),
            cy=torch.tensor([o["cy"] for _, o, _ in flat_objects]),
            size=torch.tensor([o["size"] for _, o, _ in flat_objects]),
        )
        params["angle"] = params["angle"] * 0.5
        slot = torch.tensor([k for _, _, k in flat_objects])
        for k in range(int(slot.max()) + 1):
            rows = (slot == k).nonzero().flatten()
            layer = render.render_objects({key: value[rows] for key, value in params.items()}, size, size)
            target = scene_of[rows]
            images[target] = layer.over(images[target])
        boxes = render.object_boxes(params).clamp(0, size)
        for i, (s, _, _) in enumerate(flat_objects):
            annotations[s].append(
                {
                    "category": render.OBJECT_KINDS[int(kind[i])],
                    "box": boxes[i].tolist(),
                    "colour": render.COLOUR_NAMES[int(params["colour_index"][i])],
                }
            )
    return _finish(images, generator, config.noise_std), annotations


def _hair_words(traits: dict[str, torch.Tensor], identity: int) -> str:
    style = render.HAIR_STYLE_NAMES[int(traits["hair_style"][identity])]
    colour = list(render.HAIR_COLOURS)[int(traits["hair_colour_index"][identity])]
    if style == "bald":
        return "bald"
    colour = "brown" if colour == "dark brown" else colour
    return f"{'curly ' if style == 'curly' else 'long ' if style == 'long' else ''}{colour} hair"


# -- captions ----------------------------------------------------------------------------------
PLURALS = {"person": "people", "face": "faces", "ball": "balls", "box": "boxes", "cup": "cups", "tree": "trees", "car": "cars", "object": "objects"}


def _count(n: int, noun: str) -> str:
    """A cardinal phrase: 'no people', 'one person', 'three cups'."""
    word = NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)
    return f"{word} {noun if n == 1 else PLURALS[noun]}"


def _article(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _object_phrases(objects: list[dict[str, Any]]) -> list[str]:
    """'two red balls', 'a green tree' ... grouped by (colour, kind), in order of first mention."""
    groups: dict[tuple[str, str], int] = {}
    for obj in objects:
        key = (obj["colour"], obj["category"])
        groups[key] = groups.get(key, 0) + 1
    phrases = []
    for (colour, kind), n in groups.items():
        phrases.append(_article(f"{colour} {kind}") if n == 1 else f"{NUMBER_WORDS[n]} {colour} {PLURALS[kind]}")
    return phrases


def _person_phrase(face: dict[str, Any], rng: random.Random, max_attributes: int = 2) -> str:
    """'a smiling person with glasses and red hair', 'a bald person with a beard' (no cardinals)."""
    with_parts = []
    if face["glasses"]:
        with_parts.append("glasses")
    if face["beard"]:
        with_parts.append("a beard")
    elif face["moustache"]:
        with_parts.append("a moustache")
    if face["hair"] != "bald":
        with_parts.append(face["hair"])
    if face["eyes_closed"]:
        with_parts.append("closed eyes")
    rng.shuffle(with_parts)
    adjectives = []
    if face["smiling"]:
        adjectives.append("smiling")
    if face["hair"] == "bald":
        adjectives.append("bald")
    budget = max_attributes
    adjectives = adjectives[:budget]
    with_parts = with_parts[: max(0, budget - len(adjectives))]
    phrase = _article(" ".join(adjectives + ["person"]))
    if with_parts:
        phrase += " with " + _join(with_parts)
    return phrase


def _item_phrase(item: dict[str, Any], rng: random.Random) -> str:
    if item["category"] == "face":
        return _person_phrase(item, rng, max_attributes=1)
    return _article(f"{item['colour']} {item['category']}")


def _relation(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Where ``a`` is relative to ``b`` in the picture, from the box centres."""
    ax, ay = (a["box"][0] + a["box"][2]) / 2, (a["box"][1] + a["box"][3]) / 2
    bx, by = (b["box"][0] + b["box"][2]) / 2, (b["box"][1] + b["box"][3]) / 2
    dx, dy = ax - bx, ay - by
    if abs(dx) >= abs(dy):
        return "to the left of" if dx < 0 else "to the right of"
    return "above" if dy < 0 else "below"


def scene_captions(
    annotations: list[dict[str, Any]], outdoor: bool, rng: random.Random, size: int, count: int = 5
) -> list[str]:
    """Five reference captions from a small grammar with paraphrases: counts, colours,
    attributes and spatial relations, all derived from what the scene actually contains."""
    faces = [a for a in annotations if a["category"] == "face"]
    objects = [a for a in annotations if a["category"] != "face"]
    setting = rng.choice(["outdoors", "outside", "in a park"] if outdoor else ["in a room", "indoors", "inside a room"])
    place = "an outdoor scene" if outdoor else "a room"
    object_list = _join(_object_phrases(objects))
    n_faces = len(faces)

    # 1. counts first
    people = _count(n_faces, "person")
    if objects:
        first = rng.choice([f"{people} and {object_list} {setting}", f"{object_list} and {people} {setting}"])
    else:
        first = rng.choice([f"{people} {setting}", f"{people} {setting}, with no objects around"])
    # 2. a photo of faces
    lead = rng.choice(["a photo of", "a picture showing", "an image with"])
    if objects:
        second = f"{lead} {_count(n_faces, 'face')} {rng.choice(['next to', 'near', 'together with'])} {object_list}"
    else:
        second = f"{lead} {_count(n_faces, 'face')} {setting}"
    # 3. attributes of the people (articles, no cardinals)
    if faces:
        third = f"{_join([_person_phrase(f, rng) for f in faces])} {setting}"
    elif objects:
        third = f"{object_list} {setting}, and nobody is there"
    else:
        third = rng.choice([f"an empty {'place outdoors' if outdoor else 'room'}", f"nothing but {place} without anyone in it"])
    # 4. a spatial relation
    items = faces + objects
    if len(items) >= 2:
        a, b = rng.sample(items, 2)
        fourth = f"{_item_phrase(a, rng)} {_relation(a, b)} {_item_phrase(b, rng)}"
    elif len(items) == 1:
        item = items[0]
        centre = (item["box"][0] + item["box"][2]) / 2
        position = "on the left" if centre < size / 3 else "on the right" if centre > 2 * size / 3 else "in the middle"
        fourth = f"{_item_phrase(item, rng)} {position} of the picture"
    else:
        fourth = f"there is nothing in {place}"
    # 5. there is / there are
    verb = "is" if n_faces == 1 else "are"
    if objects:
        fifth = f"there {verb} {people} and {_count(len(objects), 'object')} {setting}: {object_list}"
    else:
        fifth = f"there {verb} {people} and no objects {setting}"
    captions = [first, second, third, fourth, fifth]
    return [c[0].upper() + c[1:] + "." for c in captions[:count]]


# -- generation of a whole dataset ---------------------------------------------------------------
@dataclass
class GeneratedSplit:
    """What the generator produced for one split, before it is written to disk."""

    faces: torch.Tensor  # uint8 (N, 3, S, S)
    face_labels: torch.Tensor  # identity index
    nonfaces: torch.Tensor  # uint8 (M, 3, S, S)
    nonface_categories: torch.Tensor  # index into NONFACE_CATEGORIES
    scenes: torch.Tensor  # uint8 (K, 3, T, T)
    scene_annotations: list[list[dict[str, Any]]]
    scene_captions: list[list[str]]


def _chunks(count: int, size: int) -> list[slice]:
    return [slice(start, min(count, start + size)) for start in range(0, count, size)]


class _SingleThreadedTorch:
    """Run torch ops on one intra-op thread (restored afterwards). The renderer issues many
    small, memory-bound elementwise ops; parallelism comes from rendering chunks concurrently
    instead, which is faster and does not collapse when the cores are shared with other work."""

    def __enter__(self) -> int:
        self.previous = torch.get_num_threads()
        torch.set_num_threads(1)
        return self.previous

    def __exit__(self, *exc: Any) -> None:
        torch.set_num_threads(self.previous)


def _run_parallel(tasks: list, workers: int) -> list:
    """Call every zero-argument task, ``workers`` at a time (torch and PIL release the GIL); results in order."""
    if workers <= 1 or len(tasks) <= 1:
        return [task() for task in tasks]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda task: task(), tasks))


def generate_synthfaces(
    config: SynthFacesConfig, workers: int | None = None
) -> tuple[dict[str, GeneratedSplit], dict[str, torch.Tensor]]:
    """Generate every split in memory. Returns the splits and the identity traits.

    Deterministic given the config: every chunk of images draws from its own generator, seeded
    by (seed, part, split, chunk index), so the result does not depend on ``workers`` (default:
    torch's intra-op thread count) or on the order in which chunks finish.
    """
    with _SingleThreadedTorch() as threads:
        workers = workers or threads
        traits = sample_identities(config.n_identities, config.identities_per_group, config.seed)
        tasks: list = []
        plan: list[tuple[str, str, slice]] = []
        face_labels, categories, layouts = {}, {}, {}
        for split in SPLITS:
            labels = torch.arange(config.n_identities).repeat_interleave(config.faces_per_identity(split))
            face_labels[split] = labels
            for index, rows in enumerate(_chunks(labels.numel(), RENDER_CHUNK)):
                generator = _generator(config.seed, "faces", split, index)
                tasks.append(lambda rows=rows, labels=labels, g=generator: render_face_crops(traits, labels[rows], config, g))
                plan.append(("faces", split, rows))
            categories[split] = nonface_categories(config.nonfaces(split), config, _generator(config.seed, "nonfaces", split))
            for index, rows in enumerate(_chunks(categories[split].numel(), RENDER_CHUNK)):
                generator = _generator(config.seed, "nonfaces", split, index)
                tasks.append(lambda rows=rows, c=categories[split], g=generator: render_nonface_crops(c[rows], config, g))
                plan.append(("nonfaces", split, rows))
            rng = _python_rng(config.seed, "scenes", split)
            layouts[split] = [layout_scene(rng, config, traits) for _ in range(config.scenes(split))]
            for index, rows in enumerate(_chunks(len(layouts[split]), SCENE_CHUNK)):
                generator = _generator(config.seed, "scenes", split, index)
                tasks.append(lambda rows=rows, l=layouts[split], g=generator: render_scenes(l[rows], traits, config, g))
                plan.append(("scenes", split, rows))
        results = _run_parallel(tasks, workers)

    parts: dict[tuple[str, str], list] = {}
    for (part, split, _), result in zip(plan, results):
        parts.setdefault((part, split), []).append(result)
    crop, scene = config.crop_size_px, config.scene_size_px
    splits: dict[str, GeneratedSplit] = {}
    for split in SPLITS:
        faces = parts.get(("faces", split), [])
        nonfaces = parts.get(("nonfaces", split), [])
        scene_chunks = parts.get(("scenes", split), [])
        annotations = [a for _, chunk_annotations in scene_chunks for a in chunk_annotations]
        caption_rng = _python_rng(config.seed, "captions", split)
        captions = [
            scene_captions(a, layout["outdoor"], caption_rng, config.scene_size_px, config.captions_per_scene)
            for a, layout in zip(annotations, layouts[split])
        ]
        splits[split] = GeneratedSplit(
            faces=torch.cat(faces) if faces else torch.empty(0, 3, crop, crop, dtype=torch.uint8),
            face_labels=face_labels[split],
            nonfaces=torch.cat(nonfaces) if nonfaces else torch.empty(0, 3, crop, crop, dtype=torch.uint8),
            nonface_categories=categories[split],
            scenes=torch.cat([images for images, _ in scene_chunks]) if scene_chunks else torch.empty(0, 3, scene, scene, dtype=torch.uint8),
            scene_annotations=annotations,
            scene_captions=captions,
        )
    return splits, traits


def identity_name(index: int) -> str:
    """VGGFace2-style identity folder name: ``n000001`` for identity 0."""
    return f"n{index + 1:06d}"


def _save_png(image: torch.Tensor, path: Path) -> None:
    from PIL import Image

    Image.fromarray(image.permute(1, 2, 0).contiguous().numpy()).save(path, format="PNG", compress_level=1)


def write_synthfaces(
    splits: dict[str, GeneratedSplit],
    traits: dict[str, torch.Tensor],
    config: SynthFacesConfig,
    root: Path,
    workers: int | None = None,
) -> None:
    """Write the generated data in real formats under ``root`` (see the module docstring)."""
    pngs: list[tuple[torch.Tensor, Path]] = []
    image_id = 0
    annotation_id = 0
    caption_id = 0
    categories = [
        {"id": index + 1, "name": name, "supercategory": "person" if name == "face" else "object"}
        for index, name in enumerate(SCENE_CATEGORIES)
    ]
    for split, data in splits.items():
        # faces: <root>/faces/<split>/n000001/0001_01.png
        counters: dict[int, int] = {}
        for image, label in zip(data.faces, data.face_labels.tolist()):
            counters[label] = counters.get(label, 0) + 1
            folder = root / "faces" / split / identity_name(label)
            folder.mkdir(parents=True, exist_ok=True)
            pngs.append((image, folder / f"{counters[label]:04d}_01.png"))
        # non-faces: <root>/nonfaces/<split>/<category>/00001.png
        counters = {}
        for image, category in zip(data.nonfaces, data.nonface_categories.tolist()):
            counters[category] = counters.get(category, 0) + 1
            folder = root / "nonfaces" / split / NONFACE_CATEGORIES[category]
            folder.mkdir(parents=True, exist_ok=True)
            pngs.append((image, folder / f"{counters[category]:05d}.png"))
        # scenes: COCO instances + captions
        scene_folder = root / "scenes" / split
        scene_folder.mkdir(parents=True, exist_ok=True)
        images, instances, captions = [], [], []
        for scene, annotations, texts in zip(data.scenes, data.scene_annotations, data.scene_captions):
            image_id += 1
            file_name = f"{image_id:012d}.png"
            pngs.append((scene, scene_folder / file_name))
            images.append({"id": image_id, "file_name": file_name, "width": config.scene_size_px, "height": config.scene_size_px})
            for annotation in annotations:
                annotation_id += 1
                x0, y0, x1, y1 = (round(float(c), 2) for c in annotation["box"])
                width, height = round(x1 - x0, 2), round(y1 - y0, 2)
                record = {
                    "id": annotation_id,
                    "image_id": image_id,
                    "category_id": SCENE_CATEGORIES.index(annotation["category"]) + 1,
                    "bbox": [x0, y0, width, height],
                    "area": round(width * height, 2),
                    "iscrowd": 0,
                    "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
                }
                if annotation["category"] == "face":
                    record["attributes"] = {k: v for k, v in annotation.items() if k not in ("category", "box")}
                else:
                    record["attributes"] = {"colour": annotation["colour"]}
                instances.append(record)
            for text in texts:
                caption_id += 1
                captions.append({"id": caption_id, "image_id": image_id, "caption": text})
        info = {
            "description": f"synthfaces scenes ({split}), generator v{GENERATOR_VERSION}, seed {config.seed}",
            "version": GENERATOR_VERSION,
            "year": 2024,
            "contributor": "privbench synthfaces generator",
        }
        annotation_folder = root / "scenes" / "annotations"
        annotation_folder.mkdir(parents=True, exist_ok=True)
        _write_json(
            annotation_folder / f"instances_{split}.json",
            {"info": info, "licenses": [], "images": images, "annotations": instances, "categories": categories},
        )
        _write_json(
            annotation_folder / f"captions_{split}.json",
            {"info": info, "licenses": [], "images": images, "annotations": captions},
        )
    _write_json(root / "identities.json", identity_table(traits))
    batches = [pngs[start : start + 256] for start in range(0, len(pngs), 256)]
    _run_parallel([lambda batch=batch: [_save_png(image, path) for image, path in batch] for batch in batches],
                  workers or torch.get_num_threads())


def identity_table(traits: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
    """Readable latent traits of every identity (written next to the data, for people)."""
    rows = []
    for index in range(traits["group"].numel()):
        row: dict[str, Any] = {
            "identity": identity_name(index),
            "group": int(traits["group"][index]),
            "skin_tone": int(traits["skin_index"][index]),
            "hair_colour": list(render.HAIR_COLOURS)[int(traits["hair_colour_index"][index])],
            "hair_style": render.HAIR_STYLE_NAMES[int(traits["hair_style"][index])],
            "beard": render.BEARD_STYLES[int(traits["beard"][index])],
            "iris": list(render.IRIS_COLOURS)[int(traits["iris_index"][index])],
            "glasses": ("none", "round", "rectangular")[int(traits["glasses"][index])],
            "moustache": bool(traits["moustache"][index] > 0),
            "mole": bool(traits["mole"][index] > 0),
        }
        for name in ("head_width", "jaw_taper", *FINE_TRAIT_LEVELS):
            row[name] = round(float(traits[name][index]), 4)
        rows.append(row)
    return rows


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1))


# -- reading back, fingerprint, cache --------------------------------------------------------------
TENSOR_FILE = "tensors.pt"
MANIFEST_FILE = "manifest.json"
TENSOR_FORMAT = 1


def dataset_key(config: SynthFacesConfig) -> str:
    """Cache key: hash of the generator config and the generator version."""
    return stable_hash({"dataset": "synthfaces", "generator": GENERATOR_VERSION, "config": config.model_dump(mode="json")})


def dataset_folder(config: SynthFacesConfig, cache_dir: str | Path | None = None) -> Path:
    """Where ``config``'s data lives: ``<cache_dir>/synthfaces-<key>`` (default cache: ``$PRIVBENCH_CACHE/datasets``)."""
    from privbench.api.cache import default_cache_root

    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_root() / "datasets"
    return root / f"synthfaces-{dataset_key(config)}"


def read_synthfaces_folder(folder: Path) -> dict[str, Any]:
    """Read a written synthfaces folder back through the generic ImageFolder and COCO readers.

    Returns the tensor payload that :func:`build_synthfaces` caches (see :func:`_payload_to_data`).
    """
    payload: dict[str, Any] = {"format": TENSOR_FORMAT, "identities": {}, "nonfaces": {}, "scenes": {}}
    for split in SPLITS:
        faces = read_image_folder(folder / "faces" / split)
        payload["identities"][split] = {"images": faces.images, "labels": faces.labels}
        payload["class_names"] = faces.class_names
        nonfaces = read_image_folder(folder / "nonfaces" / split)
        payload["nonfaces"][split] = {"images": nonfaces.images, "labels": nonfaces.labels, "class_names": nonfaces.class_names}
        scenes = read_coco_scenes(
            folder / "scenes" / split,
            folder / "scenes" / "annotations" / f"instances_{split}.json",
            folder / "scenes" / "annotations" / f"captions_{split}.json",
        )
        payload["scenes"][split] = {
            "images": scenes.images,
            "boxes": scenes.boxes,
            "box_labels": scenes.box_labels,
            "captions": scenes.captions,
            "image_ids": scenes.image_ids,
        }
        payload["categories"] = scenes.categories
    payload["fingerprint"] = fingerprint_payload(payload)
    return payload


def fingerprint_payload(payload: dict[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of everything the benchmark reads: pixels, labels, names,
    boxes, box labels and captions of every split, in a fixed order."""
    digest = hashlib.sha256()

    def add_tensor(tensor: torch.Tensor) -> None:
        tensor = tensor.contiguous()
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())

    digest.update(json.dumps([payload["class_names"], payload["categories"]]).encode())
    for split in SPLITS:
        add_tensor(payload["identities"][split]["images"])
        add_tensor(payload["identities"][split]["labels"])
        add_tensor(payload["nonfaces"][split]["images"])
        add_tensor(payload["nonfaces"][split]["labels"])
        digest.update(json.dumps(payload["nonfaces"][split]["class_names"]).encode())
        scenes = payload["scenes"][split]
        add_tensor(scenes["images"])
        for boxes, labels in zip(scenes["boxes"], scenes["box_labels"]):
            add_tensor(boxes)
            add_tensor(labels)
        digest.update(json.dumps([scenes["captions"], scenes["image_ids"]]).encode())
    return digest.hexdigest()[:16]


def _payload_to_data(payload: dict[str, Any], name: str, description: str) -> BenchmarkData:
    identities = {}
    face_vs_noface = {}
    scenes = {}
    for split in SPLITS:
        faces = payload["identities"][split]
        identities[split] = LabeledImages(faces["images"], faces["labels"].long(), list(payload["class_names"]))
        nonfaces = payload["nonfaces"][split]["images"]
        face_vs_noface[split] = LabeledImages(
            torch.cat([faces["images"], nonfaces]),
            torch.cat([torch.ones(len(faces["labels"]), dtype=torch.long), torch.zeros(nonfaces.shape[0], dtype=torch.long)]),
            ["no-face", "face"],
        )
        s = payload["scenes"][split]
        scenes[split] = Scenes(
            images=s["images"],
            boxes=list(s["boxes"]),
            box_labels=list(s["box_labels"]),
            captions=[list(c) for c in s["captions"]],
            categories=list(payload["categories"]),
            image_ids=list(s["image_ids"]),
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


def _load_tensors(folder: Path) -> dict[str, Any] | None:
    path = folder / TENSOR_FILE
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a corrupt tensor file is rebuilt from the files, never trusted
        return None


def _save_tensors(payload: dict[str, Any], folder: Path) -> None:
    from privbench.api.cache import atomic_torch_save

    atomic_torch_save(payload, folder / TENSOR_FILE)


def load_or_generate(config: SynthFacesConfig, cache_dir: str | Path | None = None) -> tuple[dict[str, Any], Path]:
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
            return payload, folder
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
        _write_json(
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
    return payload, folder


def describe_config(config: SynthFacesConfig, preset: str) -> str:
    faces = {split: config.n_identities * config.faces_per_identity(split) for split in SPLITS}
    return (
        f"synthfaces ({preset}, seed {config.seed}, generator v{GENERATOR_VERSION}): "
        f"{config.n_identities} synthetic identities in look-alike groups of {config.identities_per_group}; "
        f"{config.crop_size_px}x{config.crop_size_px} face crops per split "
        f"{'/'.join(str(faces[s]) for s in SPLITS)} (train/val/test), as many non-face crops "
        f"(objects, textures, {config.hard_negative_fraction:.0%} skin-coloured round blobs); "
        f"{config.scene_size_px}x{config.scene_size_px} scenes {'/'.join(str(config.scenes(s)) for s in SPLITS)} "
        f"with 0-{config.max_faces_per_scene} faces, 0-{config.max_objects_per_scene} objects, COCO boxes and "
        f"{config.captions_per_scene} captions each."
    )


@register_dataset("synthfaces")
def build_synthfaces(
    preset: str = "quick", seed: int = 0, cache_dir: str | Path | None = None, **overrides: Any
) -> BenchmarkData:
    """The embedded synthfaces benchmark data (generated on first use, then loaded from the cache).

    ``preset``: ``tiny``, ``quick`` (default) or ``standard`` (see :data:`SYNTHFACES_PRESETS`);
    ``overrides``: any :class:`SynthFacesConfig` field; ``cache_dir``: the cache root (default:
    ``$PRIVBENCH_CACHE/datasets`` or ``~/.cache/privbench/datasets``).
    """
    config = synthfaces_config(preset, seed, **overrides)
    payload, _ = load_or_generate(config, cache_dir)
    return _payload_to_data(payload, f"synthfaces-{preset}", describe_config(config, preset))


# -- readers: the generic privbench.data readers that also read the real datasets ----------------
def read_image_folder(root: Path) -> LabeledImages:
    """ImageFolder layout: one sub-folder per class (sorted names → labels 0..C−1), PNG images inside."""
    from privbench.data.formats import read_image_folder as read_folder

    return read_folder(root, extensions=(".png",))


def read_coco_scenes(image_dir: Path, instances_json: Path, captions_json: Path) -> Scenes:
    """COCO instances (boxes [x, y, w, h] → xyxy) and captions of the images in ``image_dir``."""
    from privbench.data.formats import read_coco_scenes as read_scenes

    return read_scenes(image_dir, instances_json, captions_json)


# -- pictures ------------------------------------------------------------------------------------
def render_sample_face(identity: int = 0, seed: int = 0, size: int = 64, preset: str = "quick") -> torch.Tensor:
    """One clean, frontal face of ``identity`` (of ``preset``'s identities) as float ``(1, 3, size, size)``
    in [0, 1]: neutral expression, light from the upper left, plain background, no noise."""
    config = synthfaces_config(preset, seed)
    if not 0 <= identity < config.n_identities:
        raise ConfigError(f"identity must lie in [0, {config.n_identities - 1}] for preset {preset!r}; got {identity}.")
    if not 16 <= size <= 1024:
        raise ConfigError(f"size must lie in [16, 1024] pixels; got {size}.")
    traits = _gather(sample_identities(config.n_identities, config.identities_per_group, seed), torch.tensor([identity]))
    pose = sample_poses(1, _generator(seed, "sample-face", identity), cx=size / 2, cy=size * 0.47, radius=size * 0.3)
    pose.update(
        roll=torch.zeros(1), yaw=torch.zeros(1), smile=torch.full((1,), 0.4), mouth_open=torch.zeros(1),
        eye_open=torch.ones(1), gaze=torch.zeros(1), brow_raise=torch.zeros(1), ambient=torch.full((1,), 0.55),
        light=torch.tensor([[-0.35, -0.35, 0.87]]),
    )
    ys, _ = render.pixel_grid(size, size)
    background = (0.78 - 0.18 * ys / size).expand(1, 3, size, size)
    return render.render_people(traits, pose, size, size).over(background).clamp(0, 1)


def render_identity_sheet(
    identities: int | list[int] = 8, per_identity: int = 6, seed: int = 0, preset: str = "quick"
) -> torch.Tensor:
    """A uint8 ``(3, rows·S, per_identity·S)`` grid: one row per identity, each crop with fresh
    nuisances (as in the benchmark), for README pictures and for looking at the data."""
    config = synthfaces_config(preset, seed)
    chosen = list(range(identities)) if isinstance(identities, int) else list(identities)
    if not chosen or any(not 0 <= i < config.n_identities for i in chosen):
        raise ConfigError(f"identities must lie in [0, {config.n_identities - 1}] for preset {preset!r}; got {chosen}.")
    traits = sample_identities(config.n_identities, config.identities_per_group, seed)
    labels = torch.tensor(chosen).repeat_interleave(per_identity)
    crops = render_face_crops(traits, labels, config, _generator(seed, "sheet", chosen, per_identity))
    size = config.crop_size_px
    grid = crops.view(len(chosen), per_identity, 3, size, size).permute(2, 0, 3, 1, 4)
    return grid.reshape(3, len(chosen) * size, per_identity * size)
