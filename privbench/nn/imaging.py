"""Comparing a measurement with the scene it came from (distortion terms, reconstruction metrics).

Measurements may be smaller than the scene (pooling, low resolution), carry a bank of k RGB
images (3k channels), or be quantized levels instead of intensities. One rule brings any of them
onto the scene's grid, so every privbench number that compares X and Y uses the same geometry:

1. a bank of k RGB images (3k channels) is averaged into one RGB image;
2. a smaller or larger spatial grid is resampled bilinearly to the scene's size;
3. values are mapped from the encoder's declared range
   (:meth:`~privbench.api.encoder.Encoder.measurement_range`: [0, 1] for intensities,
   [0, N − 1] for N quantized levels) onto [0, 1], so that they are compared as intensities.

The mapping depends only on the measurement itself and that declared range, never on the other
images of a batch: a measurement's PSNR, the off-the-shelf attacker's view and the 2PSC
distortion term are the same whichever images it is evaluated with.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from privbench.api.errors import InputError

#: The value range of a measurement of intensities, the default of every encoder.
INTENSITY_RANGE: tuple[float, float] = (0.0, 1.0)


def to_common_grid(
    clean: torch.Tensor,
    measurement: torch.Tensor,
    value_range: tuple[float, float] = INTENSITY_RANGE,
) -> torch.Tensor:
    """``measurement`` (B, C', h, w) brought onto ``clean``'s (B, C, H, W) grid (rule above);
    ``value_range``: the encoder's declared measurement range, mapped onto [0, 1]."""
    low, high = (float(v) for v in value_range)
    if not high > low:
        raise InputError(
            f"a measurement range needs low < high; got {tuple(value_range)} (an encoder's "
            "measurement_range(), e.g. (0.0, 1.0) for intensities)."
        )
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
    if (low, high) != INTENSITY_RANGE:
        y = (y - low) / (high - low)
    return y


#: The PSNR of two identical images: the squared error is floored at 1e-12 (of a unit range),
#: so "identical" reads as 10·log10(1 / 1e-12) = 120 dB, a finite number a row can store; the
#: leaderboard shows it as "identical".
PSNR_IDENTICAL_DB = 120.0


def psnr(reference: torch.Tensor, estimate: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image peak signal-to-noise ratio in dB (B,), at most :data:`PSNR_IDENTICAL_DB`."""
    mse = ((reference - estimate) ** 2).flatten(1).mean(dim=1).clamp_min(1e-12)
    return 10 * torch.log10(data_range**2 / mse)
