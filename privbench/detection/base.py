"""The contract every face detector backend fulfils (torchvision's, mmdet's)."""

from __future__ import annotations

import torch
from torch import nn

from privbench.api.errors import InputError
from privbench.detection.boxes import Detections


class FaceDetector(nn.Module):
    """A detector of faces on ``in_channels``-channel measurements, whatever library builds it.

    Each channel is standardized with the training set's mean and standard deviation, kept as
    persistent buffers (``input_mean``, ``input_std``) so that they travel with the weights.
    A backend implements :meth:`losses` (training) and :meth:`detect` (inference, boxes in
    measurement pixels); the training loop and the scorers use nothing else.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.register_buffer("input_mean", torch.zeros(in_channels))
        self.register_buffer("input_std", torch.ones(in_channels))

    @torch.no_grad()
    def set_standardization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Set the per-channel mean and standard deviation the measurements are divided by."""
        self.input_mean.copy_(mean.reshape(-1))
        self.input_std.copy_(std.reshape(-1))

    def check_images(self, images: list[torch.Tensor]) -> None:
        """Every image must be ``(in_channels, H, W)``, the measurements the detector is for."""
        for image in images:
            if image.dim() != 3 or image.shape[0] != self.in_channels:
                raise InputError(
                    f"this detector was built for {self.in_channels}-channel measurements; got "
                    f"an image of shape {tuple(image.shape)}."
                )

    def losses(
        self, images: list[torch.Tensor], boxes: list[torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Training losses (the loop sums them) of ``(C, H, W)`` images and their xyxy boxes."""
        raise NotImplementedError(f"{type(self).__name__} must implement losses()")

    def detect(self, images: list[torch.Tensor]) -> Detections:
        """Face detections of ``(C, H, W)`` images, boxes in the images' own pixels."""
        raise NotImplementedError(f"{type(self).__name__} must implement detect()")
