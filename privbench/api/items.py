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
    envelope, first point reaching each of the 101 recall levels, 0 beyond the last recall).

    Only the true positives' points can carry the envelope (precision rises only at a true
    positive; a false positive keeps the recall and lowers the precision), so each resample is
    evaluated at the T true positives: the weighted false positives before each one come from
    the per-image counts of false positives between consecutive true positives (an images × T
    table), which makes a resample cost O(T), not O(detections). The counts are integers, so
    the sums are exact and the values those of the point-by-point computation.
    """
    image_of = np.concatenate(
        [np.full(len(s), i, dtype=np.int64) for i, s in enumerate(items.scores)] or [np.empty(0)]
    ).astype(np.int64)
    scores = np.concatenate([np.asarray(s, dtype=np.float64) for s in items.scores] or [[]])
    hits = np.concatenate([np.asarray(h, dtype=np.float64) for h in items.hits] or [[]]) > 0
    order = np.argsort(-scores, kind="mergesort")
    image_of, hits = image_of[order], hits[order]
    faces = counts @ np.asarray(items.faces, dtype=np.float64)
    true_positives = int(hits.sum())
    if true_positives == 0:  # no detection kept (none at all, or no true positive): AP 0
        return np.zeros(counts.shape[0])
    # false positives between consecutive true positives, per image: segment k precedes TP k
    segment = np.cumsum(hits) - hits  # TPs before each detection
    before = ~hits & (segment < true_positives)  # after the last TP: never on the envelope
    between = np.zeros((counts.shape[1], true_positives))
    np.add.at(between, (image_of[before], segment[before]), 1.0)
    tp = np.cumsum(counts[:, image_of[hits]], axis=1)
    fp = np.cumsum(counts @ between, axis=1)
    recall = np.divide(tp, faces[:, None], out=np.zeros_like(tp), where=faces[:, None] > 0)
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    reached = recall[:, :, None] >= RECALL_LEVELS[None, None, :]  # (R, T, 101)
    first = reached.argmax(axis=1)
    values = np.where(reached.any(axis=1), np.take_along_axis(envelope, first, axis=1), 0.0)
    return values.mean(axis=1)
