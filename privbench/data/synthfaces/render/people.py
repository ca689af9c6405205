"""People: head, hair, face, neck and shoulders in a head-centred frame, and their head boxes."""

from __future__ import annotations

import torch

from privbench.data.synthfaces.render.palette import (
    HAIR_STYLE_TABLE,
    HEAD_BOX_BOTTOM,
    HEAD_BOX_HALF_WIDTH_MARGIN,
    HEAD_BOX_TOP,
)
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


def render_people(
    traits: dict[str, Tensor], pose: dict[str, Tensor], height: int, width: int
) -> Layer:
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
    body_u, body_v = local_frame(
        xs, ys, pose["cx"], pose["cy"], pose["radius"], torch.zeros_like(pose["roll"])
    )
    ppu = col(pose["radius"])  # pixels per face unit
    layer = Layer(batch, height, width)

    skin = traits["skin"]
    hair = traits["hair_colour"]
    a = col(traits["head_width"])
    jaw = col(traits["jaw_taper"])
    style = HAIR_STYLE_TABLE[traits["hair_style"]]  # (B, 8)
    h0, h_curve, h_tilt, side_bottom, side_top, volume, back, curl = (
        col(style[:, i]) for i in range(8)
    )

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
    # the torso continues below the shoulders (to the image bottom; sprites replicate their last
    # row)
    d_shoulders = torch.minimum(
        ellipse_distance(body_u, body_v - 2.0, 1.8, 0.85),
        box_distance(body_u, body_v - 12.0, 1.8, 10.0),
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
    d_side = torch.maximum(
        torch.maximum(d_outer, v - side_bottom), torch.maximum(-d_head, side_top - v)
    )
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
    brow_line = (
        brow_v - col(traits["brow_arch"]) * (1 - t * t) + col(traits["brow_slant"]) * (uui - brow_u)
    )
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
    d_glint = (
        torch.sqrt((ui - (side * iris_u - iris_r * 0.35)) ** 2 + (dv + iris_r * 0.35) ** 2)
        - iris_r * 0.22
    )
    layer.paint(coverage(d_glint, ppu) * sclera * 0.8, torch.ones(batch, 3))
    d_lid = torch.maximum(d_sclera.abs() - 0.022, ev - 0.3 * eye_h * openness)
    layer.paint(coverage(d_lid, ppu), hair * 0.35 + 0.03)

    # 10. nose: shadowed side, base, nostrils, tip highlight
    un = u - 0.26 * yaw
    nose_w = col(traits["nose_width"])
    bridge_top = eye_v + 0.08
    shadow_side = -torch.sign(col(pose["light"][:, 0]) + 1e-3)
    d_ridge = torch.maximum(
        (un - shadow_side * nose_w * 0.55).abs() - 0.035,
        (v - (bridge_top + nose_tip) / 2).abs() - (nose_tip - bridge_top) / 2,
    )
    layer.paint(coverage(d_ridge, ppu) * 0.45, skin * 0.62)
    d_base = ellipse_distance(un, v - nose_tip, nose_w, 0.075)
    layer.paint(coverage(d_base, ppu) * 0.55, skin * 0.8)
    d_nostril = ellipse_distance(
        un.abs() - nose_w * 0.5, v - (nose_tip + 0.035), 0.032 + 0.22 * nose_w, 0.03
    )
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
    layer.paint(
        coverage(d_moustache, ppu) * col(traits["moustache"]),
        hair[:, :, None, None] * stipple.unsqueeze(1),
    )

    # 12. mouth: upper and lower lip, opening with teeth
    lip_colour = skin * torch.tensor([[1.0, 0.58, 0.58]]) * col(traits["lip_tint"]).reshape(-1, 1)
    d_upper = torch.maximum(
        (v - (centre - opening / 2 - lip * taper / 2)).abs() - lip * taper / 2, um.abs() - mouth_w
    )
    d_lower = torch.maximum(
        (v - (centre + opening / 2 + 0.65 * lip * taper)).abs() - 0.65 * lip * taper,
        um.abs() - mouth_w,
    )
    layer.paint(coverage(torch.minimum(d_upper, d_lower), ppu), lip_colour)
    d_gap = torch.maximum(
        (v - centre).abs() - (opening / 2 + 0.012) * taper.clamp_min(0.3), um.abs() - mouth_w * 0.97
    )
    layer.paint(coverage(d_gap, ppu), torch.tensor([[0.22, 0.06, 0.06]]).expand(batch, 3))
    d_teeth = torch.maximum(
        (v - (centre - opening * 0.28)).abs() - opening * 0.2, um.abs() - mouth_w * 0.6
    )
    layer.paint(
        coverage(d_teeth, ppu) * (col(pose["mouth_open"]) > 0.35).float(),
        torch.zeros(batch, 3) + 0.9,
    )

    # 13. mole
    d_mole = torch.sqrt((u - col(traits["mole_u"])) ** 2 + (v - col(traits["mole_v"])) ** 2) - 0.04
    layer.paint(
        coverage(d_mole, ppu) * col(traits["mole"]),
        torch.tensor([[0.25, 0.14, 0.09]]).expand(batch, 3),
    )

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
        (v - (eye_v - 0.05)).abs() - 0.02,
        torch.maximum((eye_u + frame_u * 0.95) - uui, uui - (a + 0.02)),
    )
    has_glasses = (glasses > 0).float()
    layer.paint(
        (q < 1).float() * 0.14 * has_glasses, torch.tensor([[0.55, 0.65, 0.75]]).expand(batch, 3)
    )
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
