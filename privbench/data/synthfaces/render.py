"""Vectorized renderer of the ``synthfaces`` benchmark: people, objects, textures, backgrounds.

Everything here works on whole batches at once: each shape is an (approximate) signed distance
field evaluated on the pixel grid of every image of the batch, turned into an anti-aliased
coverage (a one-pixel linear ramp across the boundary) and composited with the premultiplied
"over" operator (Porter & Duff, SIGGRAPH 1984): ``rgb ← rgb·(1−m) + colour·m``,
``alpha ← alpha·(1−m) + m``. Faces live in a head-centred frame ``(u, v)`` in which the head is an
ellipse of half-height 1 (``v`` grows downwards, like image rows); a per-image similarity
transform (roll, scale, translation) maps pixels into that frame.

Per-identity traits and per-image nuisances are plain dicts of tensors (one row per image); the
sampling of those lives in :mod:`privbench.data.synthfaces`, this module only draws.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

# -- palettes (sRGB-like values in [0, 1]; the benchmark treats them as intensities) -------------
SKIN_TONES = torch.tensor(
    [
        [0.97, 0.82, 0.71],
        [0.91, 0.72, 0.59],
        [0.80, 0.60, 0.45],
        [0.66, 0.46, 0.32],
        [0.55, 0.37, 0.25],
        [0.45, 0.30, 0.20],
    ]
)
HAIR_COLOURS = {
    "black": (0.07, 0.06, 0.06),
    "dark brown": (0.23, 0.14, 0.09),
    "brown": (0.45, 0.29, 0.16),
    "red": (0.64, 0.27, 0.12),
    "blond": (0.90, 0.76, 0.46),
    "grey": (0.70, 0.70, 0.70),
}
IRIS_COLOURS = {
    "brown": (0.45, 0.26, 0.12),
    "dark": (0.14, 0.09, 0.06),
    "blue": (0.22, 0.48, 0.85),
    "green": (0.25, 0.60, 0.28),
    "grey": (0.58, 0.62, 0.68),
    "amber": (0.80, 0.55, 0.10),
}
FRAME_COLOURS = {
    "black": (0.05, 0.05, 0.05),
    "brown": (0.40, 0.22, 0.10),
    "gold": (0.85, 0.68, 0.25),
    "red": (0.80, 0.10, 0.10),
    "blue": (0.10, 0.25, 0.80),
}
#: Named colours of objects and clothes (the names appear in captions).
COLOURS = {
    "red": (0.85, 0.12, 0.10),
    "orange": (0.95, 0.52, 0.08),
    "yellow": (0.95, 0.85, 0.15),
    "green": (0.18, 0.62, 0.20),
    "blue": (0.12, 0.30, 0.85),
    "purple": (0.52, 0.20, 0.68),
    "pink": (0.96, 0.55, 0.70),
    "white": (0.94, 0.94, 0.92),
    "black": (0.08, 0.08, 0.09),
    "grey": (0.50, 0.50, 0.52),
    "brown": (0.45, 0.28, 0.14),
}
COLOUR_NAMES = list(COLOURS)
COLOUR_TABLE = torch.tensor(list(COLOURS.values()))
HAIR_TABLE = torch.tensor(list(HAIR_COLOURS.values()))
IRIS_TABLE = torch.tensor(list(IRIS_COLOURS.values()))
FRAME_TABLE = torch.tensor(list(FRAME_COLOURS.values()))

#: Hair styles: (hairline height h0, hairline curvature, hairline tilt, lowest side hair,
#: highest side hair, volume, back-hair length, curl amplitude).
HAIR_STYLES = {
    "short": (-0.50, 0.55, 0.00, -0.10, -2.0, 0.05, 0.0, 0.0),
    "long": (-0.52, 0.60, 0.00, 0.95, -2.0, 0.09, 1.0, 0.0),
    "bald": (-3.00, 0.00, 0.00, 0.05, -0.45, 0.02, 0.0, 0.0),
    "fringe": (-0.30, 0.05, 0.00, 0.15, -2.0, 0.08, 0.45, 0.0),
    "side-part": (-0.52, 0.45, 0.22, -0.05, -2.0, 0.07, 0.0, 0.0),
    "curly": (-0.45, 0.40, 0.00, 0.10, -2.0, 0.22, 0.25, 1.0),
}
HAIR_STYLE_NAMES = list(HAIR_STYLES)
HAIR_STYLE_TABLE = torch.tensor(list(HAIR_STYLES.values()))
BEARD_STYLES = ("none", "full beard", "goatee", "stubble")

#: Object kinds drawn in scenes and non-face crops, and the hard negatives (non-face crops only).
OBJECT_KINDS = ("ball", "box", "cup", "tree", "car")
HARD_NEGATIVE = "round-blob"
ALL_OBJECT_KINDS = OBJECT_KINDS + (HARD_NEGATIVE,)
#: Tight extents (x_min, x_max, y_min, y_max) of each kind in its own frame (units of its size).
OBJECT_EXTENTS = torch.tensor(
    [
        [-0.50, 0.50, -0.50, 0.50],  # ball
        [-0.45, 0.45, -0.45, 0.50],  # box
        [-0.32, 0.49, -0.42, 0.40],  # cup
        [-0.42, 0.42, -0.52, 0.50],  # tree
        [-0.50, 0.50, -0.32, 0.33],  # car
        [-0.50, 0.50, -0.52, 0.52],  # round blob
    ]
)
TEXTURE_KINDS = ("stripes", "checker", "dots", "bricks", "waves", "noise")
#: Head extents in the face frame (half-width beyond the head ellipse for ears/hair, top, bottom).
HEAD_BOX_HALF_WIDTH_MARGIN = 0.16
HEAD_BOX_TOP = -1.18
HEAD_BOX_BOTTOM = 1.02


# -- primitives ------------------------------------------------------------------------------
def pixel_grid(height: int, width: int) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates ``(ys, xs)``, each ``(H, W)``."""
    ys = torch.arange(height, dtype=torch.float32) + 0.5
    xs = torch.arange(width, dtype=torch.float32) + 0.5
    return ys[:, None].expand(height, width), xs[None, :].expand(height, width)


