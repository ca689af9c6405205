"""Pixelation: each non-overlapping k×k patch replaced by its mean (CAnOPIC §4 baseline, k = 8)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from privbench.api.encoder import Encoder, EncoderConfig
from privbench.api.registry import register_encoder


class PixelateConfig(EncoderConfig):
    block_px: int = Field(8, ge=1, le=64, description="side of the averaged square patch in pixels")
    keep_size: bool = Field(
        True,
        description="repeat each patch mean over its patch (same size as the input) or return "
        "the block grid",
    )


@register_encoder("pixelate")
class PixelateEncoder(Encoder):
    """Block averaging: a sensor whose pixels are k× larger. Edge blocks that do not fill a whole
    k×k patch average what they cover (``ceil_mode``), so any input size ≥ 64 works."""

    Config = PixelateConfig

    def output_shape(self, input_shape):
        channels, height, width = input_shape
        if self.config.keep_size:
            return (channels, height, width)
        k = self.config.block_px
        return (channels, -(-height // k), -(-width // k))

    def measure(self, images: torch.Tensor) -> torch.Tensor:
        k = self.config.block_px
        height, width = images.shape[-2:]
        # ceil_mode + count_include_pad=False: partial edge blocks average only real pixels.
        blocks = F.avg_pool2d(images, k, stride=k, ceil_mode=True, count_include_pad=False)
        if not self.config.keep_size:
            return blocks
        return blocks.repeat_interleave(k, dim=-2).repeat_interleave(k, dim=-1)[
            ..., :height, :width
        ]

    def describe(self) -> dict:
        return {
            "optics": "sensor with k×k binned pixels (block mean)",
            "block_px": self.config.block_px,
            "output": "same size (blocks repeated)" if self.config.keep_size else "block grid",
        }
