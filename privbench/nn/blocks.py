"""Building blocks shared by privbench's classifiers (and the light detector backbone).

How far a network may downsample a measurement (:func:`downsampling_steps`, at most down to a
4×4 feature map), which of its stride points stride (:func:`strided_points`, the deepest ones),
width multipliers (:func:`_scaled`), conv-BN-ReLU, the ResNet basic block and the pooled linear
head.
"""

from __future__ import annotations

import torch
from torch import nn

SMALLEST_FEATURE_MAP = 4
MAX_INPUT_SIDE = 4096


def downsampling_steps(
    height: int, width: int, available: int, smallest: int = SMALLEST_FEATURE_MAP
) -> int:
    """How many of ``available`` stride-2 halvings keep the smaller side at least ``smallest``."""
    side = min(height, width)
    steps = 0
    while steps < available and side // 2 >= smallest:
        side //= 2
        steps += 1
    return steps


def strided_points(count: int, steps: int) -> list[bool]:
    """Which of ``count`` downsampling points (ordered input → output) stride: the
    deepest ``steps``."""
    return [index >= count - steps for index in range(count)]


def _scaled(channels: int, width: float, minimum: int = 8) -> int:
    """Channels × width multiplier, rounded to a multiple of 8 (at least ``minimum``)."""
    return max(minimum, int(round(channels * width / 8.0)) * 8)


def conv_bn_relu(
    in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1
) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(
            in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False
        ),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    """ResNet basic block: two 3×3 conv-BN layers plus the (projected) identity shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ClassifierHead(nn.Module):
    """Global average pooling, dropout and a linear layer to the class logits."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.pool(x).flatten(1)))