def col(values: Tensor) -> Tensor:
    """A per-image scalar ``(B,)`` as ``(B, 1, 1)`` for broadcasting against ``(B, H, W)`` fields."""
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
        """Composite ``colour`` ((B, 3) or (B, 3, H, W)) with coverage ``cover`` (B, H, W) over the canvas."""
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
    scale = torch.where(radial > 0.97, torch.sqrt(0.97 / radial.clamp_min(1e-6)), torch.ones_like(radial))
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


# -- people ------------------------------------------------------------------------------------
def render_people(traits: dict[str, Tensor], pose: dict[str, Tensor], height: int, width: int) -> Layer:
    """Draw one person (head, hair, face, neck and shoulders) per image of the batch.

    ``traits``: per-image identity traits (see ``synthfaces.sample_identities``);
    ``pose``: per-image nuisances: ``cx, cy, radius`` (pixels, head half-height), ``roll``
    (radians), ``yaw`` (−1..1, shifts the inner features), ``smile``, ``mouth_open``,
    ``eye_open``, ``gaze``, ``brow_raise``, ``light`` (B, 3), ``ambient``, ``shirt`` (B, 3).
    """
    batch = pose["radius"].shape[0]
    ys, xs = pixel_grid(height, width)
    u, v = local_frame(xs, ys, pose["cx"], pose["cy"], pose["radius"], pose["roll"])
    # the body stays upright while the head rolls on the neck
    body_u, body_v = local_frame(xs, ys, pose["cx"], pose["cy"], pose["radius"], torch.zeros_like(pose["roll"]))
    ppu = col(pose["radius"])  # pixels per face unit
    layer = Layer(batch, height, width)

    skin = traits["skin"]
    hair = traits["hair_colour"]
    a = col(traits["head_width"])
    jaw = col(traits["jaw_taper"])
    style = HAIR_STYLE_TABLE[traits["hair_style"]]  # (B, 8)
    h0, h_curve, h_tilt, side_bottom, side_top, volume, back, curl = (col(style[:, i]) for i in range(8))

    # Inner-feature geometry (identity traits) and expression (nuisances).
    eye_v = col(traits["eye_height"])
    eye_u = col(traits["eye_spacing"])
    eye_w = col(traits["eye_width"])
    eye_h = col(traits["eye_width"] * traits["eye_aspect"])
    nose_tip = eye_v + col(traits["nose_length"])
    mouth_v = nose_tip + col(traits["mouth_gap"])
    yaw = col(pose["yaw"])

    # Hair strands radiate from the crown; beards get a fine stipple.
    strands = 0.93 + 0.07 * torch.sin(34.0 * torch.atan2(u, -(v + 0.35)))
    stipple = 0.92 + 0.08 * torch.sin(61.0 * u) * torch.sin(67.0 * v)

    # 1. shoulders and clothes
    # the torso continues below the shoulders (to the image bottom; sprites replicate their last row)
    d_shoulders = torch.minimum(
        ellipse_distance(body_u, body_v - 2.0, 1.8, 0.85), box_distance(body_u, body_v - 12.0, 1.8, 10.0)
    )
    shirt_shade = (0.75 + 0.25 * (1.7 - body_v).clamp(0, 1)).unsqueeze(1)
    layer.paint(coverage(d_shoulders, ppu), pose["shirt"][:, :, None, None] * shirt_shade)

    # 2. back hair (long styles)
    d_back = ellipse_distance(u, v - (-0.05 + 0.45 * back), a * 1.2 + volume, 1.08 + 0.55 * back)
    hair_rgb = hair[:, :, None, None] * strands.unsqueeze(1)
    layer.paint(coverage(d_back, ppu) * (back > 0).float(), hair_rgb * 0.85)

    # 3. neck
    d_neck = box_distance(body_u, body_v - 1.0, 0.3, 0.45)
    layer.paint(coverage(d_neck, ppu), skin * 0.78)

    # 4. ears
    ear = col(traits["ear_size"])
    uu = u.abs()
    d_ear = ellipse_distance(uu - (a - 0.03), v - (eye_v + 0.12), 0.10 * ear, 0.19 * ear)
    layer.paint(coverage(d_ear, ppu), skin * 0.88)
    d_inner_ear = ellipse_distance(uu - (a - 0.01), v - (eye_v + 0.12), 0.05 * ear, 0.11 * ear)
    layer.paint(coverage(d_inner_ear, ppu) * 0.6, skin * 0.62)

    # 5. head (an ellipse whose lower half narrows towards the chin)
    jaw_scale = 1.0 - jaw * v.clamp(0, 1) ** 2
    d_head = ellipse_distance(u / jaw_scale, v, a, 1.0)
    layer.paint(coverage(d_head, ppu), skin)
    # cheeks
    d_cheek = ellipse_distance(uu - eye_u * 1.1, v - (nose_tip + 0.02), 0.16, 0.11)
    layer.paint(coverage(d_cheek, ppu) * 0.18, torch.tensor([[0.9, 0.35, 0.35]]).expand(batch, 3))

    # 6. beards (group-level style) and moustache (individual)
    beard = col(traits["beard"])
    d_full = torch.maximum(d_head, (mouth_v - 0.16) - v)
    d_sideburn = torch.maximum(torch.maximum(d_head, (eye_v + 0.1) - v), a * 0.78 - uu)
    d_full = torch.minimum(d_full, d_sideburn)
    d_goatee = torch.maximum(d_head, ellipse_distance(u, v - (mouth_v + 0.22), 0.2, 0.3))
    beard_cover = (
        coverage(d_full, ppu) * (beard == 1).float()
        + coverage(d_goatee, ppu) * (beard == 2).float()
        + coverage(d_full, ppu) * 0.3 * (beard == 3).float()
    )
    layer.paint(beard_cover, hair[:, :, None, None] * stipple.unsqueeze(1) * 0.9)

    # 7. hair cap: inside an enlarged head outline, above the hairline, plus hair at the sides
    if bool((curl > 0).any()):
        angle = torch.atan2(v, u)
        wobble = 1.0 + 0.06 * curl * torch.sin(13.0 * angle)
    else:
        wobble = torch.ones_like(u)
    d_outer = ellipse_distance(u / wobble, (v + 0.02) / wobble, a + 0.07 + volume, 1.07 + volume)
    hairline = h0 + h_curve * u * u + h_tilt * u
    d_cap = torch.maximum(d_outer, v - hairline)
    d_side = torch.maximum(torch.maximum(d_outer, v - side_bottom), torch.maximum(-d_head, side_top - v))
    d_hair = torch.minimum(d_cap, d_side)
    layer.paint(coverage(d_hair, ppu), hair_rgb)

    # inner features move with the yaw (the head turning left / right)
    ui = u - 0.16 * yaw
    uui = ui.abs()
    side = torch.sign(ui)

    # 8. eyebrows
    brow_u = eye_u + 0.02
    brow_len = eye_w * 1.3
    brow_v = eye_v - 0.2 - col(traits["brow_gap"]) - col(pose["brow_raise"])
    t = (uui - brow_u) / brow_len
    brow_line = brow_v - col(traits["brow_arch"]) * (1 - t * t) + col(traits["brow_slant"]) * (uui - brow_u)
    brow_half = col(traits["brow_thickness"]) * (1.0 - 0.45 * t * t).clamp_min(0.2)
    d_brow = torch.maximum((v - brow_line).abs() - brow_half, (uui - brow_u).abs() - brow_len)
    brow_colour = torch.minimum(hair * 0.75 + 0.04, skin * 0.45)
    layer.paint(coverage(d_brow, ppu), brow_colour)

    # 9. eyes: sclera, iris, pupil, highlight, upper lid line
    tilt = col(traits["eye_tilt"])
    du, dv = uui - eye_u, v - eye_v
    eu = du * torch.cos(tilt) - dv * torch.sin(tilt)
    ev = du * torch.sin(tilt) + dv * torch.cos(tilt)
    openness = col(pose["eye_open"])
    d_sclera = ellipse_distance(eu, ev, eye_w, eye_h * openness + 0.004)
    sclera = coverage(d_sclera, ppu)
    layer.paint(sclera, torch.tensor([[0.94, 0.92, 0.88]]).expand(batch, 3))
    iris_r = eye_h * 0.95
    iris_u = eye_u + col(pose["gaze"]) * eye_w * 0.35 * side
    d_iris = torch.sqrt((uui - iris_u) ** 2 + dv**2) - iris_r
    layer.paint(coverage(d_iris, ppu) * sclera, traits["iris"])
    d_pupil = torch.sqrt((uui - iris_u) ** 2 + dv**2) - iris_r * 0.45
    layer.paint(coverage(d_pupil, ppu) * sclera, torch.zeros(batch, 3) + 0.03)
    d_glint = torch.sqrt((ui - (side * iris_u - iris_r * 0.35)) ** 2 + (dv + iris_r * 0.35) ** 2) - iris_r * 0.22
    layer.paint(coverage(d_glint, ppu) * sclera * 0.8, torch.ones(batch, 3))
    d_lid = torch.maximum(d_sclera.abs() - 0.022, ev - 0.3 * eye_h * openness)
    layer.paint(coverage(d_lid, ppu), hair * 0.35 + 0.03)

    # 10. nose: shadowed side, base, nostrils, tip highlight
    un = u - 0.26 * yaw
    nose_w = col(traits["nose_width"])
    bridge_top = eye_v + 0.08
    shadow_side = -torch.sign(col(pose["light"][:, 0]) + 1e-3)
    d_ridge = torch.maximum(
        (un - shadow_side * nose_w * 0.55).abs() - 0.035, (v - (bridge_top + nose_tip) / 2).abs() - (nose_tip - bridge_top) / 2
    )
    layer.paint(coverage(d_ridge, ppu) * 0.45, skin * 0.62)
    d_base = ellipse_distance(un, v - nose_tip, nose_w, 0.075)
    layer.paint(coverage(d_base, ppu) * 0.55, skin * 0.8)
    d_nostril = ellipse_distance(un.abs() - nose_w * 0.5, v - (nose_tip + 0.035), 0.032 + 0.22 * nose_w, 0.03)
    layer.paint(coverage(d_nostril, ppu) * 0.85, skin * 0.3)
    d_tip = ellipse_distance(un, v - (nose_tip - 0.045), 0.05, 0.04)
    layer.paint(coverage(d_tip, ppu) * 0.3, torch.ones(batch, 3))

    # 11. moustache (individual trait) above the upper lip
    um = u - 0.18 * yaw
    mouth_w = col(traits["mouth_width"])
    lip = col(traits["lip_thickness"])
    smile = col(pose["smile"])
    opening = col(pose["mouth_open"]) * 0.11
    across = (um / mouth_w) ** 2
    centre = mouth_v - smile * 0.09 * (across - 0.35)
    taper = (1.0 - across).clamp_min(0).sqrt()
    d_moustache = torch.maximum(
        (v - (centre - opening / 2 - lip - 0.045)).abs() - 0.035, um.abs() - mouth_w * 1.05
    )
    layer.paint(coverage(d_moustache, ppu) * col(traits["moustache"]), hair[:, :, None, None] * stipple.unsqueeze(1))

    # 12. mouth: upper and lower lip, opening with teeth
    lip_colour = skin * torch.tensor([[1.0, 0.58, 0.58]]) * col(traits["lip_tint"]).reshape(-1, 1)
    d_upper = torch.maximum((v - (centre - opening / 2 - lip * taper / 2)).abs() - lip * taper / 2, um.abs() - mouth_w)
    d_lower = torch.maximum(
        (v - (centre + opening / 2 + 0.65 * lip * taper)).abs() - 0.65 * lip * taper, um.abs() - mouth_w
    )
    layer.paint(coverage(torch.minimum(d_upper, d_lower), ppu), lip_colour)
    d_gap = torch.maximum((v - centre).abs() - (opening / 2 + 0.012) * taper.clamp_min(0.3), um.abs() - mouth_w * 0.97)
    layer.paint(coverage(d_gap, ppu), torch.tensor([[0.22, 0.06, 0.06]]).expand(batch, 3))
    d_teeth = torch.maximum((v - (centre - opening * 0.28)).abs() - opening * 0.2, um.abs() - mouth_w * 0.6)
    layer.paint(coverage(d_teeth, ppu) * (col(pose["mouth_open"]) > 0.35).float(), torch.zeros(batch, 3) + 0.9)

    # 13. mole
    d_mole = torch.sqrt((u - col(traits["mole_u"])) ** 2 + (v - col(traits["mole_v"])) ** 2) - 0.04
    layer.paint(coverage(d_mole, ppu) * col(traits["mole"]), torch.tensor([[0.25, 0.14, 0.09]]).expand(batch, 3))

    # 14. glasses: two frames (round or rectangular), bridge, temples, a light tint
    glasses = col(traits["glasses"])
    power = torch.where(glasses == 2, torch.full_like(glasses, 4.0), torch.full_like(glasses, 2.0))
    frame_u = eye_w * 1.5 + 0.03
    frame_v = torch.maximum(eye_h * 2.0, torch.full_like(eye_h, 0.15))
    gu, gv = (uui - eye_u).abs() / frame_u, (v - eye_v - 0.01).abs() / frame_v
    q = (gu**power + gv**power) ** (1.0 / power)
    d_frame = (q - 1.0).abs() * torch.minimum(frame_u, frame_v) - 0.022
    d_bridge = torch.maximum((v - (eye_v - 0.03)).abs() - 0.02, uui - (eye_u - frame_u * 0.92))
    d_temple = torch.maximum(
        (v - (eye_v - 0.05)).abs() - 0.02, torch.maximum((eye_u + frame_u * 0.95) - uui, uui - (a + 0.02))
    )
    has_glasses = (glasses > 0).float()
    layer.paint((q < 1).float() * 0.14 * has_glasses, torch.tensor([[0.55, 0.65, 0.75]]).expand(batch, 3))
    frames = coverage(torch.minimum(torch.minimum(d_frame, d_bridge), d_temple), ppu) * has_glasses
    layer.paint(frames, traits["frame"])

    # 15. lighting: a head-shaped Lambertian shading applied to the whole person
    shade = sphere_shading(u / a, v, pose["light"], pose["ambient"]).unsqueeze(1)
    layer.rgb.mul_(shade)
    return layer


