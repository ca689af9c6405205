"""Objects of scenes and non-face crops (ball, box, cup, tree, car, the round blob) and their
boxes."""

from __future__ import annotations

import math

import torch

from privbench.data.synthfaces.render.palette import ALL_OBJECT_KINDS, HARD_NEGATIVE, OBJECT_EXTENTS
from privbench.data.synthfaces.render.shapes import (
    Layer,
    box_distance,
    col,
    coverage,
    ellipse_distance,
    local_frame,
    pixel_grid,
    rotated_half_extents,
    sphere_shading,
)

Tensor = torch.Tensor


def render_objects(params: dict[str, Tensor], height: int, width: int) -> Layer:
    """Draw one object per image: ``kind`` (index into :data:`ALL_OBJECT_KINDS`), ``colour`` (B, 3),
    ``cx, cy, size`` (pixels), ``angle``, ``light`` (B, 3), ``ambient``, ``aux`` (B, 8) uniforms
    for per-object shape variation."""
    batch = params["kind"].shape[0]
    layer = Layer(batch, height, width)
    ys, xs = pixel_grid(height, width)
    for kind_index, kind in enumerate(ALL_OBJECT_KINDS):
        rows = (params["kind"] == kind_index).nonzero().flatten()
        if rows.numel() == 0:
            continue
        sub = {key: value[rows] for key, value in params.items()}
        x, y = local_frame(xs, ys, sub["cx"], sub["cy"], sub["size"], sub["angle"])
        sub_layer = Layer(rows.numel(), height, width)
        _OBJECT_PAINTERS[kind](sub_layer, x, y, col(sub["size"]), sub)
        layer.rgb[rows] = sub_layer.rgb
        layer.alpha[rows] = sub_layer.alpha
    return layer


def _paint_ball(layer: Layer, x: Tensor, y: Tensor, ppu: Tensor, p: dict[str, Tensor]) -> None:
    radius = 0.5
    d = torch.sqrt(x * x + y * y) - radius
    colour = p["colour"][:, :, None, None].expand(-1, -1, *x.shape[1:]).clone()
    # a seam band on about half of the balls (beach / sports ball)
    band_angle = col(p["aux"][:, 0] * math.pi)
    band = ((x * torch.cos(band_angle) + y * torch.sin(band_angle)).abs() < 0.08).float()
    has_band = col((p["aux"][:, 1] > 0.5).float())
    mask = (band * has_band).unsqueeze(1)
    colour = colour * (1 - mask) + mask * 0.95
    shade = sphere_shading(x / radius, y / radius, p["light"], p["ambient"]).unsqueeze(1)
    specular = (
        torch.exp(
            -(
                (
                    (x + 0.5 * radius * col(p["light"][:, 0])) ** 2
                    + (y + 0.5 * radius * col(p["light"][:, 1])) ** 2
                )
                / 0.006
            )
        )
    ).unsqueeze(1)
    layer.paint(coverage(d, ppu), (colour * shade + 0.5 * specular).clamp(0, 1))


def _paint_box(layer: Layer, x: Tensor, y: Tensor, ppu: Tensor, p: dict[str, Tensor]) -> None:
    colour = p["colour"]
    light_x = col(p["light"][:, 0])
    front = box_distance(x - (-0.075), y - 0.15, 0.375, 0.35)
    # top face: a parallelogram sheared to the right going up
    sheared = x + (y + 0.2) * 0.6
    top = box_distance(sheared - (-0.075), y - (-0.325), 0.375, 0.125)
    # side face: a parallelogram on the right
    side_y = y + (x - 0.3) * (0.25 / 0.15)
    side = box_distance(x - 0.375, side_y - 0.15, 0.075, 0.35)
    layer.paint(coverage(side, ppu), colour * (0.55 + 0.25 * (light_x.reshape(-1, 1) > 0).float()))
    layer.paint(coverage(top, ppu), (colour * 1.2 + 0.05).clamp(0, 1))
    layer.paint(coverage(front, ppu), colour * 0.9)
    # a tape stripe on some boxes
    tape = box_distance(x - (-0.075), y - 0.15, 0.05, 0.35)
    layer.paint(coverage(tape, ppu) * col((p["aux"][:, 2] > 0.6).float()), colour * 0.6 + 0.3)


def _paint_cup(layer: Layer, x: Tensor, y: Tensor, ppu: Tensor, p: dict[str, Tensor]) -> None:
    colour = p["colour"]
    half_width = 0.32 - 0.08 * (y + 0.35) / 0.75
    body = torch.maximum(x.abs() - half_width, (y - 0.025).abs() - 0.375)
    handle = torch.maximum(
        (torch.sqrt((x - 0.3) ** 2 + (y - 0.02) ** 2) - 0.15).abs() - 0.045, 0.27 - x
    )
    layer.paint(coverage(handle, ppu), colour * 0.8)
    cylinder = (
        0.62 + 0.38 * torch.cos((x / 0.32).clamp(-1, 1) * 1.4 - col(p["light"][:, 0]))
    ).unsqueeze(1)
    layer.paint(coverage(body, ppu), p["colour"][:, :, None, None] * cylinder)
    rim = ellipse_distance(x, y + 0.35, 0.32, 0.07)
    layer.paint(coverage(rim, ppu), colour * 1.05 + 0.05)
    inside = ellipse_distance(x, y + 0.345, 0.27, 0.05)
    layer.paint(
        coverage(inside, ppu), torch.tensor([[0.25, 0.14, 0.08]]).expand(colour.shape[0], 3)
    )


