"""Low-resolution sensor (2PSC baseline after Ryoo et al.): area downsampling to 16×16."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from privbench.api.encoder import Encoder, EncoderConfig
from privbench.api.registry import register_encoder


class LowResConfig(EncoderConfig):
    size_px: int = Field(
        16, ge=1, le=1024, description="side of the low-resolution sensor in pixels"
    )
    upsample: bool = Field(
        False, description="bilinearly upsample the measurement back to the input size"
    )


@register_encoder("low-res")
class LowResEncoder(Encoder):
    """Each sensor pixel integrates the light falling on its area (area interpolation), so the
    measurement is what an extreme low-resolution camera records."""

    Config = LowResConfig

    def output_shape(self, input_shape):
        channels, height, width = input_shape
        if self.config.upsample:
            return (channels, height, width)
        return (channels, self.config.size_px, self.config.size_px)

    def measure(self, images: torch.Tensor) -> torch.Tensor:
        size = self.config.size_px
        small = F.interpolate(images, size=(size, size), mode="area")
        if not self.config.upsample:
            return small
        return F.interpolate(
            small, size=images.shape[-2:], mode="bilinear", align_corners=False
        ).clamp_(0, 1)

    def describe(self) -> dict:
        return {
            "optics": "low-resolution sensor (area integration)",
            "sensor_px": f"{self.config.size_px}x{self.config.size_px}",
            "upsampled": self.config.upsample,
        }
