"""The clean camera: the measurement is the image itself (the reference for normalized scores)."""

from __future__ import annotations

import torch

from privbench.api.encoder import Encoder
from privbench.api.registry import register_encoder


@register_encoder("identity")
class IdentityEncoder(Encoder):
    """An ideal conventional camera; utility and privacy are normalized against it."""

    def measure(self, images: torch.Tensor) -> torch.Tensor:
        return images

    def describe(self) -> dict:
        return {"optics": "ideal conventional camera (no encoding)"}
