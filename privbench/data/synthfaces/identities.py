"""Synthetic identities: coarse traits shared by look-alike groups, fine traits per member."""

from __future__ import annotations

import math
from typing import Any

import torch

from privbench.data.synthfaces import render
from privbench.data.synthfaces.sampling import choice, stage_generator, uniform

#: Every two identities of a look-alike group differ in at least this many fine traits.
MIN_FINE_DIFFERENCES = 8


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
MOLE_POSITIONS = (
    (0.0, 0.0),
    (-0.42, 0.28),
    (0.44, 0.22),
    (0.22, -0.55),
    (-0.18, 0.8),
    (0.5, -0.12),
)
BEARD_PROBABILITIES = (0.6, 0.15, 0.1, 0.15)


def sample_identities(
    n_identities: int, identities_per_group: int, seed: int
) -> dict[str, torch.Tensor]:
    """Latent traits of every identity (one row each): coarse ones shared by the look-alike group,
    fine ones drawn per member so that members differ in ≥ :data:`MIN_FINE_DIFFERENCES` traits."""
    generator = stage_generator(seed, "identities", n_identities, identities_per_group)
    n_groups = math.ceil(n_identities / identities_per_group)
    group = torch.arange(n_identities) // identities_per_group

    # Coarse traits: distinct (skin, hair colour, hair style) combinations per group, as far as
    # possible.
    n_skin, n_hair, n_style = (
        len(render.SKIN_TONES),
        len(render.HAIR_COLOURS),
        len(render.HAIR_STYLES),
    )
    combos = torch.randperm(n_skin * n_hair * n_style, generator=generator)
    combos = combos.repeat(math.ceil(n_groups / combos.numel()))[:n_groups]
    group_skin, rest = combos // (n_hair * n_style), combos % (n_hair * n_style)
    group_hair, group_style = rest // n_style, rest % n_style
    group_head_width = uniform(generator, n_groups, 0.72, 0.84)
    group_jaw = uniform(generator, n_groups, 0.0, 0.25)
    group_beard = choice(generator, n_groups, BEARD_PROBABILITIES)

    # Fine traits: level codes with a minimum Hamming distance inside each group.
    names = list(FINE_TRAIT_LEVELS) + list(FINE_TRAIT_CHOICES)
    codes = torch.zeros(n_identities, len(names), dtype=torch.long)
    for g in range(n_groups):
        members = (group == g).nonzero().flatten().tolist()
        accepted: list[torch.Tensor] = []
        for _ in members:
            for _attempt in range(200):
                code = torch.cat(
                    [torch.randint(0, 3, (len(FINE_TRAIT_LEVELS),), generator=generator)]
                    + [choice(generator, 1, p) for p in FINE_TRAIT_CHOICES.values()]
                )
                if all(int((code != other).sum()) >= MIN_FINE_DIFFERENCES for other in accepted):
                    break
            accepted.append(code)
        codes[members] = torch.stack(accepted)

    traits: dict[str, torch.Tensor] = {"group": group}
    for column, (name, levels) in enumerate(FINE_TRAIT_LEVELS.items()):
        level_values = torch.tensor(levels)
        gap = float(level_values[1] - level_values[0])
        traits[name] = (
            level_values[codes[:, column]] + uniform(generator, n_identities, -0.2, 0.2) * gap
        )
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
    traits["lip_tint"] = uniform(generator, n_identities, 0.82, 1.0)
    return traits


def gather_traits(traits: dict[str, torch.Tensor], index: torch.Tensor) -> dict[str, torch.Tensor]:
    return {key: value[index] for key, value in traits.items()}


def hair_words(traits: dict[str, torch.Tensor], identity: int) -> str:
    style = render.HAIR_STYLE_NAMES[int(traits["hair_style"][identity])]
    colour = list(render.HAIR_COLOURS)[int(traits["hair_colour_index"][identity])]
    if style == "bald":
        return "bald"
    colour = "brown" if colour == "dark brown" else colour
    return f"{'curly ' if style == 'curly' else 'long ' if style == 'long' else ''}{colour} hair"


def identity_name(index: int) -> str:
    """VGGFace2-style identity folder name: ``n000001`` for identity 0."""
    return f"n{index + 1:06d}"


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
