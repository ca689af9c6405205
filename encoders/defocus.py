"""Defocus: the 2PSC baseline after Pittaluga & Koppal — the same lens with only Z4 set, fixed."""

from __future__ import annotations

import math

import torch
from privbench.encoders.zernike_lens import LensConfig, RefractiveLens
from pydantic import Field

from privbench.api.registry import register_encoder


class DefocusConfig(LensConfig):
    defocus_um: float = Field(
        1.0,
        ge=-50,
        le=50,
        description="Noll Z4 (defocus) coefficient in µm of surface height; 0 is in focus",
    )


@register_encoder("defocus")
class DefocusLens(RefractiveLens):
    """A fixed, defocused lens: Z4 only. Blur grows with |defocus_um| (1 µm ≈ 6 px RMS radius at
    the default f/5 geometry)."""

    Config = DefocusConfig

    def __init__(self, **config):
        super().__init__(**config)
        coefficients = torch.zeros(4)
        coefficients[3] = self.config.defocus_um
        self.register_buffer("coefficients_um", coefficients, persistent=False)

    def describe(self) -> dict:
        cfg = self.config
        # Peak-to-valley optical path difference of the Z4 term: 2√3·(n−1)·a4 over the pupil.
        opd_waves = (
            2
            * math.sqrt(3)
            * (cfg.refractive_indices[1] - 1)
            * cfg.defocus_um
            * 1e-6
            / (cfg.wavelengths_nm[1] * 1e-9)
        )
        return {
            **super().describe(),
            "defocus_um": cfg.defocus_um,
            "defocus_waves_at_green": round(opd_waves, 3),
        }
