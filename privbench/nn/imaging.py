"""Comparing a measurement with the scene it came from (distortion terms, reconstruction metrics).

Measurements may be smaller than the scene (pooling, low resolution), carry a bank of k RGB
images (3k channels), or be quantized levels instead of intensities. One rule brings any of them
onto the scene's grid, so every privbench number that compares X and Y uses the same geometry:

1. a bank of k RGB images (3k channels) is averaged into one RGB image;
2. a smaller or larger spatial grid is resampled bilinearly to the scene's size;
3. quantized levels (values above 1.5, i.e. not intensities in [0, 1]) are divided by their
   maximum so that they are compared as intensities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from privbench.api.errors import InputError


def to_common_grid(clean: torch.Tensor, measurement: torch.Tensor) -> torch.Tensor:
    """``measurement`` (B, C', h, w) brought onto ``clean``'s (B, C, H, W) grid (rule above)."""
    y = measurement
    channels = clean.shape[1]
    if y.shape[1] != channels:
        if y.shape[1] % channels:
            raise InputError(
                f"Cannot compare a {y.shape[1]}-channel measurement with a {channels}-channel "
                f"scene (needs a multiple of {channels} channels)."
            )
        y = y.reshape(y.shape[0], -1, channels, *y.shape[-2:]).mean(dim=1)
    if y.shape[-2:] != clean.shape[-2:]:
        y = F.interpolate(y, size=clean.shape[-2:], mode="bilinear", align_corners=False)
    peak = float(y.detach().max()) if y.numel() else 1.0
    if peak > 1.5:
        y = y / peak
    return y


def psnr(reference: torch.Tensor, estimate: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image peak signal-to-noise ratio in dB (B,)."""
    mse = ((reference - estimate) ** 2).flatten(1).mean(dim=1).clamp_min(1e-12)
    return 10 * torch.log10(data_range**2 / mse)
