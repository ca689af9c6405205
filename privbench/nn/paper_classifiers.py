"""The two classifier families CAnOPIC evaluates with: GoogLeNet and MobileNet v1.

See :mod:`privbench.nn.classifiers` for the conventions (stride points, width multipliers, the
standardizing wrapper).
"""

from __future__ import annotations

import torch
from torch import nn

from privbench.nn.blocks import (
    ClassifierHead,
    _scaled,
    conv_bn_relu,
    downsampling_steps,
    strided_points,
)


# -- googlenet -----------------------------------------------------------------------------
class Inception(nn.Module):
    """Inception module (GoogLeNet Fig. 2b): 1×1 | 1×1→3×3 | 1×1→5×5 | 3×3
    max-pool→1×1, concatenated."""

    def __init__(
        self,
        in_channels: int,
        c1: int,
        c3_reduce: int,
        c3: int,
        c5_reduce: int,
        c5: int,
        pool_proj: int,
    ) -> None:
        super().__init__()
        self.branch1 = conv_bn_relu(in_channels, c1, 1)
        self.branch3 = nn.Sequential(
            conv_bn_relu(in_channels, c3_reduce, 1), conv_bn_relu(c3_reduce, c3, 3)
        )
        self.branch5 = nn.Sequential(
            conv_bn_relu(in_channels, c5_reduce, 1), conv_bn_relu(c5_reduce, c5, 5)
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(3, 1, 1), conv_bn_relu(in_channels, pool_proj, 1)
        )
        self.out_channels = c1 + c3 + c5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1
        )


# Branch widths of GoogLeNet Table 1: (#1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj).
GOOGLENET_MODULES = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


class GoogLeNet(nn.Module):
    """GoogLeNet with BN: stem (conv, pool, 1×1, 3×3, pool), Inception 3a-3b,
    pool, 4a-4e, pool, 5a-5b.

    Downsampling points (input → output): stem conv, first stem pool, second stem pool, the
    pool after 3b, the pool after 4e.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        height: int,
        width: int,
        width_multiplier: float = 1.0,
    ) -> None:
        super().__init__()
        scale = lambda c: _scaled(c, width_multiplier)  # noqa: E731
        conv_stride, pool1, pool2, pool3, pool4 = strided_points(
            5, downsampling_steps(height, width, 5)
        )
        self.stem = nn.Sequential(
            conv_bn_relu(in_channels, scale(64), 7 if conv_stride else 3, 2 if conv_stride else 1),
            nn.MaxPool2d(3, 2, 1) if pool1 else nn.Identity(),
            conv_bn_relu(scale(64), scale(64), 1),
            conv_bn_relu(scale(64), scale(192), 3),
            nn.MaxPool2d(3, 2, 1) if pool2 else nn.Identity(),
        )
        modules: list[nn.Module] = []
        channels = scale(192)
        for name, widths in GOOGLENET_MODULES.items():
            module = Inception(channels, *(scale(c) for c in widths))
            modules.append(module)
            channels = module.out_channels
            if name == "3b" and pool3 or name == "4e" and pool4:
                modules.append(nn.MaxPool2d(3, 2, 1))
        self.inception = nn.Sequential(*modules)
        self.head = ClassifierHead(channels, num_classes, dropout=0.4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.inception(self.stem(x)))


# -- mobilenet -----------------------------------------------------------------------------
# MobileNet v1 Table 1 after the stem: (output channels, stride of the depthwise 3×3).
MOBILENET_BLOCKS = (
    [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)]
    + [(512, 1)] * 5
    + [(1024, 2), (1024, 1)]
)


class MobileNet(nn.Module):
    """MobileNet v1: a 3×3 stem, then 13 depthwise-separable blocks (3×3 depthwise + 1×1 pointwise).

    Downsampling points (input → output): the stem and the four stride-2 blocks of the paper.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        height: int,
        width: int,
        width_multiplier: float = 1.0,
    ) -> None:
        super().__init__()
        scale = lambda c: _scaled(c, width_multiplier)  # noqa: E731
        strided_blocks = [
            index for index, (_, stride) in enumerate(MOBILENET_BLOCKS) if stride == 2
        ]
        stem_stride, *block_strides = strided_points(
            1 + len(strided_blocks), downsampling_steps(height, width, 5)
        )
        stride_of = dict(zip(strided_blocks, block_strides))
        self.stem = conv_bn_relu(in_channels, scale(32), 3, 2 if stem_stride else 1)
        blocks = []
        channels = scale(32)
        for index, (out_channels, _) in enumerate(MOBILENET_BLOCKS):
            stride = 2 if stride_of.get(index, False) else 1
            blocks.append(
                nn.Sequential(
                    conv_bn_relu(channels, channels, 3, stride, groups=channels),
                    conv_bn_relu(channels, scale(out_channels), 1),
                )
            )
            channels = scale(out_channels)
        self.blocks = nn.Sequential(*blocks)
        self.head = ClassifierHead(channels, num_classes, dropout=0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))
