"""Scores of face detections against annotated faces: COCO AP, precision-recall, FDDB's ROC.

COCO-style AP@[.5:.95] and AP50 come from torchmetrics' ``MeanAveragePrecision`` (pycocotools
backend); the precision-recall curve at IoU 0.5 is COCO's 101-point interpolated precision,
whose mean is AP50 (COCO's greedy matching in score order, IoU ≥ 0.5); FDDB's discrete ROC
(Jain & Learned-Miller 2010) counts true positives against false positives as the score
threshold is lowered, with FDDB's rule: at every threshold detections and faces are matched
one-to-one by an optimal assignment (the most pairs with IoU > 0.5), not greedily.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from privbench.api.errors import DataError, InputError
from privbench.api.profiling import section
from privbench.detection.boxes import Detections

#: COCO's IoU thresholds 0.50, 0.55, …, 0.95 and recall levels 0, 0.01, …, 1, computed as
#: pycocotools computes them (``np.linspace`` in float64).
COCO_IOU_THRESHOLDS: list[float] = np.linspace(0.5, 0.95, 10).tolist()
COCO_RECALL_LEVELS: list[float] = np.linspace(0.0, 1.0, 101).tolist()


def _check_detections(predictions: Detections, targets: list[torch.Tensor]) -> None:
    if len(predictions) != len(targets):
        raise InputError(
            f"got detections for {len(predictions)} images but annotations for {len(targets)}."
        )
    for index, prediction in enumerate(predictions):
        if "boxes" not in prediction or "scores" not in prediction:
            raise InputError(
                f"detections of image {index} need 'boxes' and 'scores'; got keys "
                f"{sorted(prediction)}."
            )
        if prediction["boxes"].reshape(-1, 4).shape[0] != prediction["scores"].reshape(-1).shape[0]:
            raise InputError(f"detections of image {index}: as many scores as boxes are needed.")


def coco_ap(predictions: Detections, targets: list[torch.Tensor]) -> dict[str, float]:
    """COCO AP@[.5:.95] (``ap``), AP50 and AP75 of one-class detections, via torchmetrics
    (pycocotools)."""
    from torchmetrics.detection import MeanAveragePrecision

    _check_detections(predictions, targets)
    if sum(int(t.shape[0]) for t in targets) == 0:
        raise DataError("AP is undefined without any annotated face in the evaluated scenes.")
    # pycocotools' own float64 thresholds: torchmetrics' defaults are float32 (0.36 becomes
    # 0.36000001), which skips a recall level whenever the face count makes recall hit it
    # exactly (up to 5e-4 of AP; tested against COCOeval called directly).
    metric = MeanAveragePrecision(
        box_format="xyxy",
        iou_type="bbox",
        backend="pycocotools",
        iou_thresholds=COCO_IOU_THRESHOLDS,
        rec_thresholds=COCO_RECALL_LEVELS,
    )
    metric.update(
        [
            {
                "boxes": p["boxes"].float().reshape(-1, 4),
                "scores": p["scores"].float().reshape(-1),
                "labels": torch.zeros(p["scores"].numel(), dtype=torch.long),
            }
            for p in predictions
        ],
        [
            {"boxes": t.float().reshape(-1, 4), "labels": torch.zeros(t.shape[0], dtype=torch.long)}
            for t in targets
        ],
    )
    result = metric.compute()
    # pycocotools reports -1 for "no detections at all": that is an AP of 0.
    return {
        name: max(0.0, float(result[key]))
        for name, key in (("ap", "map"), ("ap50", "map_50"), ("ap75", "map_75"))
    }


def match_detections(
    predictions: Detections,
    targets: list[torch.Tensor],
    iou_threshold: float = 0.5,
    max_per_image: int = 100,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Greedy score-ordered matching (COCO's): ``(scores, is_true_positive, number of faces)``.

    Per image, detections are visited by decreasing score (the top ``max_per_image``); each one is
    a true positive if some face not yet matched has IoU ≥ ``iou_threshold`` with it (it takes
    the one of highest IoU), otherwise a false positive. Returned sorted by decreasing score.
    """
    from torchvision.ops import box_iou

    _check_detections(predictions, targets)
    all_scores, all_hits = [], []
    total = 0
    for prediction, truth in zip(predictions, targets):
        truth = truth.float().reshape(-1, 4)
        total += int(truth.shape[0])
        scores = prediction["scores"].float().reshape(-1)
        order = scores.argsort(descending=True, stable=True)[:max_per_image]
        boxes = prediction["boxes"].float().reshape(-1, 4)[order]
        scores = scores[order]
        hits = torch.zeros(scores.shape[0], dtype=torch.bool)
        if truth.shape[0] and scores.shape[0]:
            iou = box_iou(boxes, truth)
            taken = torch.zeros(truth.shape[0], dtype=torch.bool)
            for d in range(scores.shape[0]):
                candidates = iou[d].masked_fill(taken, -1.0)
                best = int(candidates.argmax())
                if float(candidates[best]) >= iou_threshold:
                    taken[best] = True
                    hits[d] = True
        all_scores.append(scores)
        all_hits.append(hits)
    scores = torch.cat(all_scores) if all_scores else torch.empty(0)
    hits = torch.cat(all_hits) if all_hits else torch.empty(0, dtype=torch.bool)
    order = scores.argsort(descending=True, stable=True)
    return scores[order], hits[order], total