def _paint_tree(layer: Layer, x: Tensor, y: Tensor, ppu: Tensor, p: dict[str, Tensor]) -> None:
    batch = x.shape[0]
    trunk = box_distance(x, y - 0.3, 0.07, 0.2)
    layer.paint(coverage(trunk, ppu), torch.tensor([[0.38, 0.24, 0.12]]).expand(batch, 3))
    canopy = torch.minimum(
        torch.sqrt(x * x + (y + 0.2) ** 2) - 0.31,
        torch.minimum(
            torch.sqrt((x + 0.19) ** 2 + (y - 0.02) ** 2) - 0.23,
            torch.sqrt((x - 0.19) ** 2 + (y - 0.02) ** 2) - 0.23,
        ),
    )
    leaves = (0.8 + 0.2 * torch.sin(31 * x + 7 * torch.sin(17 * y)) * torch.sin(29 * y)).unsqueeze(
        1
    )
    shade = sphere_shading(x / 0.45, (y + 0.1) / 0.45, p["light"], p["ambient"]).unsqueeze(1)
    layer.paint(coverage(canopy, ppu), p["colour"][:, :, None, None] * leaves * shade)


def _paint_car(layer: Layer, x: Tensor, y: Tensor, ppu: Tensor, p: dict[str, Tensor]) -> None:
    batch = x.shape[0]
    colour = p["colour"]
    body = box_distance(x, y - 0.08, 0.42, 0.07) - 0.08
    cabin_half = 0.22 + 0.1 * ((y + 0.3) / 0.25).clamp(0, 1)
    cabin = torch.maximum((x + 0.05).abs() - cabin_half, (y + 0.175).abs() - 0.125)
    layer.paint(coverage(cabin, ppu), colour * 0.85)
    window_half = cabin_half - 0.045
    window = torch.maximum(
        torch.maximum((x + 0.05).abs() - window_half, (y + 0.165).abs() - 0.085),
        0.015 - (x + 0.05).abs(),
    )
    layer.paint(coverage(window, ppu), torch.tensor([[0.62, 0.74, 0.86]]).expand(batch, 3))
    gloss = (0.85 + 0.25 * (0.15 - y).clamp(0, 0.3)).unsqueeze(1)
    layer.paint(coverage(body, ppu), colour[:, :, None, None] * gloss)
    for wheel_x in (-0.28, 0.28):
        wheel = torch.sqrt((x - wheel_x) ** 2 + (y - 0.22) ** 2) - 0.11
        layer.paint(coverage(wheel, ppu), torch.zeros(batch, 3) + 0.06)
        hub = torch.sqrt((x - wheel_x) ** 2 + (y - 0.22) ** 2) - 0.05
        layer.paint(coverage(hub, ppu), torch.zeros(batch, 3) + 0.6)
    lamp = ellipse_distance(x - 0.45, y - 0.04, 0.04, 0.03)
    layer.paint(coverage(lamp, ppu), torch.tensor([[1.0, 0.95, 0.6]]).expand(batch, 3))


def _paint_round_blob(
    layer: Layer, x: Tensor, y: Tensor, ppu: Tensor, p: dict[str, Tensor]
) -> None:
    """Hard negative: a round, skin-coloured, shaded blob (egg, fruit, ball) without facial
    structure."""
    aux = p["aux"]
    half_u = col(0.36 + 0.12 * aux[:, 0])
    half_v = col(0.42 + 0.1 * aux[:, 1])
    d = ellipse_distance(x, y, half_u, half_v)
    shade = sphere_shading(x / half_u, y / half_v, p["light"], p["ambient"]).unsqueeze(1)
    layer.paint(coverage(d, ppu), p["colour"][:, :, None, None] * shade)
    # a few darker blotches at random places (not in a face layout)
    for k in range(2):
        bu = (aux[:, 2 + 2 * k] - 0.5) * 0.6
        bv = (aux[:, 3 + 2 * k] - 0.5) * 0.7
        blotch = ellipse_distance(x - col(bu), y - col(bv), 0.09, 0.07)
        present = col((aux[:, 6] > 0.3 * (k + 1)).float())
        layer.paint(coverage(blotch, ppu) * present * 0.5, p["colour"] * 0.6)
    # a stem on some (fruit)
    stem = box_distance(x - 0.02, y + half_v + 0.04, 0.025, 0.06)
    layer.paint(
        coverage(stem, ppu) * col((aux[:, 7] > 0.6).float()),
        torch.tensor([[0.3, 0.22, 0.1]]).expand(x.shape[0], 3),
    )


_OBJECT_PAINTERS = {
    "ball": _paint_ball,
    "box": _paint_box,
    "cup": _paint_cup,
    "tree": _paint_tree,
    "car": _paint_car,
    HARD_NEGATIVE: _paint_round_blob,
}


def object_boxes(params: dict[str, Tensor]) -> Tensor:
    """Axis-aligned boxes ``(B, 4)`` xyxy (pixels) around each object, from its kind's extents."""
    ext = OBJECT_EXTENTS[params["kind"]] * params["size"][:, None]
    half_w, half_h = (ext[:, 1] - ext[:, 0]) / 2, (ext[:, 3] - ext[:, 2]) / 2
    off_x, off_y = (ext[:, 1] + ext[:, 0]) / 2, (ext[:, 3] + ext[:, 2]) / 2
    cos, sin = torch.cos(params["angle"]), torch.sin(params["angle"])
    cx = params["cx"] + cos * off_x - sin * off_y
    cy = params["cy"] + sin * off_x + cos * off_y
    ext_w, ext_h = rotated_half_extents(half_w, half_h, params["angle"])
    return torch.stack([cx - ext_w, cy - ext_h, cx + ext_w, cy + ext_h], dim=1)
