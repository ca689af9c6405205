"""Random one-class detections around random faces, for metric tests against pycocotools."""

from __future__ import annotations

import torch


def random_detections(images: int, seed: int, clutter: int = 2, min_faces: int = 0):
    """``(predictions, targets)`` of ``images`` scenes: 0-3 faces each (at least ``min_faces``),
    each found by a jittered (valid) box, plus ``clutter`` false boxes; random scores."""
    generator = torch.Generator().manual_seed(seed)
    targets, predictions = [], []
    for _ in range(images):
        k = int(torch.randint(min_faces, 4, (1,), generator=generator))
        corners = torch.rand(k, 2, generator=generator) * 80
        truth = torch.cat([corners, corners + 10 + torch.rand(k, 2, generator=generator) * 30], 1)
        noisy = truth + torch.randn(k, 4, generator=generator) * 4
        # a valid box (x1 > x0, y1 > y0): pycocotools ignores boxes of negative area
        noisy[:, 2:] = torch.maximum(noisy[:, 2:], noisy[:, :2] + 1)
        false = torch.rand(clutter, 2, generator=generator) * 90
        boxes = torch.cat([noisy, torch.cat([false, false + 15], 1)])
        targets.append(truth)
        predictions.append(
            {"boxes": boxes, "scores": torch.rand(boxes.shape[0], generator=generator)}
        )
    return predictions, targets
