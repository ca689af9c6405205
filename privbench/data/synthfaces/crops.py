"""Face and non-face crops (the identities and face vs no-face parts), and pictures of faces."""

from __future__ import annotations

import math

import torch

from privbench.api.errors import ConfigError
from privbench.data.synthfaces import render
from privbench.data.synthfaces.config import SynthFacesConfig, synthfaces_config
from privbench.data.synthfaces.identities import gather_traits, sample_identities
from privbench.data.synthfaces.sampling import (
    NUISANCE_RANGES,
    background_params,
    finish,
    object_params,
    occlude,
    sample_poses,
    stage_generator,
    uniform,
)

NONFACE_CATEGORIES = render.OBJECT_KINDS + ("texture", render.HARD_NEGATIVE)


# -- face and non-face crops ---------------------------------------------------------------------
def render_face_crops(
    traits: dict[str, torch.Tensor],
    identity: torch.Tensor,
    config: SynthFacesConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """Face crops (uint8 ``(N, 3, S, S)``) of the given identities, each with fresh nuisances."""
    size = config.crop_size_px
    count = identity.numel()
    pose = sample_poses(
        count,
        generator,
        cx=size / 2 + uniform(generator, count, *NUISANCE_RANGES["crop_shift_x"]) * size,
        cy=size * 0.47 + uniform(generator, count, *NUISANCE_RANGES["crop_shift_y"]) * size,
        radius=uniform(generator, count, *NUISANCE_RANGES["crop_radius"]) * size,
    )
    people = render.render_people(gather_traits(traits, identity), pose, size, size)
    images = people.over(render.render_background(background_params(count, generator), size, size))
    images = occlude(images, pose, generator, config.occlusion_probability)
    return finish(images, generator, config.noise_std)


def nonface_categories(
    count: int, config: SynthFacesConfig, generator: torch.Generator
) -> torch.Tensor:
    """Categories (indices into :data:`NONFACE_CATEGORIES`) of a split's non-face crops, shuffled:
    the configured share of hard negatives, a third of the rest textures, the others objects."""
    n_hard = round(count * config.hard_negative_fraction)
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


def render_nonface_crops(
    category: torch.Tensor, config: SynthFacesConfig, generator: torch.Generator
) -> torch.Tensor:
    """Non-face crops (uint8 ``(N, 3, S, S)``) of the given categories: objects, textures and the
    hard negatives, over the same cluttered backgrounds, exposure and noise as the faces."""
    size = config.crop_size_px
    count = category.numel()
    texture_id = NONFACE_CATEGORIES.index("texture")
    blob_id = NONFACE_CATEGORIES.index(render.HARD_NEGATIVE)
    object_kind = torch.where(
        category == blob_id,
        len(render.OBJECT_KINDS),
        category.clamp_max(len(render.OBJECT_KINDS) - 1),
    )
    objects = object_params(
        object_kind,
        generator,
        cx=size / 2 + uniform(generator, count, -0.08, 0.08) * size,
        cy=size / 2 + uniform(generator, count, -0.08, 0.08) * size,
        size=torch.where(
            category == blob_id,
            uniform(generator, count, 0.6, 0.75) * size,
            uniform(generator, count, 0.45, 0.8) * size,
        ),
    )
    texture = {
        "kind": torch.randint(0, len(render.TEXTURE_KINDS), (count,), generator=generator),
        "c1": torch.rand(count, 3, generator=generator),
        "c2": torch.rand(count, 3, generator=generator),
        "period": uniform(generator, count, 4.0, 18.0) * size / 64,
        "angle": uniform(generator, count, 0, math.pi),
        "noise": torch.rand(count, 1, 8, 8, generator=generator),
    }
    # textures fill the crop or a large patch of it
    full = torch.rand(count, generator=generator) < 0.6
    patch = torch.rand(count, 4, generator=generator)
    images = render.render_background(background_params(count, generator), size, size)
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
        inside = torch.where(render.col(full), torch.ones_like(d), (0.5 - d).clamp(0, 1)).unsqueeze(
            1
        )
        images = torch.where(is_texture, images * (1 - inside) + tex * inside, images)
    layer = render.render_objects(objects, size, size)
    layer.rgb.mul_(~is_texture)
    layer.alpha.mul_(~is_texture)
    return finish(layer.over(images), generator, config.noise_std)


# -- pictures ------------------------------------------------------------------------------------
def render_sample_face(
    identity: int = 0, seed: int = 0, size: int = 64, preset: str = "quick"
) -> torch.Tensor:
    """One clean, frontal face of ``identity`` (of ``preset``'s identities) as float ``(1, 3, size,
    size)`` in [0, 1]: neutral expression, light from the upper left, plain background, no noise."""
    config = synthfaces_config(preset, seed)
    if not 0 <= identity < config.n_identities:
        raise ConfigError(
            f"identity must lie in [0, {config.n_identities - 1}] for preset {preset!r}; got "
            f"{identity}."
        )
    if not 16 <= size <= 1024:
        raise ConfigError(f"size must lie in [16, 1024] pixels; got {size}.")
    traits = gather_traits(
        sample_identities(config.n_identities, config.identities_per_group, seed),
        torch.tensor([identity]),
    )
    pose = sample_poses(
        1,
        stage_generator(seed, "sample-face", identity),
        cx=size / 2,
        cy=size * 0.47,
        radius=size * 0.3,
    )
    pose.update(
        roll=torch.zeros(1),
        yaw=torch.zeros(1),
        smile=torch.full((1,), 0.4),
        mouth_open=torch.zeros(1),
        eye_open=torch.ones(1),
        gaze=torch.zeros(1),
        brow_raise=torch.zeros(1),
        ambient=torch.full((1,), 0.55),
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
        raise ConfigError(
            f"identities must lie in [0, {config.n_identities - 1}] for preset {preset!r}; got "
            f"{chosen}."
        )
    traits = sample_identities(config.n_identities, config.identities_per_group, seed)
    labels = torch.tensor(chosen).repeat_interleave(per_identity)
    crops = render_face_crops(
        traits, labels, config, stage_generator(seed, "sheet", chosen, per_identity)
    )
    size = config.crop_size_px
    grid = crops.view(len(chosen), per_identity, 3, size, size).permute(2, 0, 3, 1, 4)
    return grid.reshape(3, len(chosen) * size, per_identity * size)
