"""Scenes: faces and objects laid out without covering each other, rendered with exact boxes."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import torch

from privbench.data.synthfaces import render
from privbench.data.synthfaces.config import SynthFacesConfig
from privbench.data.synthfaces.identities import gather_traits, hair_words
from privbench.data.synthfaces.sampling import (
    background_params,
    finish,
    light_directions,
    object_params,
    sample_poses,
    uniform,
)

SPRITE_SIZE = 64
SPRITE_HEAD_RADIUS = 14.0
SPRITE_HEAD_CENTRE = (32.0, 22.0)


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
    return (
        box[0] >= margin
        and box[1] >= margin
        and box[2] <= size - margin
        and box[3] <= size - margin
    )


def layout_scene(
    rng: random.Random, config: SynthFacesConfig, traits: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """Place 0..max faces and 0..max objects without covering any face or object box.

    Items are placed in drawing order (people from far/small to near/large, then objects); each
    new item's drawn extent must not cover an earlier annotated box, and its box must not
    intersect an earlier box. An item that finds no place in 80 tries is dropped.
    """
    size = config.scene_size_px
    weights = [0.1, 0.3, 0.25, 0.2, 0.15] + [0.1] * 4
    n_faces = rng.choices(
        range(config.max_faces_per_scene + 1), weights[: config.max_faces_per_scene + 1]
    )[0]
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
            pose = {
                "cx": torch.tensor([cx]),
                "cy": torch.tensor([cy]),
                "radius": torch.tensor([radius]),
                "roll": torch.tensor([roll]),
            }
            box = tuple(
                render.head_boxes({"head_width": torch.tensor([head_width])}, pose)[0].tolist()
            )
            extent = (cx - 2.1 * radius, cy - 1.3 * radius, cx + 2.1 * radius, size)
            if not _inside(box, size):
                continue
            if any(
                _intersects(extent, other.box) or _intersects(box, other.box) for other in items
            ):
                continue
            items.append(SceneItem("face", box, extent, {"identity": identity}))
            people.append(
                {"identity": identity, "cx": cx, "cy": cy, "radius": radius, "roll": roll}
            )
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
            box = (
                cx + extents[0] * object_size - 1,
                cy + extents[2] * object_size - 1,
                cx + extents[1] * object_size + 1,
                cy + extents[3] * object_size + 1,
            )
            if not _inside(box, size) or any(_intersects(box, other.box) for other in items):
                continue
            items.append(SceneItem(render.OBJECT_KINDS[kind], box, box, {}))
            objects.append({"kind": kind, "cx": cx, "cy": cy, "size": object_size})
            break
    return {"people": people, "objects": objects, "outdoor": rng.random() < 0.5, "horizon": horizon}


def render_scenes(
    layouts: list[dict[str, Any]],
    traits: dict[str, torch.Tensor],
    config: SynthFacesConfig,
    generator: torch.Generator,
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
    scene_light_azimuth = uniform(generator, count, -1.0, 1.0)
    backdrop = {
        "outdoor": torch.tensor([layout["outdoor"] for layout in layouts]),
        "horizon": torch.tensor([layout["horizon"] for layout in layouts], dtype=torch.float32),
        "upper": torch.where(
            torch.tensor([layout["outdoor"] for layout in layouts])[:, None],
            torch.tensor([0.45, 0.65, 0.92]) * uniform(generator, (count, 1), 0.8, 1.05),
            (0.5 + 0.45 * torch.rand(count, 3, generator=generator)),
        ).clamp(0, 1),
        "lower": torch.where(
            torch.tensor([layout["outdoor"] for layout in layouts])[:, None],
            torch.tensor([0.3, 0.55, 0.22]) * uniform(generator, (count, 1), 0.7, 1.1),
            (0.2 + 0.5 * torch.rand(count, 3, generator=generator)),
        ).clamp(0, 1),
        "frame": torch.rand(count, 4, generator=generator),
    }
    images = render.render_scene_background(backdrop, size, size)
    clutter = background_params(count, generator, clutter=3)
    clutter_layer = render.render_background(clutter, size, size)
    images = 0.85 * images + 0.15 * clutter_layer

    # people: render sprites, then composite slot by slot (people sorted small → large)
    flat = [(s, p) for s, layout in enumerate(layouts) for p in layout["people"]]
    if flat:
        scene_of = torch.tensor([s for s, _ in flat])
        identity = torch.tensor([p["identity"] for _, p in flat])
        n = len(flat)
        pose = sample_poses(
            n,
            generator,
            cx=SPRITE_HEAD_CENTRE[0],
            cy=SPRITE_HEAD_CENTRE[1],
            radius=SPRITE_HEAD_RADIUS,
        )
        pose["roll"] = torch.tensor([p["roll"] for _, p in flat], dtype=torch.float32)
        # one light per scene: every face in a scene is lit from the same side
        azimuth = scene_light_azimuth[scene_of]
        elevation = pose["light"][:, 1].neg().asin()
        pose["light"] = light_directions(azimuth, elevation)
        layer = render.render_people(
            gather_traits(traits, identity), pose, SPRITE_SIZE, SPRITE_SIZE
        )
        sprites = torch.cat([layer.rgb, layer.alpha], 1)
        radius = torch.tensor([p["radius"] for _, p in flat], dtype=torch.float32)
        head = torch.tensor([[p["cx"], p["cy"]] for _, p in flat], dtype=torch.float32)
        scale = radius / SPRITE_HEAD_RADIUS
        # the sprite's centre lies (sprite centre − head centre) below the head, scaled and rolled
        offset = torch.tensor(
            [SPRITE_SIZE / 2 - SPRITE_HEAD_CENTRE[0], SPRITE_SIZE / 2 - SPRITE_HEAD_CENTRE[1]]
        )
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
        for i, (s, _) in enumerate(flat):
            identity_i = int(identity[i])
            annotations[s].append(
                {
                    "category": "face",
                    "box": boxes[i].tolist(),
                    "identity": identity_i,
                    "glasses": int(traits["glasses"][identity_i]) > 0,
                    "beard": int(traits["beard"][identity_i]) in (1, 2),
                    "moustache": bool(traits["moustache"][identity_i] > 0),
                    "hair": hair_words(traits, identity_i),
                    "smiling": float(pose["smile"][i]) > 0.55,
                    "eyes_closed": float(pose["eye_open"][i]) < 0.3,
                }
            )

    # objects, slot by slot
    flat_objects = [
        (s, o, k) for s, layout in enumerate(layouts) for k, o in enumerate(layout["objects"])
    ]
    if flat_objects:
        scene_of = torch.tensor([s for s, _, _ in flat_objects])
        kind = torch.tensor([o["kind"] for _, o, _ in flat_objects])
        params = object_params(
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
            layer = render.render_objects(
                {key: value[rows] for key, value in params.items()}, size, size
            )
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
    return finish(images, generator, config.noise_std), annotations
