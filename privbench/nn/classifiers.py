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

GoogLeNet and MobileNet live in :mod:`privbench.nn.paper_classifiers`, the shared blocks in
:mod:`privbench.nn.blocks`.

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
from privbench.nn.blocks import (  # noqa: F401 (the building blocks, re-exported)
    MAX_INPUT_SIDE,
    SMALLEST_FEATURE_MAP,
    BasicBlock,
    ClassifierHead,
    _scaled,
    conv_bn_relu,
    downsampling_steps,
    strided_points,
)
from privbench.nn.paper_classifiers import GoogLeNet, MobileNet


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
