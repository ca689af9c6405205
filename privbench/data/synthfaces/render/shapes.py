"""Drawing primitives: pixel grids, signed distances, anti-aliased coverage, the RGBA layer."""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def pixel_grid(height: int, width: int) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates ``(ys, xs)``, each ``(H, W)``."""
    ys = torch.arange(height, dtype=torch.float32) + 0.5
    xs = torch.arange(width, dtype=torch.float32) + 0.5
    return ys[:, None].expand(height, width), xs[None, :].expand(height, width)


def col(values: Tensor) -> Tensor:
    """A per-image scalar ``(B,)`` as ``(B, 1, 1)`` for broadcasting against ``(B, H, W)``
    fields."""
    return values.reshape(-1, 1, 1)


def ellipse_distance(du: Tensor, dv: Tensor, half_u, half_v) -> Tensor:
    """Approximate signed distance to an axis-aligned ellipse: k0 (k0 − 1) / k1 (Quilez's bound),
    with k0 = |(du/a, dv/b)| and k1 = |(du/a², dv/b²)|; exact on the boundary's normal direction."""
    k0 = torch.sqrt((du / half_u) ** 2 + (dv / half_v) ** 2)
    k1 = torch.sqrt((du / half_u**2) ** 2 + (dv / half_v**2) ** 2)
    return k0 * (k0 - 1.0) / (k1 + 1e-6)


def box_distance(du: Tensor, dv: Tensor, half_u, half_v) -> Tensor:
    """Signed distance to an axis-aligned rectangle (the Chebyshev form: max of the two slabs)."""
    return torch.maximum(du.abs() - half_u, dv.abs() - half_v)


def coverage(distance: Tensor, pixels_per_unit: Tensor) -> Tensor:
    """Anti-aliased coverage of the inside (distance < 0): a one-pixel linear ramp."""
    return (0.5 - distance * pixels_per_unit).clamp_(0.0, 1.0)


class Layer:
    """A premultiplied RGBA canvas ``(B, 3, H, W)`` + ``(B, 1, H, W)`` painted back to front."""

    def __init__(self, batch: int, height: int, width: int):
        self.rgb = torch.zeros(batch, 3, height, width)
        self.alpha = torch.zeros(batch, 1, height, width)

    def paint(self, cover: Tensor, colour: Tensor) -> None:
        """Composite ``colour`` ((B, 3) or (B, 3, H, W)) with coverage ``cover`` (B, H, W) over the
        canvas."""
        mask = cover.unsqueeze(1)
        if colour.dim() == 2:
            colour = colour[:, :, None, None]
        self.rgb.mul_(1.0 - mask).add_(colour * mask)
        self.alpha.mul_(1.0 - mask).add_(mask)

    def over(self, background: Tensor) -> Tensor:
        """The canvas composited over an opaque background ``(B, 3, H, W)``."""
        return background * (1.0 - self.alpha) + self.rgb


def sphere_shading(nx: Tensor, ny: Tensor, light: Tensor, ambient: Tensor) -> Tensor:
    """Lambertian shading ambient + (1 − ambient)·max(0, n·l) of a sphere-like surface.

    ``nx, ny`` are the surface normal's image-plane components (|n_xy| ≤ 1 inside the silhouette,
    clamped outside), ``light`` is ``(B, 3)`` unit directions, ``ambient`` ``(B,)``.
    """
    radial = nx * nx + ny * ny
    scale = torch.where(
        radial > 0.97, torch.sqrt(0.97 / radial.clamp_min(1e-6)), torch.ones_like(radial)
    )
    nx, ny = nx * scale, ny * scale
    nz = torch.sqrt((1.0 - nx * nx - ny * ny).clamp_min(0.0))
    lambert = (nx * col(light[:, 0]) + ny * col(light[:, 1]) + nz * col(light[:, 2])).clamp_min(0.0)
    return col(ambient) + (1.0 - col(ambient)) * lambert


def rotated_half_extents(half_w: Tensor, half_h: Tensor, angle: Tensor) -> tuple[Tensor, Tensor]:
    """Half width and height of the axis-aligned box around a rectangle rotated by ``angle``."""
    cos, sin = torch.cos(angle).abs(), torch.sin(angle).abs()
    return cos * half_w + sin * half_h, sin * half_w + cos * half_h


def local_frame(xs: Tensor, ys: Tensor, cx: Tensor, cy: Tensor, scale: Tensor, angle: Tensor):
    """Pixel grid → object frame: translate by the centre, rotate by −angle, divide by scale."""
    dx = xs - col(cx)
    dy = ys - col(cy)
    cos, sin = col(torch.cos(angle)), col(torch.sin(angle))
    return (cos * dx + sin * dy) / col(scale), (-sin * dx + cos * dy) / col(scale)
