"""A headline metric per test item: what the leaderboard resamples for confidence intervals.

Every number on the leaderboard is one training run scored on one test split, so two encoders
can differ by the luck of the test items alone. An evaluation that returns its headline per
test item (:class:`ItemScores`) lets the leaderboard draw a 95 % interval by resampling those
items (:mod:`privbench.runs.intervals`). Two kinds cover every headline of privbench:

- ``mean``: the headline is the mean of one value per test item (accuracy and top-1 as 0/1 per
  crop or probe, CIDEr-D per scene);
- ``ap``: the headline is COCO's 101-point interpolated AP at IoU 0.5 of detections in test
  images; each image keeps its detections' scores, whether each one matched a face (greedy in
  score order, IoU ≥ 0.5, COCO's rule, the top 100 per image) and its number of faces, and a
  resample recomputes the AP from the images drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

ItemKind = Literal["mean", "ap"]
#: COCO's recall levels 0, 0.01, …, 1 (as pycocotools computes them).
RECALL_LEVELS = np.linspace(0.0, 1.0, 101)


@dataclass
class ItemScores:
    """The headline of one cell per test item (see the module docstring)."""

    kind: ItemKind
    #: ``mean``: one value per test item; the headline is their mean
    values: list[float] = field(default_factory=list)
    #: ``ap``: per test image, its detections' scores, their matches and its face count
    scores: list[list[float]] = field(default_factory=list)
    hits: list[list[bool]] = field(default_factory=list)
    faces: list[int] = field(default_factory=list)

    @classmethod
    def per_item(cls, values) -> ItemScores:
        """A mean-decomposable headline: ``values`` (a tensor, array or list), one per item."""
        array = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values)
        return cls("mean", values=[float(v) for v in array.reshape(-1)])

    @classmethod
    def detections(cls, predictions, targets) -> ItemScores:
        """AP50's parts of detections in test images (``predictions``/``targets`` as for
        :func:`privbench.detection.coco_ap`). Detections scored below every true positive are
        dropped: they come after the last true positive in every resample, where they cannot
        change the AP."""
        from privbench.detection.metrics import match_detections

        scores, hits, faces = [], [], []
        for prediction, truth in zip(predictions, targets):
            image_scores, image_hits, count = match_detections([prediction], [truth], 0.5)
            scores.append(image_scores.tolist())
            hits.append(image_hits.tolist())
            faces.append(count)
        true_scores = [s for row, h in zip(scores, hits) for s, hit in zip(row, h) if hit]
        floor = min(true_scores) if true_scores else float("inf")
        kept = [[(s, h) for s, h in zip(row, hit) if s >= floor] for row, hit in zip(scores, hits)]
        return cls(
            "ap",
            scores=[[s for s, _ in row] for row in kept],
            hits=[[bool(h) for _, h in row] for row in kept],
            faces=faces,
        )

    def __len__(self) -> int:
        return len(self.values) if self.kind == "mean" else len(self.faces)

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        """The headline for each row of ``counts`` (R, items): how often each item is drawn."""
        counts = np.asarray(counts, dtype=np.float64)
        if counts.ndim != 2 or counts.shape[1] != len(self):
            raise ValueError(f"counts must have shape (R, {len(self)}); got {counts.shape}")
        if self.kind == "mean":
            return counts @ np.asarray(self.values) / counts.sum(axis=1)
        return _weighted_ap50(self, counts)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "mean":
            return {"kind": "mean", "values": self.values}
        return {"kind": "ap", "scores": self.scores, "hits": self.hits, "faces": self.faces}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ItemScores:
        return cls(
            data["kind"],
            values=list(data.get("values", [])),
            scores=list(data.get("scores", [])),
            hits=list(data.get("hits", [])),
            faces=list(data.get("faces", [])),
        )


def _weighted_ap50(items: ItemScores, counts: np.ndarray) -> np.ndarray:
    """COCO's interpolated AP50 with image i counted ``counts[:, i]`` times: detections keep
    their global score order, each weighted by its image's count (pycocotools' rule: precision
    envelope, first point reaching each of the 101 recall levels, 0 beyond the last recall)."""
    image_of = np.concatenate(
        [np.full(len(s), i, dtype=np.int64) for i, s in enumerate(items.scores)] or [np.empty(0)]
    ).astype(np.int64)
    scores = np.concatenate([np.asarray(s, dtype=np.float64) for s in items.scores] or [[]])
    hits = np.concatenate([np.asarray(h, dtype=np.float64) for h in items.hits] or [[]])
    order = np.argsort(-scores, kind="mergesort")
    image_of, hits = image_of[order], hits[order]
    faces = counts @ np.asarray(items.faces, dtype=np.float64)
    result = np.zeros(counts.shape[0])
    if hits.size == 0:  # no detection kept (none at all, or no true positive): AP 0
        return result
    for start in range(0, counts.shape[0], 64):  # bounded memory: 64 resamples at a time
        weights = counts[start : start + 64][:, image_of]
        tp = np.cumsum(weights * hits, axis=1)
        fp = np.cumsum(weights * (1 - hits), axis=1)
        total = faces[start : start + 64, None]
        recall = np.divide(tp, total, out=np.zeros_like(tp), where=total > 0)
        precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
        envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
        for row in range(weights.shape[0]):
            index = np.searchsorted(recall[row], RECALL_LEVELS, side="left")
            reached = index < recall.shape[1]
            values = np.where(reached, envelope[row][np.minimum(index, recall.shape[1] - 1)], 0)
            result[start + row] = values.mean() if recall.shape[1] else 0.0
    return result