def head_boxes(traits: dict[str, Tensor], pose: dict[str, Tensor]) -> Tensor:
    """Axis-aligned boxes ``(B, 4)`` xyxy (pixels) around the head (hair, ears), given the pose."""
    half_w = (traits["head_width"] + HEAD_BOX_HALF_WIDTH_MARGIN) * pose["radius"]
    top, bottom = HEAD_BOX_TOP * pose["radius"], HEAD_BOX_BOTTOM * pose["radius"]
    half_h = (bottom - top) / 2
    centre_v = (top + bottom) / 2  # offset of the box centre below the head centre, in pixels
    cos, sin = torch.cos(pose["roll"]), torch.sin(pose["roll"])
    cx = pose["cx"] - sin * centre_v
    cy = pose["cy"] + cos * centre_v
    ext_w, ext_h = rotated_half_extents(half_w, half_h, pose["roll"])
    return torch.stack([cx - ext_w, cy - ext_h, cx + ext_w, cy + ext_h], dim=1)


# -- objects -----------------------------------------------------------------------------------
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
        torch.exp(-(((x + 0.5 * radius * col(p["light"][:, 0])) ** 2 + (y + 0.5 * radius * col(p["light"][:, 1])) ** 2) / 0.006))
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
    handle = torch.maximum((torch.sqrt((x - 0.3) ** 2 + (y - 0.02) ** 2) - 0.15).abs() - 0.045, 0.27 - x)
    layer.paint(coverage(handle, ppu), colour * 0.8)
    cylinder = (0.62 + 0.38 * torch.cos((x / 0.32).clamp(-1, 1) * 1.4 - col(p["light"][:, 0]))).unsqueeze(1)
    layer.paint(coverage(body, ppu), p["colour"][:, :, None, None] * cylinder)
    rim = ellipse_distance(x, y + 0.35, 0.32, 0.07)
    layer.paint(coverage(rim, ppu), colour * 1.05 + 0.05)
    inside = ellipse_distance(x, y + 0.345, 0.27, 0.05)
    layer.paint(coverage(inside, ppu), torch.tensor([[0.25, 0.14, 0.08]]).expand(colour.shape[0], 3))


