"""The box-mapping rule between clean scenes and measurements, and the data a detector trains on.

One rule for every encoder, including those that change resolution: a clean scene of
``W_in × H_in`` pixels becomes a measurement of ``W_out × H_out``; with ``s_x = W_out / W_in``
and ``s_y = H_out / H_in``, training boxes go into measurement coordinates by
``(x0, y0, x1, y1) → (s_x·x0, s_y·y0, s_x·x1, s_y·y1)`` and predicted boxes come back to clean
pixels by the inverse, so every encoder's AP is measured on the same boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from privbench.api.errors import DataError, InputError
from privbench.api.measurements import Measurements

#: Detections of several images: per image ``{"boxes": (k, 4) xyxy, "scores": (k,)}``.
Detections = list[dict[str, torch.Tensor]]


def measurement_scale(clean_hw: Sequence[int], measured_hw: Sequence[int]) -> tuple[float, float]:
    """``(s_x, s_y) = (W_out / W_in, H_out / H_in)``: clean pixels → measurement pixels."""
    h_in, w_in = (int(v) for v in clean_hw[-2:])
    h_out, w_out = (int(v) for v in measured_hw[-2:])
    if min(h_in, w_in, h_out, w_out) <= 0:
        raise InputError(
            f"image sizes must be positive; got clean {tuple(clean_hw)} and measured "
            f"{tuple(measured_hw)}."
        )
    return w_out / w_in, h_out / h_in


def boxes_to_measurement(
    boxes: torch.Tensor, clean_hw: Sequence[int], measured_hw: Sequence[int]
) -> torch.Tensor:
    """xyxy boxes in clean pixels → measurement pixels (multiply x by s_x and y by s_y)."""
    sx, sy = measurement_scale(clean_hw, measured_hw)
    return boxes.float() * boxes.new_tensor([sx, sy, sx, sy], dtype=torch.float32)


def boxes_to_clean(
    boxes: torch.Tensor, clean_hw: Sequence[int], measured_hw: Sequence[int]
) -> torch.Tensor:
    """xyxy boxes in measurement pixels → clean pixels: :func:`boxes_to_measurement` undone."""
    sx, sy = measurement_scale(clean_hw, measured_hw)
    return boxes.float() / boxes.new_tensor([sx, sy, sx, sy], dtype=torch.float32)


def face_boxes(scenes, category: str = "face") -> list[torch.Tensor]:
    """Per scene, the ``(k, 4)`` xyxy boxes (clean pixels) of ``category`` in a :class:`Scenes`."""
    if category not in scenes.categories:
        raise DataError(
            f"The scenes have no box category {category!r} (categories: "
            f"{', '.join(scenes.categories) or 'none'}); face detection needs boxes labelled "
            f"{category!r}."
        )
    index = scenes.categories.index(category)
    return [
        boxes.float().reshape(-1, 4)[labels == index]
        for boxes, labels in zip(scenes.boxes, scenes.box_labels)
    ]


@dataclass
class DetectionSet:
    """Measurements of scenes and their face boxes in measurement coordinates."""

    images: Measurements | torch.Tensor  # (N, C, h, w) float, read in batches
    boxes: list[torch.Tensor]  # per image (k, 4) xyxy in measurement pixels

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.shape[0] == 0:
            raise DataError(
                "detection needs a non-empty (N, C, H, W) measurement tensor; got "
                f"{tuple(self.images.shape)}."
            )
        if len(self.boxes) != self.images.shape[0]:
            raise DataError(
                f"{self.images.shape[0]} measurements but boxes for {len(self.boxes)} scenes."
            )
        if isinstance(self.images, torch.Tensor) and not torch.isfinite(self.images).all():
            # (streamed measurements are checked batch by batch as they are read)
            raise DataError("the measurements contain NaN or infinite values.")

    @classmethod
    def from_clean_boxes(
        cls,
        measurements: Measurements | torch.Tensor,
        clean_boxes: list[torch.Tensor],
        clean_hw: Sequence[int],
    ) -> DetectionSet:
        """Map clean-pixel boxes into the measurements' coordinates (the module's one rule).

        Boxes are clipped to the measurement; boxes that collapse below 1e-3 measurement pixels
        (a face far smaller than one sensor pixel) cannot be regressed and are left out of
        training.
        """
        height, width = measurements.shape[-2:]
        mapped = []
        for boxes in clean_boxes:
            b = boxes_to_measurement(boxes.reshape(-1, 4), clean_hw, (height, width))
            b[:, 0::2] = b[:, 0::2].clamp(0, width)
            b[:, 1::2] = b[:, 1::2].clamp(0, height)
            keep = ((b[:, 2] - b[:, 0]) > 1e-3) & ((b[:, 3] - b[:, 1]) > 1e-3)
            mapped.append(b[keep])
        return cls(measurements.float(), mapped)