def precision_recall(
    predictions: Detections, targets: list[torch.Tensor], iou_threshold: float = 0.5
) -> dict[str, list[float]]:
    """The precision-recall curve at ``iou_threshold``.

    ``recall``/``precision``: the raw curve, one point per detection in score order;
    ``recall_levels``/``interpolated_precision``: COCO's 101 recall levels 0, 0.01, …, 1 and the
    interpolated precision p(r) = max over r' ≥ r of precision(r') (0 where recall r is never
    reached); their mean is the AP at this IoU (AP50 for 0.5).
    """
    scores, hits, total = match_detections(predictions, targets, iou_threshold)
    if total == 0:
        raise DataError("A precision-recall curve needs at least one annotated face.")
    tp = hits.double().cumsum(0)
    fp = (~hits).double().cumsum(0)
    recall = tp / total
    precision = tp / (tp + fp).clamp_min(1)
    levels = torch.tensor(COCO_RECALL_LEVELS, dtype=torch.float64)
    envelope = precision.flip(0).cummax(0).values.flip(0) if precision.numel() else precision
    interpolated = []
    for level in levels:
        # the same search pycocotools does: first point whose recall reaches the level
        reached = torch.searchsorted(recall, level.reshape(1), right=False)
        index = int(reached[0])
        interpolated.append(float(envelope[index]) if index < recall.numel() else 0.0)
    return {
        "recall": recall.tolist(),
        "precision": precision.tolist(),
        "scores": scores.tolist(),
        "recall_levels": levels.tolist(),
        "interpolated_precision": interpolated,
    }


def interpolated_ap(curve: dict[str, list[float]]) -> float:
    """Mean of the 101-point interpolated precision of :func:`precision_recall` (COCO's AP at
    that IoU)."""
    values = curve["interpolated_precision"]
    return float(sum(values) / len(values))


