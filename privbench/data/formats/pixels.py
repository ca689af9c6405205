"""Decoded pictures to privbench's pixels: 8-bit RGB from whatever mode a file opens in."""

from __future__ import annotations

import numpy as np

#: Single-channel modes with more than 8 bits per pixel, and the value their white is.
_DEEP_MODES = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535}


def to_rgb8(picture):
    """``picture`` as 8-bit RGB. Pillow's ``convert("RGB")`` clips a 16-bit grey image (opened
    as mode ``I;16`` or ``I``) at 255, which turns almost every pixel white; such an image is
    scaled from its bit depth instead (a 32-bit ``I`` image whose values fit 16 bits is read as
    16-bit, one beyond that as 32-bit; ``F`` as intensities in [0, 1])."""
    from PIL import Image

    if picture.mode in _DEEP_MODES or picture.mode == "F":
        values = np.asarray(picture, dtype=np.float64)
        if picture.mode == "F":
            white = 1.0
        else:
            white = _DEEP_MODES[picture.mode]
            if picture.mode == "I" and values.size and values.max() > white:
                white = 2.0**32 - 1
        grey = np.clip(np.round(values / white * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    return picture.convert("RGB")
