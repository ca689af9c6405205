"""Palettes, styles and extents of the synthfaces renderer (sRGB-like values in [0, 1])."""

from __future__ import annotations

import torch

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
