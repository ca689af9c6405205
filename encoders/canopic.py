"""CAnOPIC (Tan et al. §3.1): optical convolution → analog 8×8 max-pool → learned quantization.

Stages, each usable alone and composable in this order:

- **conv**: ``conv1`` — one 63×63 kernel initialized as a Gaussian of σ = 8 px; ``conv4`` — four
  11×11 kernels initialized as the upper, left, lower and right half-planes of ones (output: 4 RGB
  images = 12 channels). The same kernel is applied to each colour channel (as a diffractive mask
  does), with replicate padding so the image size is unchanged. By default (``realizable``) the
  kernels are kept non-negative and of unit sum, so they stay realizable as optical PSFs: the
  effective kernel is max(w, 0)/Σ max(w, 0), and designers project w after each step.
- **maxpool**: 8×8 non-overlapping max-pooling (partial edge blocks pool what they cover).
- **quantize**: N − 1 = 15 learnable thresholds b_i initialized 0.5, 1.5, …, 14.5 on inputs
  scaled to [0, 15]; during training the soft quantizer y = Σ_i σ(T(x − b_i)) with hardness T
  (raised by the designer's schedule, :meth:`set_hardness`); in evaluation the exact Heaviside
  y = Σ_i U(x − b_i). The output is the level count 0…15 (what a 4-bit ADC reports).

Every configuration of CAnOPIC's Table 1 is registered by name (``canopic-conv1-mp-q`` …).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from privbench.api.encoder import Encoder, EncoderConfig
from privbench.api.registry import register_encoder
from privbench.nn.convolution import fft_convolve


def gaussian_kernel_2d(size: int, sigma_px: float) -> torch.Tensor:
    axis = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (axis / sigma_px) ** 2)
    kernel = torch.outer(g, g)
    return (kernel / kernel.sum()).float()


def half_plane_kernels(size: int) -> torch.Tensor:
    """Upper, left, lower, right halves of ones (the centre row/column included), CAnOPIC §3.2."""
    half = size // 2
    kernels = torch.zeros(4, size, size)
    kernels[0, : half + 1, :] = 1  # upper
    kernels[1, :, : half + 1] = 1  # left
    kernels[2, half:, :] = 1  # lower
    kernels[3, :, half:] = 1  # right
    return kernels


class CanopicConfig(EncoderConfig):
    conv: Literal["none", "conv1", "conv4"] = Field(
        "conv1", description="convolution stage: none, one 63×63 or four 11×11 kernels"
    )
    maxpool: bool = Field(True, description="8×8 non-overlapping max-pooling stage")
    quantize: bool = Field(True, description="learned 4-bit quantization stage")
    conv1_size_px: int = Field(63, ge=3, le=255, description="side of the single kernel")
    conv1_sigma_px: float = Field(
        8.0, gt=0, description="σ of the single kernel's Gaussian initialization"
    )
    conv4_size_px: int = Field(11, ge=3, le=63, description="side of each of the four kernels")
    realizable: bool = Field(
        True, description="keep kernels non-negative with unit sum (realizable as optical PSFs)"
    )
    pool_px: int = Field(8, ge=2, le=32, description="max-pooling block side")
    levels: int = Field(16, ge=2, le=256, description="quantization levels N (N − 1 thresholds)")
    hardness: float = Field(
        1.0, gt=0, description="initial soft-quantization hardness T (training mode)"
    )


class CanopicEncoder(Encoder):
    """The composable CAnOPIC pipeline (the registered Table 1 configurations fix its stages)."""

    Config = CanopicConfig
    learnable: ClassVar[bool] = True
    stage_defaults: ClassVar[dict] = {}

    def __init__(self, **config):
        fixed = {
            k: v
            for k, v in config.items()
            if k in self.stage_defaults and v != self.stage_defaults[k]
        }
        if fixed:
            from privbench.api.errors import ConfigError

            stages = ", ".join(f"{k}={v!r}" for k, v in self.stage_defaults.items())
            raise ConfigError(
                f"Encoder {self.registered_name!r} fixes its stages ({stages}); got {fixed}. Use "
                f"the registered configuration with those stages instead (see `privbench list "
                f"encoders`)."
            )
        super().__init__(**{**self.stage_defaults, **config})
        cfg = self.config
        if cfg.conv == "conv1":
            initial = gaussian_kernel_2d(cfg.conv1_size_px, cfg.conv1_sigma_px).unsqueeze(0)
        elif cfg.conv == "conv4":
            initial = half_plane_kernels(cfg.conv4_size_px)
            if cfg.realizable:
                initial = initial / initial.sum(dim=(-2, -1), keepdim=True)
        else:
            initial = None
        # Stored scaled by the kernel area so that values are O(1) and an optimizer step of 1e-2
        # is a small relative change (the effective kernel divides the scale out again).
        self.kernels = (
            torch.nn.Parameter(initial * self._area(initial)) if initial is not None else None
        )
        if cfg.quantize:
            self.thresholds = torch.nn.Parameter(
                torch.arange(cfg.levels - 1, dtype=torch.float32) + 0.5
            )
        else:
            self.thresholds = None
        self.register_buffer("hardness", torch.tensor(float(cfg.hardness)), persistent=False)

    # -- stages ------------------------------------------------------------------------------
    @staticmethod
    def _area(kernels: torch.Tensor) -> float:
        return float(kernels.shape[-1] * kernels.shape[-2])

    def effective_kernels(self) -> torch.Tensor:
        """The kernels applied to the light: non-negative and unit-sum when ``realizable``."""
        if not self.config.realizable:
            return self.kernels / self._area(self.kernels)
        positive = self.kernels.clamp_min(0)
        return positive / positive.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-12)

    def convolve(self, images: torch.Tensor) -> torch.Tensor:
        kernels = self.effective_kernels().to(images.dtype)
        # Each kernel applied to every colour channel: output = [k1 * RGB, k2 * RGB, ...].
        outputs = [fft_convolve(images, kernel, padding="replicate") for kernel in kernels]
        return torch.cat(outputs, dim=1)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, self.config.pool_px, stride=self.config.pool_px, ceil_mode=True)

    def quantize_levels(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs in [0, 1] scaled to [0, N − 1]; soft (training) or exact (evaluation) step
        count."""
        scaled = x * (self.config.levels - 1)
        thresholds = self.thresholds.to(x.dtype).view(1, -1, *([1] * (x.dim() - 1)))
        differences = scaled.unsqueeze(1) - thresholds
        if self.training:
            return torch.sigmoid(self.hardness * differences).sum(dim=1)
        return (differences > 0).to(x.dtype).sum(dim=1)

    def measure(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        if self.kernels is not None:
            x = self.convolve(x)
        if self.config.maxpool:
            x = self.pool(x)
        if self.thresholds is not None:
            x = self.quantize_levels(x)
        return x

    # -- contract ------------------------------------------------------------------------
    def output_shape(self, input_shape):
        channels, height, width = input_shape
        if self.kernels is not None:
            channels *= self.kernels.shape[0]
        if self.config.maxpool:
            k = self.config.pool_px
            height, width = math.ceil(height / k), math.ceil(width / k)
        return (channels, height, width)

    def measurement_range(self) -> tuple[float, float]:
        """Quantized: step counts 0 … N − 1; otherwise intensities (unit-sum kernels, max-pool)."""
        if self.thresholds is not None:
            return (0.0, float(self.config.levels - 1))
        return (0.0, 1.0)

    def set_hardness(self, hardness: float) -> None:
        """Soft-quantizer hardness T (the designer raises it over training)."""
        self.hardness.fill_(float(hardness))

    @torch.no_grad()
    def project_(self) -> None:
        """Projection after a gradient step: realizable kernels, ordered thresholds in range."""
        if self.kernels is not None and self.config.realizable:
            self.kernels.clamp_(min=0)
            self.kernels.mul_(
                self._area(self.kernels)
                / self.kernels.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
            )
        if self.thresholds is not None:
            self.thresholds.copy_(self.thresholds.clamp(0, self.config.levels - 1).sort().values)

    def diagnostics(self, input_shape) -> dict[str, torch.Tensor]:
        out = {}
        if self.kernels is not None:
            out["kernels"] = self.effective_kernels().detach()
        if self.thresholds is not None:
            out["thresholds (levels)"] = self.thresholds.detach()
        return out

    def describe(self) -> dict:
        cfg = self.config
        stages = []
        if cfg.conv == "conv1":
            stages.append(
                f"optical conv 1×{cfg.conv1_size_px}² (init Gaussian σ={cfg.conv1_sigma_px:g} px)"
            )
        elif cfg.conv == "conv4":
            stages.append(f"optical conv 4×{cfg.conv4_size_px}² (init half-planes) → 12 channels")
        if cfg.maxpool:
            stages.append(f"analog max-pool {cfg.pool_px}×{cfg.pool_px}")
        if cfg.quantize:
            stages.append(f"learned quantization, {cfg.levels} levels")
        return {"optics": " → ".join(stages), "realizable_kernels": cfg.realizable}


def _variant(name: str, doc: str, learnable: bool = True, **stages):
    cls = type(
        name.replace("-", "_").title().replace("_", ""),
        (CanopicEncoder,),
        {"stage_defaults": stages, "learnable": learnable, "__doc__": doc, "__module__": __name__},
    )
    return register_encoder(name)(cls)


CanopicConv1MpQ = _variant(
    "canopic-conv1-mp-q",
    "CAnOPIC Conv(1) + MP + Quantize: 63×63 kernel, 8×8 max-pool, 4-bit learned quantizer.",
    conv="conv1",
    maxpool=True,
    quantize=True,
)
CanopicConv4MpQ = _variant(
    "canopic-conv4-mp-q",
    "CAnOPIC Conv(4) + MP + Quantize: four 11×11 kernels (12 channels), max-pool, quantizer.",
    conv="conv4",
    maxpool=True,
    quantize=True,
)
CanopicConv1 = _variant(
    "canopic-conv1",
    "CAnOPIC Conv(1) alone: one 63×63 optical kernel (Gaussian σ 8 init).",
    conv="conv1",
    maxpool=False,
    quantize=False,
)
CanopicMp = _variant(
    "canopic-mp",
    "CAnOPIC MP alone: 8×8 analog max-pooling (nothing to learn).",
    learnable=False,
    conv="none",
    maxpool=True,
    quantize=False,
)
CanopicQ = _variant(
    "canopic-q",
    "CAnOPIC Quantize alone: 4-bit learned quantizer on the full image.",
    conv="none",
    maxpool=False,
    quantize=True,
)
CanopicConv1Mp = _variant(
    "canopic-conv1-mp",
    "CAnOPIC Conv(1) + MP: 63×63 kernel then 8×8 max-pool.",
    conv="conv1",
    maxpool=True,
    quantize=False,
)
CanopicConv1Q = _variant(
    "canopic-conv1-q",
    "CAnOPIC Conv(1) + Quantize: 63×63 kernel then quantizer (full resolution).",
    conv="conv1",
    maxpool=False,
    quantize=True,
)
CanopicMpQ = _variant(
    "canopic-mp-q",
    "CAnOPIC MP + Quantize: 8×8 max-pool then quantizer.",
    conv="none",
    maxpool=True,
    quantize=True,
)
