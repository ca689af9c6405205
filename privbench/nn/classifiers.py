"""Image classifiers that read sensor measurements (the evaluation models of tasks and attacks).

Measurements come in any channel count (3 for a camera, 12 for CAnOPIC's 4-filter bank) and any
spatial size from 8×8 (CAnOPIC's 8×8 max-pooled measurement of a 64×64 crop) up to 256×256. Each
architecture has a fixed list of places where it may halve the resolution; for a given input
size only as many of them stride as keep the last feature map at least 4×4, the deepest ones
first, so a tiny measurement is not pooled away and a large one is not processed at full
resolution throughout. All weights are randomly initialised (nothing is downloaded).

Architectures:

- ``small-cnn``: a compact residual CNN (stem and three basic blocks), fast on 2 CPU cores;
- ``resnet18``: ResNet-18 (He et al., CVPR 2016: basic blocks [2, 2, 2, 2], widths 64-512), the
  Recognition NN of CAnOPIC's alternating optimization;
- ``googlenet``: GoogLeNet (Szegedy et al., CVPR 2015: Inception modules 3a-5b with the paper's
  branch widths), with batch normalization after every convolution and without the auxiliary
  heads; the classifier CAnOPIC evaluates with;
- ``mobilenet``: MobileNet v1 (Howard et al., 2017: depthwise-separable convolutions, widths
  32-1024, with its width multiplier).

Every model is wrapped in :class:`MeasurementClassifier`, which standardizes each input channel
with a mean and standard deviation stored as buffers (set by the training loop from the
training set, so measurements in [0, 1] and quantized levels in [0, 15] are treated alike) and
saved with the weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from privbench.api.errors import ConfigError, InputError

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


# -- small-cnn -----------------------------------------------------------------------------
class SmallCNN(nn.Module):
    """Compact residual CNN: a 3×3 stem and three basic blocks, widths w, 2w, 4w, 8w.

    Downsampling points (input → output): a max-pool after the stem (used only above 64 px),
    the stem convolution, and the first convolution of each block, the deepest first. At 64×64
    the stem and all three blocks halve the resolution (64 → 4), so the costly layers run at
    16×16 and below (about 11 M multiply-adds per image for w = 16).
    """

    def __init__(
        self, in_channels: int, num_classes: int, height: int, width: int, base_width: int = 16
    ) -> None:
        super().__init__()
        widths = [base_width, base_width * 2, base_width * 4, base_width * 8]
        extra_pool, stem_stride, *block_strides = strided_points(
            5, downsampling_steps(height, width, 5)
        )
        self.stem = conv_bn_relu(in_channels, widths[0], 3, 2 if stem_stride else 1)
        self.pool = nn.MaxPool2d(2) if extra_pool else nn.Identity()
        self.blocks = nn.Sequential(
            *(
                BasicBlock(widths[i], widths[i + 1], 2 if strided else 1)
                for i, strided in enumerate(block_strides)
            )
        )
        self.head = ClassifierHead(widths[-1], num_classes, dropout=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.pool(self.stem(x))))


# -- resnet18 ------------------------------------------------------------------------------
class ResNet18(nn.Module):
    """ResNet-18: stem, four layers of two basic blocks (widths 64, 128, 256, 512), GAP, linear.

    Downsampling points (input → output): stem max-pool, stem conv, first block of layers 2-4.
    A strided stem uses the original 7×7 convolution; an unstrided one a 3×3 (CIFAR-style).
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
        widths = [_scaled(c, width_multiplier) for c in (64, 128, 256, 512)]
        stem_pool, stem_stride, *layer_strides = strided_points(
            5, downsampling_steps(height, width, 5)
        )
        self.stem = conv_bn_relu(
            in_channels, widths[0], 7 if stem_stride else 3, 2 if stem_stride else 1
        )
        self.pool = nn.MaxPool2d(3, 2, 1) if stem_pool else nn.Identity()
        layers = []
        in_width = widths[0]
        for index, out_width in enumerate(widths):
            stride = 2 if index > 0 and layer_strides[index - 1] else 1
            layers.append(
                nn.Sequential(
                    BasicBlock(in_width, out_width, stride), BasicBlock(out_width, out_width, 1)
                )
            )
            in_width = out_width
        self.layers = nn.Sequential(*layers)
        self.head = ClassifierHead(widths[-1], num_classes, dropout=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.pool(self.stem(x))))


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