def optimal_matches(
    predictions: Detections, targets: list[torch.Tensor], iou_threshold: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """FDDB's one-to-one matching at every score threshold: ``(scores, gains, number of faces)``.

    Per image, detections are added in decreasing score; after each one the largest number of
    detection-face pairs with IoU > ``iou_threshold`` that can be matched one-to-one is found by
    an optimal assignment (``scipy.optimize.linear_sum_assignment``). A detection's gain is how
    much it raised that number (0 or 1), so the cumulative gains over all detections above a
    threshold are the true positives FDDB counts there, whatever greedy order would have done.
    Returned sorted by decreasing score (stable across images, as :func:`match_detections`).
    """
    from scipy.optimize import linear_sum_assignment
    from torchvision.ops import box_iou

    _check_detections(predictions, targets)
    all_scores, all_gains = [], []
    total = 0
    for prediction, truth in zip(predictions, targets):
        truth = truth.double().reshape(-1, 4)
        total += int(truth.shape[0])
        scores = prediction["scores"].double().reshape(-1)
        order = scores.argsort(descending=True, stable=True)
        scores = scores[order]
        gains = torch.zeros(scores.shape[0], dtype=torch.long)
        if truth.shape[0] and scores.shape[0]:
            boxes = prediction["boxes"].double().reshape(-1, 4)[order]
            matchable = (box_iou(boxes, truth) > iou_threshold).double().numpy()
            matched = 0
            for count in range(1, scores.shape[0] + 1):
                if matched == truth.shape[0]:
                    break
                if not matchable[count - 1].any():
                    continue  # a detection that overlaps no face cannot raise the matching
                rows, cols = linear_sum_assignment(matchable[:count], maximize=True)
                now = int(matchable[rows, cols].sum())
                gains[count - 1] = now - matched
                matched = now
        all_scores.append(scores)
        all_gains.append(gains)
    scores = torch.cat(all_scores) if all_scores else torch.empty(0, dtype=torch.float64)
    gains = torch.cat(all_gains) if all_gains else torch.empty(0, dtype=torch.long)
    order = scores.argsort(descending=True, stable=True)
    return scores[order], gains[order], total


def discrete_roc(
    predictions: Detections, targets: list[torch.Tensor], iou_threshold: float = 0.5
) -> dict[str, list[float]]:
    """FDDB's discrete ROC: true positives against false positives as the score threshold falls.

    One point per distinct detection score (detections of equal score enter together):
    ``false_positives`` (count), ``true_positives`` (count), ``true_positive_rate`` (÷ faces) and
    the ``thresholds`` (scores) at which they are reached; true positives by FDDB's optimal
    one-to-one matching with IoU > ``iou_threshold`` (:func:`optimal_matches`).
    """
    scores, gains, total = optimal_matches(predictions, targets, iou_threshold)
    if total == 0:
        raise DataError("A discrete ROC needs at least one annotated face.")
    tp = gains.cumsum(0)
    fp = torch.arange(1, scores.numel() + 1) - tp
    if scores.numel():
        last_of_score = torch.ones(scores.numel(), dtype=torch.bool)
        last_of_score[:-1] = scores[1:] != scores[:-1]
        tp, fp, thresholds = tp[last_of_score], fp[last_of_score], scores[last_of_score]
    else:
        thresholds = scores
    return {
        "false_positives": [0] + fp.tolist(),
        "true_positives": [0] + tp.tolist(),
        "true_positive_rate": [0.0] + (tp.double() / total).tolist(),
        "thresholds": [float("inf")] + thresholds.tolist(),
        "faces": total,
    }


def tpr_at_false_positives(roc: dict[str, list[float]], false_positives: float) -> float:
    """The highest true-positive rate of the discrete ROC reached with at most this many false
    positives."""
    best = 0.0
    for fp, tpr in zip(roc["false_positives"], roc["true_positive_rate"]):
        if fp <= false_positives:
            best = max(best, float(tpr))
    return best


def _thin(values: dict[str, list], keys: Sequence[str], limit: int) -> dict[str, list]:
    """Keep at most ``limit`` evenly spaced points (always the first and last) of parallel lists."""
    length = len(values[keys[0]])
    if length <= limit:
        return {key: list(values[key]) for key in keys}
    index = sorted({round(i * (length - 1) / (limit - 1)) for i in range(limit)})
    return {key: [values[key][i] for i in index] for key in keys}


@section("metrics")
def detection_report(
    predictions: Detections,
    targets: list[torch.Tensor],
    *,
    false_positives_per_image: float = 0.5,
    curve_points: int = 200,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Metrics (``ap``, ``ap50``, ``ap75``, ``roc_tpr``) and compact curves for a result row's
    details.

    ``roc_tpr``: the FDDB discrete ROC's true-positive rate at ``false_positives_per_image`` ×
    number of images false positives. Curves are thinned to at most ``curve_points`` points
    (the ROC up to 2 false positives per image, plus its last point).
    """
    metrics = coco_ap(predictions, targets)
    pr = precision_recall(predictions, targets, 0.5)
    roc = discrete_roc(predictions, targets, 0.5)
    budget = false_positives_per_image * len(targets)
    metrics["roc_tpr"] = tpr_at_false_positives(roc, budget)
    # the ROC is kept densely up to 2 false positives per image (where detectors differ), plus
    # its end point
    roc_keys = ("false_positives", "true_positives", "true_positive_rate")
    low = sum(1 for fp in roc["false_positives"] if fp <= 2 * len(targets))
    kept = _thin({key: roc[key][:low] for key in roc_keys}, roc_keys, curve_points)
    if low < len(roc["false_positives"]):
        for key in roc_keys:
            kept[key].append(roc[key][-1])
    curves = {
        "precision_recall": {
            **_thin(pr, ("recall", "precision"), curve_points),
            "recall_levels": pr["recall_levels"],
            "interpolated_precision": pr["interpolated_precision"],
        },
        "discrete_roc": {
            **kept,
            "faces": roc["faces"],
            "images": len(targets),
            "roc_false_positives": budget,
        },
    }
    return metrics, curves