def _paint_tree(layer: Layer, x: Tensor, y: Tensor, ppu: Tensor, p: dict[str, Tensor]) -> None:
    batch = x.shape[0]
    trunk = box_distance(x, y - 0.3, 0.07, 0.2)
    layer.paint(coverage(trunk, ppu), torch.tensor([[0.38, 0.24, 0.12]]).expand(batch, 3))
    canopy = torch.minimum(
        torch.sqrt(x * x + (y + 0.2) ** 2) - 0.31,
        torch.minimum(
            torch.sqrt((x + 0.19) ** 2 + (y - 0.02) ** 2) - 0.23, torch.sqrt((x - 0.19) ** 2 + (y - 0.02) ** 2) - 0.23
        ),
    )
    leaves = (0.8 + 0.2 * torch.sin(31 * x + 7 * torch.sin(17 * y)) * torch.sin(29 * y)).unsqueeze(1)
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
        torch.maximum((x + 0.05).abs() - window_half, (y + 0.165).abs() - 0.085), 0.015 - (x + 0.05).abs()
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


def _paint_round_blob(layer: Layer, x: Tensor, y: Tensor, ppu: Tensor, p: dict[str, Tensor]) -> None:
    """Hard negative: a round, skin-coloured, shaded blob (egg, fruit, ball) without facial structure."""
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
    layer.paint(coverage(stem, ppu) * col((aux[:, 7] > 0.6).float()), torch.tensor([[0.3, 0.22, 0.1]]).expand(x.shape[0], 3))


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