# -- the wrapper and the factory -----------------------------------------------------------
class StandardizedInput(nn.Module):
    """Base of a network that standardizes each measurement channel before its body runs.

    ``standardize(x) = (x - mean[c]) / std[c]``; mean and std are buffers ``input_mean`` and
    ``input_std`` (saved with the weights), set by :meth:`set_standardization` from the
    training set. Shared by the classifier and the captioner's feature extractor.
    """

    def __init__(self, input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.input_shape = tuple(int(v) for v in input_shape)
        self.register_buffer("input_mean", torch.zeros(self.input_shape[0]))
        self.register_buffer("input_std", torch.ones(self.input_shape[0]))

    @torch.no_grad()
    def set_standardization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.input_mean.copy_(mean.reshape(-1))
        self.input_std.copy_(std.reshape(-1))

    def standardize(self, x: torch.Tensor, built_for: str) -> torch.Tensor:
        """Check that ``x`` is a ``(B, C, H, W)`` batch of this network's channel count,
        then standardize it.

        ``built_for`` names the network in the error message (e.g. "small-cnn classifier").
        """
        if x.dim() != 4 or x.shape[1] != self.input_shape[0]:
            raise InputError(
                f"{built_for} built for measurements of shape {self.input_shape} got a batch "
                f"of shape {tuple(x.shape)}; expected (B, {self.input_shape[0]}, H, W)."
            )
        return (x - self.input_mean.view(1, -1, 1, 1)) / self.input_std.view(1, -1, 1, 1)


class MeasurementClassifier(StandardizedInput):
    """A classifier body behind a per-channel standardization of the measurement.

    ``forward(x) = body((x - mean[c]) / std[c])`` (see :class:`StandardizedInput`).
    """

    def __init__(
        self, body: nn.Module, arch: str, input_shape: tuple[int, int, int], num_classes: int
    ) -> None:
        super().__init__(input_shape)
        self.body = body
        self.arch = arch
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.standardize(x, f"{self.arch} classifier"))


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "small-cnn": SmallCNN,
    "resnet18": ResNet18,
    "googlenet": GoogLeNet,
    "mobilenet": MobileNet,
}


def check_arch(arch: str) -> str:
    if arch not in ARCHITECTURES:
        raise ConfigError(
            f"Unknown classifier architecture {arch!r}; accepted: {', '.join(ARCHITECTURES)}."
        )
    return arch


def build_classifier(
    arch: str, input_shape: tuple[int, int, int], num_classes: int, *, width_multiplier: float = 1.0
) -> MeasurementClassifier:
    """A randomly initialised classifier of ``arch`` for measurements of shape ``(C, H, W)``.

    ``width_multiplier`` scales every layer's channel count (MobileNet's α, applied alike to
    the other architectures).
    """
    check_arch(arch)
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or any(v < 1 for v in shape) or max(shape[1:]) > MAX_INPUT_SIDE:
        raise ConfigError(
            f"Classifier input shape must be (channels, height, width) with positive sizes up to "
            f"{MAX_INPUT_SIDE}; got {tuple(input_shape)}."
        )
    if int(num_classes) < 2:
        raise ConfigError(f"A classifier needs at least 2 classes; got num_classes={num_classes}.")
    if not (0 < width_multiplier <= 4 and math.isfinite(width_multiplier)):
        raise ConfigError(f"width_multiplier must be in (0, 4]; got {width_multiplier}.")
    channels, height, width = shape
    if arch == "small-cnn":
        body = SmallCNN(
            channels, int(num_classes), height, width, base_width=_scaled(16, width_multiplier)
        )
    else:
        body = ARCHITECTURES[arch](
            channels, int(num_classes), height, width, width_multiplier=width_multiplier
        )
    return MeasurementClassifier(body, arch, shape, int(num_classes))
