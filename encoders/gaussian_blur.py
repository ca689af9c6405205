"""Gaussian blur: the classic optical privacy baseline (CAnOPIC §4: σ = 8 px)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field

from privbench.api.encoder import Encoder, EncoderConfig
from privbench.api.registry import register_encoder
from privbench.nn.convolution import replicate_pad


class GaussianBlurConfig(EncoderConfig):
    sigma_px: float = Field(
        8.0, gt=0, le=256, description="standard deviation of the blur kernel in pixels"
    )
    truncate_sigmas: float = Field(
        3.0, gt=0, le=10, description="kernel half-width in units of sigma"
    )


def gaussian_kernel_1d(
    sigma_px: float, truncate_sigmas: float = 3.0, dtype=torch.float32
) -> torch.Tensor:
    """Normalized 1-D Gaussian of half-width ceil(truncate·σ) (odd length 2r+1)."""
    radius = max(1, math.ceil(truncate_sigmas * sigma_px))
    positions = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (positions / sigma_px) ** 2)
    return (kernel / kernel.sum()).to(dtype)


@register_encoder("gaussian-blur")
class GaussianBlurEncoder(Encoder):
    """Convolution with an isotropic Gaussian PSF, kernel ±3σ, replicate padding.

    The 2-D Gaussian is separable, so two 1-D passes give exactly the 2-D convolution at
    O(k) instead of O(k²) cost per pixel.
    """

    Config = GaussianBlurConfig

    def __init__(self, **config):
        super().__init__(**config)
        self.register_buffer(
            "kernel_1d",
            gaussian_kernel_1d(self.config.sigma_px, self.config.truncate_sigmas),
            persistent=False,
        )

    def measure(self, images: torch.Tensor) -> torch.Tensor:
        kernel = self.kernel_1d.to(images.dtype)
        radius = kernel.numel() // 2
        channels = images.shape[1]
        padded = replicate_pad(images, radius, radius, radius, radius)
        horizontal = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
        vertical = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
        out = F.conv2d(padded, horizontal, groups=channels)
        return F.conv2d(out, vertical, groups=channels)

    def describe(self) -> dict:
        return {
            "optics": "Gaussian point-spread function (defocus-like blur)",
            "sigma_px": self.config.sigma_px,
            "kernel_px": 2 * (self.kernel_1d.numel() // 2) + 1,
            "padding": "replicate",
        }
