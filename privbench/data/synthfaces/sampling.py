"""Seeded random draws of the generator: per-stage generators, nuisances, objects, finishing.

Every stage draws from its own generator seeded by (seed, stage labels), so changing one part of
the data leaves the others alone.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from typing import Any

import torch

from privbench.data.synthfaces import render


def stage_generator(seed: int, *labels: Any) -> torch.Generator:
    """An independent torch generator for one stage (so changing one part leaves the others
    alone)."""
    digest = hashlib.sha256(json.dumps([seed, *labels]).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def stage_rng(seed: int, *labels: Any) -> random.Random:
    digest = hashlib.sha256(json.dumps(["py", seed, *labels]).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def uniform(generator: torch.Generator, shape, low: float, high: float) -> torch.Tensor:
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return low + (high - low) * torch.rand(shape, generator=generator)


def choice(generator: torch.Generator, count: int, probabilities) -> torch.Tensor:
    weights = torch.as_tensor(probabilities, dtype=torch.float64)
    return torch.multinomial(weights, count, replacement=True, generator=generator)


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


def light_directions(azimuth: torch.Tensor, elevation: torch.Tensor) -> torch.Tensor:
    """Unit light directions (x right, y down, z towards the camera) from azimuth and elevation."""
    return torch.stack(
        [
            torch.sin(azimuth) * torch.cos(elevation),
            -torch.sin(elevation),
            torch.cos(azimuth) * torch.cos(elevation),
        ],
        1,
    )


def sample_poses(
    count: int, generator: torch.Generator, *, cx, cy, radius
) -> dict[str, torch.Tensor]:
    """Per-image nuisances of ``count`` faces (positions and sizes given, in pixels); see
    :data:`NUISANCE_RANGES`."""
    r = NUISANCE_RANGES

    def draw(name: str) -> torch.Tensor:
        return uniform(generator, count, *r[name])

    light = light_directions(draw("light_azimuth"), draw("light_elevation"))
    mouth_open = torch.where(
        torch.rand(count, generator=generator) < MOUTH_OPEN_PROBABILITY,
        draw("mouth_open"),
        torch.zeros(count),
    )
    eye_open = torch.where(
        torch.rand(count, generator=generator) < EYES_CLOSED_PROBABILITY,
        uniform(generator, count, 0.05, 0.2),
        draw("eye_open"),
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
        "shirt": render.COLOUR_TABLE[shirt_index] * uniform(generator, count, 0.7, 1.0)[:, None],
    }


def background_params(
    count: int, generator: torch.Generator, clutter: int = 6
) -> dict[str, torch.Tensor]:
    grey = uniform(generator, (count, 1), 0.15, 0.85)
    return {
        "c1": (0.5 * grey + 0.5 * torch.rand(count, 3, generator=generator)).clamp(0, 1),
        "c2": (0.5 * grey + 0.5 * torch.rand(count, 3, generator=generator)).clamp(0, 1),
        "angle": uniform(generator, count, 0.0, 2 * math.pi),
        "wave": torch.rand(count, 4, generator=generator),
        "shapes": torch.rand(count, clutter, 10, generator=generator),
    }


def finish(images: torch.Tensor, generator: torch.Generator, noise_std: float) -> torch.Tensor:
    """Exposure, colour cast and sensor noise, then 8-bit quantization: float (B, 3, H, W) →
    uint8."""
    count = images.shape[0]
    exposure = uniform(generator, count, *NUISANCE_RANGES["exposure"])[:, None, None, None]
    cast = 1.0 + uniform(generator, (count, 3), -0.06, 0.06)[:, :, None, None]
    sigma = noise_std * uniform(generator, count, 0.5, 1.5)[:, None, None, None]
    noisy = images * exposure * cast + sigma * torch.randn(images.shape, generator=generator)
    return (noisy.clamp(0, 1) * 255).round_().to(torch.uint8)


def occlude(
    images: torch.Tensor,
    pose: dict[str, torch.Tensor],
    generator: torch.Generator,
    probability: float,
) -> torch.Tensor:
    """Occasionally cover part of the face with a coloured bar or blob (a hand, a cup, a scarf)."""
    count, _, height, width = images.shape
    present = (torch.rand(count, generator=generator) < probability).float()
    radius = pose["radius"]
    cx = pose["cx"] + uniform(generator, count, -0.8, 0.8) * radius
    cy = pose["cy"] + uniform(generator, count, -0.5, 1.0) * radius
    half_u = uniform(generator, count, 0.25, 0.55) * radius
    half_v = uniform(generator, count, 0.2, 0.45) * radius
    angle = uniform(generator, count, 0, math.pi)
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


def _object_colours(
    kind: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Named colour index and RGB of each object (trees: green, or autumn orange / yellow / red)."""
    count = kind.numel()
    colour_index = torch.randint(0, len(render.COLOURS), (count,), generator=generator)
    tree_palette = torch.tensor(
        [
            render.COLOUR_NAMES.index(n)
            for n in ("green", "green", "green", "orange", "yellow", "red")
        ]
    )
    tree_colour = tree_palette[torch.randint(0, len(tree_palette), (count,), generator=generator)]
    tree = kind == render.OBJECT_KINDS.index("tree")
    colour_index = torch.where(tree, tree_colour, colour_index)
    rgb = render.COLOUR_TABLE[colour_index] * uniform(generator, count, 0.85, 1.0)[:, None]
    return colour_index, rgb


def object_params(
    kind: torch.Tensor, generator: torch.Generator, *, cx, cy, size
) -> dict[str, torch.Tensor]:
    count = kind.numel()
    colour_index, rgb = _object_colours(kind, generator)
    light = light_directions(
        uniform(generator, count, -1.0, 1.0), uniform(generator, count, -0.2, 0.8)
    )
    blob = kind == len(render.OBJECT_KINDS)
    skin = render.SKIN_TONES[
        torch.randint(0, len(render.SKIN_TONES), (count,), generator=generator)
    ]
    rgb = torch.where(blob[:, None], skin * uniform(generator, count, 0.9, 1.05)[:, None], rgb)
    upright = (kind == render.OBJECT_KINDS.index("tree")) | (
        kind == render.OBJECT_KINDS.index("cup")
    )
    angle = uniform(generator, count, -0.18, 0.18) * torch.where(upright, 0.3, 1.0)
    return {
        "kind": kind,
        "colour_index": colour_index,
        "colour": rgb.clamp(0, 1),
        "cx": torch.as_tensor(cx, dtype=torch.float32),
        "cy": torch.as_tensor(cy, dtype=torch.float32),
        "size": torch.as_tensor(size, dtype=torch.float32),
        "angle": angle,
        "light": light,
        "ambient": uniform(generator, count, 0.35, 0.6),
        "aux": torch.rand(count, 8, generator=generator),
    }
