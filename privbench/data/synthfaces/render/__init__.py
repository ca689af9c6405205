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

from privbench.data.synthfaces.render.backgrounds import (
    render_background,
    render_scene_background,
    render_textures,
    warp_sprites,
)
from privbench.data.synthfaces.render.objects import object_boxes, render_objects
from privbench.data.synthfaces.render.palette import (
    ALL_OBJECT_KINDS,
    BEARD_STYLES,
    COLOUR_NAMES,
    COLOUR_TABLE,
    COLOURS,
    FRAME_COLOURS,
    FRAME_TABLE,
    HAIR_COLOURS,
    HAIR_STYLE_NAMES,
    HAIR_STYLE_TABLE,
    HAIR_STYLES,
    HAIR_TABLE,
    HARD_NEGATIVE,
    HEAD_BOX_BOTTOM,
    HEAD_BOX_HALF_WIDTH_MARGIN,
    HEAD_BOX_TOP,
    IRIS_COLOURS,
    IRIS_TABLE,
    OBJECT_EXTENTS,
    OBJECT_KINDS,
    SKIN_TONES,
    TEXTURE_KINDS,
)
from privbench.data.synthfaces.render.people import head_boxes, render_people
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

__all__ = [
    "ALL_OBJECT_KINDS",
    "BEARD_STYLES",
    "COLOURS",
    "COLOUR_NAMES",
    "COLOUR_TABLE",
    "FRAME_COLOURS",
    "FRAME_TABLE",
    "HAIR_COLOURS",
    "HAIR_STYLES",
    "HAIR_STYLE_NAMES",
    "HAIR_STYLE_TABLE",
    "HAIR_TABLE",
    "HARD_NEGATIVE",
    "HEAD_BOX_BOTTOM",
    "HEAD_BOX_HALF_WIDTH_MARGIN",
    "HEAD_BOX_TOP",
    "IRIS_COLOURS",
    "IRIS_TABLE",
    "OBJECT_EXTENTS",
    "OBJECT_KINDS",
    "SKIN_TONES",
    "TEXTURE_KINDS",
    "Layer",
    "box_distance",
    "col",
    "coverage",
    "ellipse_distance",
    "head_boxes",
    "local_frame",
    "object_boxes",
    "pixel_grid",
    "render_background",
    "render_objects",
    "render_people",
    "render_scene_background",
    "render_textures",
    "rotated_half_extents",
    "sphere_shading",
    "warp_sprites",
]
