"""Textures, cluttered backgrounds, indoor / outdoor backdrops, and sprite placement."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from privbench.data.synthfaces.render.shapes import (
    box_distance,
    col,
    ellipse_distance,
    local_frame,
    pixel_grid,
)

Tensor = torch.Tensor


def render_textures(params: dict[str, Tensor], height: int, width: int) -> Tensor:
    """Full-frame textures ``(B, 3, H, W)``: ``kind`` (index into :data:`TEXTURE_KINDS`), two
    colours ``c1, c2`` (B, 3), ``period`` (pixels), ``angle``, ``noise`` (B, 1, 8, 8) uniforms."""
    ys, xs = pixel_grid(height, width)
    kind = col(params["kind"])
    cos, sin = col(torch.cos(params["angle"])), col(torch.sin(params["angle"]))
    rx = cos * xs + sin * ys
    ry = -sin * xs + cos * ys
    omega = 2 * math.pi / col(params["period"])
    stripes = 0.5 + 0.5 * torch.tanh(3 * torch.sin(omega * rx))
    checker = 0.5 + 0.5 * torch.tanh(3 * torch.sin(omega * rx) * torch.sin(omega * ry))
    cell_x = torch.remainder(rx * omega / (2 * math.pi), 1.0) - 0.5
    cell_y = torch.remainder(ry * omega / (2 * math.pi), 1.0) - 0.5
    dots = (0.5 - (torch.sqrt(cell_x**2 + cell_y**2) - 0.28) * col(params["period"])).clamp(0, 1)
    row = torch.floor(ry * omega / (2 * math.pi))
    brick_x = torch.remainder(rx * omega / (4 * math.pi) + 0.5 * torch.remainder(row, 2), 1.0)
    mortar = torch.maximum((cell_y.abs() > 0.43).float(), (brick_x < 0.05).float())
    waves = 0.5 + 0.5 * torch.sin(omega * rx + 2.5 * torch.sin(omega * 0.5 * ry))
    noise = F.interpolate(
        params["noise"], size=(height, width), mode="bicubic", align_corners=False
    )[:, 0]
    noise = ((noise - 0.5) * 2.2 + 0.5).clamp(0, 1)
    mix = torch.zeros_like(rx)
    for index, pattern in enumerate((stripes, checker, dots, 1 - mortar, waves, noise)):
        mix = torch.where(kind == index, pattern, mix)
    mix = mix.unsqueeze(1)
    return params["c1"][:, :, None, None] * (1 - mix) + params["c2"][:, :, None, None] * mix


def render_background(params: dict[str, Tensor], height: int, width: int) -> Tensor:
    """Cluttered background ``(B, 3, H, W)``: a two-colour gradient, a faint texture and a few
    random shapes. ``params``: ``c1, c2`` (B, 3), ``angle``, ``wave`` (B, 4), ``shapes`` (B, K, 10)
    uniforms (kind, x, y, size_u, size_v, angle, r, g, b, opacity)."""
    ys, xs = pixel_grid(height, width)
    size = float(max(height, width))
    cos, sin = col(torch.cos(params["angle"])), col(torch.sin(params["angle"]))
    t = ((cos * (xs - width / 2) + sin * (ys - height / 2)) / size + 0.5).clamp(0, 1)
    wave = params["wave"]
    ripple = 0.04 * torch.sin(
        2 * math.pi * (col(wave[:, 0]) * 3 * xs / size + col(wave[:, 1]) * 3 * ys / size)
        + col(wave[:, 2]) * 6
    )
    image = params["c1"][:, :, None, None] * (1 - t.unsqueeze(1)) + params["c2"][
        :, :, None, None
    ] * t.unsqueeze(1)
    image = image + ripple.unsqueeze(1)
    shapes = params["shapes"]
    for k in range(shapes.shape[1]):
        s = shapes[:, k]
        du, dv = local_frame(
            xs, ys, s[:, 1] * width, s[:, 2] * height, torch.ones_like(s[:, 0]), s[:, 5] * math.pi
        )
        half_u = col(3 + s[:, 3] * 0.3 * size)
        half_v = col(2 + s[:, 4] * 0.3 * size)
        d_ellipse = ellipse_distance(du, dv, half_u, half_v)
        d_rect = box_distance(du, dv, half_u, half_v)
        d_bar = box_distance(du, dv, half_u * 2, col(torch.full_like(s[:, 0], 1.5)))
        kind = col(s[:, 0])
        d = torch.where(kind < 0.4, d_ellipse, torch.where(kind < 0.8, d_rect, d_bar))
        cover = (0.5 - d).clamp(0, 1) * col(0.35 + 0.55 * s[:, 9])
        colour = s[:, 6:9]
        image = image * (1 - cover.unsqueeze(1)) + colour[:, :, None, None] * cover.unsqueeze(1)
    return image.clamp(0, 1)


def render_scene_background(params: dict[str, Tensor], height: int, width: int) -> Tensor:
    """Indoor (wall + floor + a window or picture) or outdoor (sky + ground) backdrop ``(B, 3, H,
    W)``.

    ``params``: ``outdoor`` (B,) bool, ``horizon`` (fraction of height), ``upper, lower`` (B, 3)
    colours, ``frame`` (B, 4) uniforms for the window / picture."""
    ys, xs = pixel_grid(height, width)
    horizon = col(params["horizon"] * height)
    sky_t = (ys / horizon).clamp(0, 1).unsqueeze(1)
    upper = params["upper"][:, :, None, None]
    lower = params["lower"][:, :, None, None]
    outdoor = params["outdoor"].float()[:, None, None, None]
    sky = (
        upper * (1 - 0.35 * sky_t)
        + 0.35 * sky_t * torch.tensor([0.95, 0.95, 0.98])[None, :, None, None]
    )
    wall = upper * (0.92 + 0.08 * sky_t)
    top = outdoor * sky + (1 - outdoor) * wall
    ground_t = ((ys - horizon) / (height - horizon).clamp_min(1)).clamp(0, 1).unsqueeze(1)
    bottom = lower * (0.8 + 0.3 * ground_t)
    below = (0.5 - (horizon - ys)).clamp(0, 1).unsqueeze(1)
    image = top * (1 - below) + bottom * below
    # a window (indoor) or a cloud (outdoor)
    frame = params["frame"]
    du = xs - col(frame[:, 0] * width * 0.8 + width * 0.1)
    dv = ys - col(
        frame[:, 1] * horizon[:, 0, 0].reshape(-1) * 0.5 + horizon[:, 0, 0].reshape(-1) * 0.25
    )
    half_u = col(width * (0.08 + 0.08 * frame[:, 2]))
    half_v = col(height * (0.06 + 0.05 * frame[:, 3]))
    window = (0.5 - box_distance(du, dv, half_u, half_v)).clamp(0, 1).unsqueeze(1)
    cloud = (0.5 - ellipse_distance(du, dv, half_u * 1.4, half_v * 0.7)).clamp(0, 1).unsqueeze(1)
    window_colour = torch.tensor([0.75, 0.85, 0.95])[None, :, None, None]
    image = image * (1 - window * (1 - outdoor)) + window_colour * window * (1 - outdoor)
    image = image * (1 - cloud * outdoor * 0.8) + 0.97 * cloud * outdoor * 0.8
    return image.clamp(0, 1)


def warp_sprites(
    sprites: Tensor, centre_xy: Tensor, scale: Tensor, height: int, width: int
) -> Tensor:
    """Place premultiplied RGBA sprites ``(B, 4, h, w)`` into ``(B, 4, H, W)`` canvases.

    Sprite pixel ``p`` lands at ``centre + (p − sprite_centre)·scale`` (bilinear resampling via an
    affine sampling grid; outside the sprite its edge pixels are repeated).
    """
    batch, _, sprite_h, sprite_w = sprites.shape
    theta = torch.zeros(batch, 2, 3)
    # normalized output coordinate X ∈ [−1, 1] ↔ pixel x = (X + 1)·W/2; sprite normalized
    # coordinate = (x − centre)/(scale·w/2)
    theta[:, 0, 0] = width / (scale * sprite_w)
    theta[:, 0, 2] = (width / 2 - centre_xy[:, 0]) / (scale * sprite_w / 2)
    theta[:, 1, 1] = height / (scale * sprite_h)
    theta[:, 1, 2] = (height / 2 - centre_xy[:, 1]) / (scale * sprite_h / 2)
    grid = F.affine_grid(theta, [batch, 4, height, width], align_corners=False)
    # "border" continues the sprite's edge rows: transparent at the top and sides, the torso at
    # the bottom (so a person's body reaches down to the bottom of the scene)
    return F.grid_sample(sprites, grid, mode="bilinear", padding_mode="border", align_corners=False)
