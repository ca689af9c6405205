"""Turning measurements and diagnostics into pictures (leaderboard samples, `privbench show`)."""

from __future__ import annotations

import math

import numpy as np
import torch


def measurement_to_rgb(measurement: torch.Tensor) -> np.ndarray:
    """A ``(C, H, W)`` measurement as an RGB ``(H', W', 3)`` float image in [0, 1] for display.

    Three channels are shown as RGB; a bank of RGB images (C = 3k, e.g. CAnOPIC's 4 filters →
    12 channels) is tiled side by side; any other channel count is shown channel by channel in
    grey. Each picture is min-max stretched so that low-contrast measurements remain visible.
    """
    m = measurement.detach().float().cpu()
    if m.dim() != 3:
        raise ValueError(f"expected a (C, H, W) measurement, got shape {tuple(m.shape)}")
    channels = m.shape[0]
    if channels % 3 == 0:
        tiles = [m[i : i + 3] for i in range(0, channels, 3)]
    else:
        tiles = [m[i : i + 1].expand(3, -1, -1) for i in range(channels)]
    stretched = []
    for tile in tiles:
        low, high = float(tile.min()), float(tile.max())
        scale = high - low if high > low else 1.0
        stretched.append(((tile - low) / scale).permute(1, 2, 0).numpy())
    columns = math.ceil(math.sqrt(len(stretched)))
    rows = math.ceil(len(stretched) / columns)
    height, width = stretched[0].shape[:2]
    canvas = np.ones(
        (rows * height + (rows - 1), columns * width + (columns - 1), 3), dtype=np.float32
    )
    for index, tile in enumerate(stretched):
        r, c = divmod(index, columns)
        canvas[
            r * (height + 1) : r * (height + 1) + height, c * (width + 1) : c * (width + 1) + width
        ] = tile
    return canvas


def save_rgb_png(image: np.ndarray, path, upscale_to: int = 128) -> None:
    """Save an (H, W, 3) [0, 1] image as PNG, nearest-upscaled so small measurements stay
    visible."""
    from PIL import Image

    array = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    picture = Image.fromarray(array)
    factor = max(1, upscale_to // max(picture.size))
    if factor > 1:
        picture = picture.resize((picture.width * factor, picture.height * factor), Image.NEAREST)
    picture.save(path)


def sample_strip(pictures: list[np.ndarray], tile_px: int = 64, gap_px: int = 2) -> np.ndarray:
    """Pictures side by side, each scaled (nearest neighbour) to ``tile_px`` × ``tile_px`` with a
    white gap between them: every strip of as many pictures has the same size, so rows of
    different encoders line up on a page."""
    from PIL import Image

    tiles = []
    for picture in pictures:
        array = (np.clip(picture, 0, 1) * 255).round().astype(np.uint8)
        resized = Image.fromarray(array).resize((tile_px, tile_px), Image.NEAREST)
        tiles.append(np.asarray(resized, dtype=np.float32) / 255.0)
    width = len(tiles) * tile_px + (len(tiles) - 1) * gap_px
    strip = np.ones((tile_px, width, 3), dtype=np.float32)
    for index, tile in enumerate(tiles):
        start = index * (tile_px + gap_px)
        strip[:, start : start + tile_px] = tile
    return strip