# -- textures and backgrounds --------------------------------------------------------------------
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
    noise = F.interpolate(params["noise"], size=(height, width), mode="bicubic", align_corners=False)[:, 0]
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
        2 * math.pi * (col(wave[:, 0]) * 3 * xs / size + col(wave[:, 1]) * 3 * ys / size) + col(wave[:, 2]) * 6
    )
    image = params["c1"][:, :, None, None] * (1 - t.unsqueeze(1)) + params["c2"][:, :, None, None] * t.unsqueeze(1)
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
    """Indoor (wall + floor + a window or picture) or outdoor (sky + ground) backdrop ``(B, 3, H, W)``.

    ``params``: ``outdoor`` (B,) bool, ``horizon`` (fraction of height), ``upper, lower`` (B, 3)
    colours, ``frame`` (B, 4) uniforms for the window / picture."""
    ys, xs = pixel_grid(height, width)
    horizon = col(params["horizon"] * height)
    sky_t = (ys / horizon).clamp(0, 1).unsqueeze(1)
    upper = params["upper"][:, :, None, None]
    lower = params["lower"][:, :, None, None]
    outdoor = params["outdoor"].float()[:, None, None, None]
    sky = upper * (1 - 0.35 * sky_t) + 0.35 * sky_t * torch.tensor([0.95, 0.95, 0.98])[None, :, None, None]
    wall = upper * (0.92 + 0.08 * sky_t)
    top = outdoor * sky + (1 - outdoor) * wall
    ground_t = ((ys - horizon) / (height - horizon).clamp_min(1)).clamp(0, 1).unsqueeze(1)
    bottom = lower * (0.8 + 0.3 * ground_t)
    below = (0.5 - (horizon - ys)).clamp(0, 1).unsqueeze(1)
    image = top * (1 - below) + bottom * below
    # a window (indoor) or a cloud (outdoor)
    frame = params["frame"]
    du = xs - col(frame[:, 0] * width * 0.8 + width * 0.1)
    dv = ys - col(frame[:, 1] * horizon[:, 0, 0].reshape(-1) * 0.5 + horizon[:, 0, 0].reshape(-1) * 0.25)
    half_u = col(width * (0.08 + 0.08 * frame[:, 2]))
    half_v = col(height * (0.06 + 0.05 * frame[:, 3]))
    window = (0.5 - box_distance(du, dv, half_u, half_v)).clamp(0, 1).unsqueeze(1)
    cloud = (0.5 - ellipse_distance(du, dv, half_u * 1.4, half_v * 0.7)).clamp(0, 1).unsqueeze(1)
    window_colour = torch.tensor([0.75, 0.85, 0.95])[None, :, None, None]
    image = image * (1 - window * (1 - outdoor)) + window_colour * window * (1 - outdoor)
    image = image * (1 - cloud * outdoor * 0.8) + 0.97 * cloud * outdoor * 0.8
    return image.clamp(0, 1)


def warp_sprites(sprites: Tensor, centre_xy: Tensor, scale: Tensor, height: int, width: int) -> Tensor:
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
