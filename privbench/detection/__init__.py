"""Face detection on sensor measurements: the shared detector backend, box mapping and scores.

Used by the utility task ``face-detection`` (CAnOPIC §4, experiment 3) and by the privacy attack
``face-detection-attack`` (the four experiments of 2PSC §3). Everything a detector sees is a
measurement; boxes are always *scored* in clean-image pixel coordinates.

**Default detector: FCOS** (Tian et al., ICCV 2019) from torchvision, on a light residual backbone
with a feature pyramid at strides 4, 8 and 16 of the detector input. Why FCOS for small faces:

- it is anchor-free: every feature-map location inside a face (within 1.5 strides of its centre)
  is a positive sample, so a 12-pixel face gets several positives on the stride-4 level. Anchor
  detectors (Faster R-CNN, RetinaNet) label an anchor positive only when its IoU with the face
  exceeds a threshold, and small faces match few or no anchors unless the anchor sizes and
  strides are tuned to them (the small-face anchor problem S³FD describes);
- it is one stage: no RoI pooling of a 7×7 grid out of a face a few feature cells wide, and no
  second network to train, which keeps it trainable from scratch on 2 CPU cores;
- its head depth is a parameter (two convolutions per branch here instead of four), and SSDlite's
  fixed 300×300 design and coarse feature maps (stride ≥ 16) suit small faces least.

Faster R-CNN (the detector of CAnOPIC's experiment 3) and RetinaNet are available through
``architecture``, with anchors sized to faces (two scales per level, 3 and 3·√2 strides, aspect
h/w = 1.1); ``backbone`` ``resnet18``/``resnet50`` builds a ResNet-FPN for large data on a GPU.
Weights are random (``weights=None``, ``weights_backbone=None`` in torchvision's terms) or loaded
from a local file (``weights``); nothing is downloaded.

**The box-mapping rule** (one rule for every encoder, including those that change resolution:
pixelation to a block grid, low resolution, max-pooling). A clean scene of ``W_in × H_in`` pixels
becomes a measurement of ``W_out × H_out``; with ``s_x = W_out / W_in`` and ``s_y = H_out / H_in``,

- training boxes go into measurement coordinates: ``(x0, y0, x1, y1) → (s_x·x0, s_y·y0, s_x·x1, s_y·y1)``;
- predicted boxes come back to clean pixel coordinates by the inverse, ``(x / s_x, y / s_y)``, and are
  scored against the clean annotations, so every encoder's AP is measured on the same boxes.

(Inside the detector, measurements are additionally resized so that their short side is
``input_size``; the backend undoes that itself and returns boxes in measurement coordinates.)

**Scores.** COCO-style AP@[.5:.95] and AP50 from torchmetrics' ``MeanAveragePrecision``
(pycocotools backend); the precision-recall curve at IoU 0.5 (COCO's 101-point interpolated
precision, whose mean is AP50); and FDDB's discrete ROC (Jain & Learned-Miller 2010): true
positives against the number of false positives as the score threshold is lowered, a detection
being a true positive when its IoU with a still-unmatched face is at least 0.5 (greedy matching in
score order, as COCO does; FDDB matches one-to-one by bipartite matching instead).

**The mmdet backend** (``backend: mmdet``, extra ``privbench[mmdet]``): any MMDetection 3.x config
(a file path, or a name of a config bundled with mmdet such as ``faster-rcnn_r50_fpn_1x_coco``) is
built with one class, the measurement's channel count, the training set's standardization and no
pre-trained initialization, and trained by the same loop. mmdet is imported only when used.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import torch
from pydantic import Field, model_validator
from torch import nn

from privbench.api.config import ComponentConfig, stable_hash
from privbench.api.errors import ConfigError, DataError, InputError
from privbench.api.evaluation import RunContext
from privbench.nn.fit import HistorySummary, TrainingState
from privbench.nn.fit import epoch_seed as _epoch_seed
from privbench.nn.training import channel_statistics

#: Label of the face class in torchvision detectors (0 is the background class).
FACE_LABEL = 1
#: Version of the detector training code: enters cache keys and checkpoint signatures.
DETECTOR_VERSION = "1"
#: Salt of the detector loop's per-epoch batch orders (kept apart from the classifier loop's).
DETECTION_EPOCH_SALT = 4242
ARCHITECTURES = ("fcos", "faster-rcnn", "retinanet")
BACKBONES = ("light", "resnet18", "resnet50")
MMDET_EXTRA_HINT = (
    "The mmdet detector backend needs MMDetection 3.x and a compiled mmcv 2.1: install the extra "
    "with `pip install 'privbench[mmdet]'` after building mmcv with scripts/build_mmcv.sh "
    "(PyPI has only mmcv's source)."
)


# -- configuration ------------------------------------------------------------------------------
class DetectorTraining(ComponentConfig):
    """Budget and optimizer of one detector training run (defaults: the quick preset).

    Measured on synthfaces ``quick`` (300 training scenes, 128×128) with the default FCOS: one
    epoch of batch 8 takes about 11 s on one CPU thread, and the best validation AP50 came at
    epoch 9 (clean, 16×16 low-res) to 12 (Gaussian blur σ 8), so 12 epochs keep a cell under
    3 minutes on 2 cores.
    """

    epochs: int = Field(12, ge=1, le=1000, description="maximum number of passes over the training scenes")
    batch_size: int = Field(8, ge=1, le=1024, description="scenes per training step")
    lr: float = Field(2e-3, gt=0, le=1.0, description="peak learning rate of the one-cycle schedule (AdamW)")
    weight_decay: float = Field(1e-4, ge=0, le=1.0, description="AdamW decoupled weight decay")
    grad_clip: float = Field(10.0, gt=0, description="gradient norm clipping")
    patience: int | None = Field(
        4, ge=1, description="stop after this many epochs without a better validation AP50 (None: never)"
    )
    hflip: bool = Field(
        False,
        description="random horizontal flips of measurement and boxes (off by default: measurements of "
        "learned optics are not mirror-symmetric)",
    )
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps (smoke tests)")
    eval_batch_size: int = Field(32, ge=1, le=4096, description="scenes per inference batch")


class DetectorConfig(ComponentConfig):
    """Which detector, how large, and how it is trained (defaults: the quick preset)."""

    backend: Literal["torchvision", "mmdet"] = Field("torchvision", description="detector library")
    architecture: Literal["fcos", "faster-rcnn", "retinanet"] = Field(
        "fcos", description="torchvision detector (see the module docstring for why FCOS is the default)"
    )
    backbone: Literal["light", "resnet18", "resnet50"] = Field(
        "light", description="feature extractor: a light residual CNN (CPU) or a ResNet-FPN (GPU)"
    )
    config: str | None = Field(None, description="mmdet backend: config file path or bundled config name")
    weights: str | None = Field(
        None, description="local file with initial weights (a state dict or a checkpoint holding one); never downloaded"
    )
    widths: tuple[int, int, int, int] = Field(
        (16, 32, 64, 128), description="light backbone: stem and three stage widths (strides 2, 4, 8, 16)"
    )
    fpn_channels: int = Field(32, ge=8, le=512, description="feature pyramid channels (FCOS: a multiple of 32)")
    head_convs: int = Field(2, ge=1, le=4, description="FCOS: convolutions per head branch")
    input_size: int = Field(
        128, ge=32, le=2048, description="measurements are resized inside the detector so that their short side is this"
    )
    anchor_aspect_ratio: float = Field(1.1, gt=0.2, lt=5.0, description="anchor-based detectors: anchor height / width")
    score_threshold: float = Field(0.05, ge=0.0, lt=1.0, description="detections below this score are dropped")
    nms_iou: float = Field(0.5, gt=0.0, le=1.0, description="IoU of non-maximum suppression")
    max_detections: int = Field(100, ge=1, le=1000, description="detections kept per scene")
    training: DetectorTraining = Field(default_factory=DetectorTraining)

    @model_validator(mode="after")
    def _backend_fields(self) -> "DetectorConfig":
        if self.backend == "mmdet" and not self.config:
            raise ValueError("the mmdet backend needs `config`: an mmdet config file path or a bundled config name")
        if self.backend == "torchvision" and self.config:
            raise ValueError("`config` is for the mmdet backend; the torchvision backend takes `architecture` and `backbone`")
        if self.architecture == "fcos" and self.fpn_channels % 32:
            raise ValueError(
                f"fpn_channels must be a multiple of 32 for FCOS (its head normalizes with GroupNorm(32)); got {self.fpn_channels}"
            )
        if any(w < 8 for w in self.widths):
            raise ValueError(f"widths must be at least 8 each; got {self.widths}")
        return self

    def label(self) -> str:
        """Short name of the detector for result details, e.g. ``torchvision:fcos/light``."""
        if self.backend == "mmdet":
            return f"mmdet:{self.config}"
        return f"torchvision:{self.architecture}/{self.backbone}"

    def model_key(self) -> dict[str, Any]:
        """Everything that defines the network (not its training), for cache keys."""
        return self.model_dump(mode="json", exclude={"training"})


# -- the box-mapping rule -------------------------------------------------------------------------
def measurement_scale(clean_hw: Sequence[int], measured_hw: Sequence[int]) -> tuple[float, float]:
    """``(s_x, s_y) = (W_out / W_in, H_out / H_in)``: clean pixels → measurement pixels."""
    (h_in, w_in), (h_out, w_out) = (int(v) for v in clean_hw[-2:]), (int(v) for v in measured_hw[-2:])
    if min(h_in, w_in, h_out, w_out) <= 0:
        raise InputError(f"image sizes must be positive; got clean {tuple(clean_hw)} and measured {tuple(measured_hw)}.")
    return w_out / w_in, h_out / h_in


def boxes_to_measurement(boxes: torch.Tensor, clean_hw: Sequence[int], measured_hw: Sequence[int]) -> torch.Tensor:
    """xyxy boxes in clean pixels → measurement pixels (multiply x by s_x and y by s_y)."""
    sx, sy = measurement_scale(clean_hw, measured_hw)
    return boxes.float() * boxes.new_tensor([sx, sy, sx, sy], dtype=torch.float32)


def boxes_to_clean(boxes: torch.Tensor, clean_hw: Sequence[int], measured_hw: Sequence[int]) -> torch.Tensor:
    """xyxy boxes in measurement pixels → clean pixels (the inverse of :func:`boxes_to_measurement`)."""
    sx, sy = measurement_scale(clean_hw, measured_hw)
    return boxes.float() / boxes.new_tensor([sx, sy, sx, sy], dtype=torch.float32)


def face_boxes(scenes, category: str = "face") -> list[torch.Tensor]:
    """Per scene, the ``(k, 4)`` xyxy boxes (clean pixels) of ``category`` from a :class:`Scenes`."""
    if category not in scenes.categories:
        raise DataError(
            f"The scenes have no box category {category!r} (categories: {', '.join(scenes.categories) or 'none'}); "
            f"face detection needs boxes labelled {category!r}."
        )
    index = scenes.categories.index(category)
    return [b.float().reshape(-1, 4)[l == index] for b, l in zip(scenes.boxes, scenes.box_labels)]


# -- scores ---------------------------------------------------------------------------------------
Detections = list[dict[str, torch.Tensor]]  # per image: {"boxes": (k, 4) xyxy, "scores": (k,)}


def _check_detections(predictions: Detections, targets: list[torch.Tensor]) -> None:
    if len(predictions) != len(targets):
        raise InputError(f"got detections for {len(predictions)} images but annotations for {len(targets)}.")
    for index, prediction in enumerate(predictions):
        if "boxes" not in prediction or "scores" not in prediction:
            raise InputError(f"detections of image {index} need 'boxes' and 'scores'; got keys {sorted(prediction)}.")
        if prediction["boxes"].reshape(-1, 4).shape[0] != prediction["scores"].reshape(-1).shape[0]:
            raise InputError(f"detections of image {index}: as many scores as boxes are needed.")


def coco_ap(predictions: Detections, targets: list[torch.Tensor]) -> dict[str, float]:
    """COCO AP@[.5:.95] (``ap``), AP50 and AP75 of one-class detections, via torchmetrics (pycocotools)."""
    from torchmetrics.detection import MeanAveragePrecision

    _check_detections(predictions, targets)
    if sum(int(t.shape[0]) for t in targets) == 0:
        raise DataError("AP is undefined without any annotated face in the evaluated scenes.")
    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools")
    metric.update(
        [
            {"boxes": p["boxes"].float().reshape(-1, 4), "scores": p["scores"].float().reshape(-1),
             "labels": torch.zeros(p["scores"].numel(), dtype=torch.long)}
            for p in predictions
        ],
        [{"boxes": t.float().reshape(-1, 4), "labels": torch.zeros(t.shape[0], dtype=torch.long)} for t in targets],
    )
    result = metric.compute()
    # pycocotools reports -1 for "no detections at all": that is an AP of 0.
    return {name: max(0.0, float(result[key])) for name, key in (("ap", "map"), ("ap50", "map_50"), ("ap75", "map_75"))}


def match_detections(
    predictions: Detections, targets: list[torch.Tensor], iou_threshold: float = 0.5, max_per_image: int = 100
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


def precision_recall(predictions: Detections, targets: list[torch.Tensor], iou_threshold: float = 0.5) -> dict[str, list[float]]:
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
    levels = torch.linspace(0, 1, 101, dtype=torch.float64)
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
    """Mean of the 101-point interpolated precision of :func:`precision_recall` (COCO's AP at that IoU)."""
    values = curve["interpolated_precision"]
    return float(sum(values) / len(values))


def discrete_roc(predictions: Detections, targets: list[torch.Tensor], iou_threshold: float = 0.5) -> dict[str, list[float]]:
    """FDDB's discrete ROC: true positives against false positives as the score threshold falls.

    One point per distinct detection score (detections of equal score enter together):
    ``false_positives`` (count), ``true_positives`` (count), ``true_positive_rate`` (÷ faces) and
    the ``thresholds`` (scores) at which they are reached.
    """
    scores, hits, total = match_detections(predictions, targets, iou_threshold)
    if total == 0:
        raise DataError("A discrete ROC needs at least one annotated face.")
    tp = hits.long().cumsum(0)
    fp = (~hits).long().cumsum(0)
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
    """The highest true-positive rate of the discrete ROC reached with at most this many false positives."""
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


def detection_report(
    predictions: Detections, targets: list[torch.Tensor], *, false_positives_per_image: float = 0.5, curve_points: int = 200
) -> tuple[dict[str, float], dict[str, Any]]:
    """Metrics (``ap``, ``ap50``, ``ap75``, ``roc_tpr``) and compact curves for a result row's details.

    ``roc_tpr``: the FDDB discrete ROC's true-positive rate at ``false_positives_per_image`` ×
    number of images false positives. Curves are thinned to at most ``curve_points`` points
    (the ROC up to 2 false positives per image, plus its last point).
    """
    metrics = coco_ap(predictions, targets)
    pr = precision_recall(predictions, targets, 0.5)
    roc = discrete_roc(predictions, targets, 0.5)
    budget = false_positives_per_image * len(targets)
    metrics["roc_tpr"] = tpr_at_false_positives(roc, budget)
    # the ROC is kept densely up to 2 false positives per image (where detectors differ), plus its end point
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


# -- figures --------------------------------------------------------------------------------------
def plot_protocol_curves(curves: dict[str, dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Precision-recall curves (left) and discrete ROCs (right) of several protocols, like 2PSC Fig. 4a.

The ROC is drawn up to 2 false positives per scene.

    ``curves``: protocol name → the ``details`` of a detection result row (or anything holding
    its ``precision_recall`` and ``discrete_roc`` entries, see :func:`detection_report`).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if not curves:
        raise InputError("plot_protocol_curves needs at least one protocol's curves.")
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    images = 0
    for name, details in curves.items():
        if "precision_recall" not in details or "discrete_roc" not in details:
            raise InputError(
                f"curves of {name!r} lack 'precision_recall'/'discrete_roc' (pass the details of a detection result)."
            )
        pr, roc = details["precision_recall"], details["discrete_roc"]
        ap50 = sum(pr["interpolated_precision"]) / len(pr["interpolated_precision"])
        left.plot(pr["recall_levels"], pr["interpolated_precision"], label=f"{name} (AP50 {100 * ap50:.1f})")
        right.plot(roc["false_positives"], roc["true_positive_rate"], label=name)
        images = max(images, int(roc.get("images", 0)))
    if images:  # the low false-positive end, where detectors differ (FDDB plots up to ~0.7 FP per image)
        right.set_xlim(0, 2 * images)
    left.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="precision-recall (IoU 0.5)")
    right.set(xlabel="false positives", ylabel="true positive rate", ylim=(0, 1.02), title="discrete ROC (FDDB)")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="lower left" if axis is left else "lower right")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def curves_from_rows(
    rows, encoder: str | None = None, evaluation: str = "face-detection-attack", *, encoder_label: str | None = None
) -> dict[str, dict]:
    """Protocol → details of the store rows of ``evaluation`` (one encoder, by registered name or
    by leaderboard label), ready for plotting; rows without curves are left out."""
    selected = rows[rows["evaluation"] == evaluation]
    if encoder is not None:
        selected = selected[selected["encoder"] == encoder]
    if encoder_label is not None:
        selected = selected[selected["encoder_label"] == encoder_label]
    return {
        str(row.protocol): row.details
        for row in selected.itertuples(index=False)
        if isinstance(row.details, dict) and "precision_recall" in row.details and "discrete_roc" in row.details
    }


# -- the torchvision detector ----------------------------------------------------------------------
def _conv_bn_relu(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)
    )


class _ResidualBlock(nn.Module):
    """ResNet basic block (two 3×3 conv-BN layers and the projected shortcut)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(out_channels),
        )
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class LightBackbone(nn.Module):
    """A stride-2 stem and three residual stages (strides 4, 8, 16) under a feature pyramid."""

    def __init__(self, in_channels: int, widths: Sequence[int], fpn_channels: int) -> None:
        from torchvision.ops import FeaturePyramidNetwork

        super().__init__()
        self.stem = _conv_bn_relu(in_channels, widths[0], 2)
        self.stages = nn.ModuleList(_ResidualBlock(widths[i], widths[i + 1], 2) for i in range(len(widths) - 1))
        self.fpn = FeaturePyramidNetwork(list(widths[1:]), fpn_channels)
        self.out_channels = fpn_channels

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        x = self.stem(x)
        features: OrderedDict[str, torch.Tensor] = OrderedDict()
        for index, stage in enumerate(self.stages):
            x = stage(x)
            features[str(index)] = x
        return self.fpn(features)


def _resnet_backbone(name: str, in_channels: int, fpn_channels: int) -> nn.Module:
    """A randomly initialised torchvision ResNet (weights=None) under a feature pyramid (strides 4–32)."""
    import torchvision
    from torchvision.models.detection.backbone_utils import BackboneWithFPN

    resnet = getattr(torchvision.models, name)(weights=None)
    if in_channels != 3:
        resnet.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    widths = {"resnet18": [64, 128, 256], "resnet50": [256, 512, 1024]}[name]
    return BackboneWithFPN(resnet, {"layer1": "0", "layer2": "1", "layer3": "2"}, widths, fpn_channels)


def _feature_strides(backbone: nn.Module, in_channels: int, size: int) -> list[int]:
    """Strides of the backbone's output maps, probed with one blank image of ``size``×``size``."""
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        features = backbone(torch.zeros(1, in_channels, size, size))
    backbone.train(was_training)
    return [max(1, round(size / f.shape[-1])) for f in features.values()]


class TorchvisionFaceDetector(nn.Module):
    """A torchvision detector behind a per-channel standardization of the measurement.

    The standardization (training-set mean and std per channel) is a pair of buffers, saved with
    the weights; the torchvision transform itself only resizes (its mean 0, std 1).
    """

    def __init__(self, config: DetectorConfig, in_channels: int) -> None:
        from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
        from torchvision.models.detection.anchor_utils import AnchorGenerator
        from torchvision.models.detection.fcos import FCOSHead
        from torchvision.models.detection.retinanet import RetinaNetHead

        super().__init__()
        self.in_channels = in_channels
        self.register_buffer("input_mean", torch.zeros(in_channels))
        self.register_buffer("input_std", torch.ones(in_channels))
        if config.backbone == "light":
            backbone = LightBackbone(in_channels, config.widths, config.fpn_channels)
        else:
            backbone = _resnet_backbone(config.backbone, in_channels, config.fpn_channels)
        strides = _feature_strides(backbone, in_channels, config.input_size)
        self.strides = strides
        common = dict(
            min_size=config.input_size, max_size=config.input_size * 2,
            image_mean=[0.0] * in_channels, image_std=[1.0] * in_channels,
        )
        if config.architecture == "fcos":
            # FCOS uses one "anchor" point per location, of size = stride (its scale ranges and
            # box normalization are defined from it).
            anchors = AnchorGenerator(tuple((float(s),) for s in strides), ((1.0,),) * len(strides))
            self.model = FCOS(
                backbone, num_classes=2, anchor_generator=anchors,
                head=FCOSHead(backbone.out_channels, 1, 2, num_convs=config.head_convs),
                score_thresh=config.score_threshold, nms_thresh=config.nms_iou,
                detections_per_img=config.max_detections, topk_candidates=max(200, config.max_detections), **common,
            )
        else:
            sizes = tuple((3.0 * s, 3.0 * math.sqrt(2.0) * s) for s in strides)
            anchors = AnchorGenerator(sizes, ((config.anchor_aspect_ratio,),) * len(strides))
            if config.architecture == "retinanet":
                head = RetinaNetHead(backbone.out_channels, anchors.num_anchors_per_location()[0], 2)
                self.model = RetinaNet(
                    backbone, num_classes=2, anchor_generator=anchors, head=head,
                    score_thresh=config.score_threshold, nms_thresh=config.nms_iou,
                    detections_per_img=config.max_detections, **common,
                )
            else:
                from torchvision.ops import MultiScaleRoIAlign

                self.model = FasterRCNN(
                    backbone, num_classes=2, rpn_anchor_generator=anchors,
                    box_roi_pool=MultiScaleRoIAlign([str(i) for i in range(len(strides))], 7, 2),
                    rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
                    rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=150,
                    rpn_batch_size_per_image=128, box_batch_size_per_image=128,
                    box_score_thresh=config.score_threshold, box_nms_thresh=config.nms_iou,
                    box_detections_per_img=config.max_detections, **common,
                )

    @torch.no_grad()
    def set_standardization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.input_mean.copy_(mean.reshape(-1))
        self.input_std.copy_(std.reshape(-1))

    def _standardize(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        mean, std = self.input_mean.view(-1, 1, 1), self.input_std.view(-1, 1, 1)
        for image in images:
            if image.dim() != 3 or image.shape[0] != self.in_channels:
                raise InputError(
                    f"this detector was built for {self.in_channels}-channel measurements; got an image of shape "
                    f"{tuple(image.shape)}."
                )
        return [(image - mean) / std for image in images]

    def losses(self, images: list[torch.Tensor], boxes: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        targets = [
            {"boxes": b, "labels": torch.full((b.shape[0],), FACE_LABEL, dtype=torch.int64, device=b.device)} for b in boxes
        ]
        return self.model(self._standardize(images), targets)

    def detect(self, images: list[torch.Tensor]) -> Detections:
        outputs = self.model(self._standardize(images))
        return [
            {"boxes": o["boxes"][o["labels"] == FACE_LABEL], "scores": o["scores"][o["labels"] == FACE_LABEL]}
            for o in outputs
        ]


# -- the mmdet detector (optional extra) ---------------------------------------------------------
def mmdet_available() -> bool:
    """Whether mmdet (and the compiled mmcv it imports) can be imported."""
    try:
        import mmdet  # noqa: F401
        from mmdet.registry import MODELS  # noqa: F401
    except Exception:  # ImportError, or mmcv's own version/ops errors at import time
        return False
    return True


def _import_mmdet():
    try:
        import mmdet  # noqa: F401
        from mmdet.registry import MODELS
        from mmdet.structures import DetDataSample
        from mmdet.utils import register_all_modules
        from mmengine.config import Config
        from mmengine.structures import InstanceData
    except Exception as error:
        raise ConfigError(f"{MMDET_EXTRA_HINT} (importing mmdet failed: {error})") from None
    return MODELS, DetDataSample, register_all_modules, Config, InstanceData


def resolve_mmdet_config(name_or_path: str) -> Path:
    """A config file: the path itself, or the config of that name bundled with mmdet (``.mim/configs``)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    import mmdet

    bundled = Path(mmdet.__file__).parent / ".mim" / "configs"
    stem = Path(name_or_path).name.removesuffix(".py")
    matches = sorted(bundled.rglob(f"{stem}.py")) if bundled.is_dir() else []
    if not matches:
        raise ConfigError(
            f"mmdet config {name_or_path!r} is neither a file nor a config bundled with mmdet "
            f"(looked for {stem}.py under {bundled}). Pass a config file path or a bundled name such as "
            f"'faster-rcnn_r50_fpn_1x_coco' or 'retinanet_r50_fpn_1x_coco'."
        )
    return matches[0]


def _adapt_mmdet_model_config(node: Any, in_channels: int) -> Any:
    """One face class, ``in_channels`` input channels, no pre-trained initialization (recursively)."""
    if isinstance(node, dict):
        for key in list(node.keys()):
            value = node[key]
            if key == "num_classes" and isinstance(value, int):
                node[key] = 1
            elif key == "init_cfg" and isinstance(value, dict) and value.get("type") == "Pretrained":
                node[key] = None
            elif key == "pretrained" and isinstance(value, str):
                node[key] = None
            else:
                _adapt_mmdet_model_config(value, in_channels)
    elif isinstance(node, (list, tuple)):
        for item in node:
            _adapt_mmdet_model_config(item, in_channels)
    return node


class MMDetFaceDetector(nn.Module):
    """An mmdet 3.x detector from a config, with the same ``losses``/``detect`` interface.

    Measurements are resized (bilinear) so that their short side is ``input_size`` and boxes are
    scaled alike; the data preprocessor standardizes with the training set's statistics and pads
    to a multiple of 32. Predicted boxes are scaled back to measurement coordinates.
    """

    def __init__(self, config: DetectorConfig, in_channels: int) -> None:
        super().__init__()
        MODELS, self._DetDataSample, register_all_modules, Config, self._InstanceData = _import_mmdet()
        register_all_modules(init_default_scope=True)
        cfg = Config.fromfile(str(resolve_mmdet_config(config.config or "")))
        model_cfg = cfg.model.to_dict() if hasattr(cfg.model, "to_dict") else dict(cfg.model)
        _adapt_mmdet_model_config(model_cfg, in_channels)
        if "backbone" in model_cfg and in_channels != 3:
            model_cfg["backbone"]["in_channels"] = in_channels
        model_cfg["data_preprocessor"] = {
            "type": "DetDataPreprocessor", "mean": [0.0] * in_channels, "std": [1.0] * in_channels,
            "bgr_to_rgb": False, "pad_size_divisor": 32,
        }
        test_cfg = model_cfg.get("test_cfg") or {}
        for stage in ("rcnn",) if "rcnn" in test_cfg else ():
            test_cfg[stage]["max_per_img"] = config.max_detections
            test_cfg[stage]["score_thr"] = config.score_threshold
        if "max_per_img" in test_cfg:
            test_cfg["max_per_img"] = config.max_detections
            test_cfg["score_thr"] = config.score_threshold
        from mmengine.config import ConfigDict

        # mmdet's detectors read their sub-configs by attribute (``train_cfg.rpn``): a ConfigDict, not a dict.
        self.model = MODELS.build(ConfigDict(model_cfg))
        self.model.init_weights()
        self.in_channels = in_channels
        self.input_size = config.input_size
        # mmengine keeps the preprocessor's mean/std out of the state dict: these persistent
        # copies travel with the weights and are pushed into the preprocessor before each use.
        self.register_buffer("input_mean", torch.zeros(in_channels))
        self.register_buffer("input_std", torch.ones(in_channels))

    @torch.no_grad()
    def set_standardization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.input_mean.copy_(mean.reshape(-1))
        self.input_std.copy_(std.reshape(-1))

    @torch.no_grad()
    def _sync_standardization(self) -> None:
        preprocessor = self.model.data_preprocessor
        preprocessor.mean.copy_(self.input_mean.view(-1, 1, 1).to(preprocessor.mean))
        preprocessor.std.copy_(self.input_std.view(-1, 1, 1).to(preprocessor.std))

    def _batch(self, images: list[torch.Tensor], boxes: list[torch.Tensor] | None):
        import torch.nn.functional as F

        inputs, samples, factors = [], [], []
        for index, image in enumerate(images):
            if image.dim() != 3 or image.shape[0] != self.in_channels:
                raise InputError(f"this detector was built for {self.in_channels}-channel measurements; got {tuple(image.shape)}.")
            height, width = image.shape[-2:]
            factor = self.input_size / min(height, width)
            size = (max(1, round(height * factor)), max(1, round(width * factor)))
            resized = F.interpolate(image[None].float(), size=size, mode="bilinear", align_corners=False)[0]
            sx, sy = size[1] / width, size[0] / height
            sample = self._DetDataSample(metainfo={"img_shape": size, "ori_shape": size, "scale_factor": (1.0, 1.0), "img_id": index})
            if boxes is not None:
                instances = self._InstanceData()
                instances.bboxes = boxes[index].float() * boxes[index].new_tensor([sx, sy, sx, sy])
                instances.labels = torch.zeros(boxes[index].shape[0], dtype=torch.long, device=image.device)
                sample.gt_instances = instances
            inputs.append(resized)
            samples.append(sample)
            factors.append((sx, sy))
        return {"inputs": inputs, "data_samples": samples}, factors

    def losses(self, images: list[torch.Tensor], boxes: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        self._sync_standardization()
        data, _ = self._batch(images, boxes)
        data = self.model.data_preprocessor(data, True)
        raw = self.model(**data, mode="loss")
        loss, _ = self.model.parse_losses(raw)
        return {"loss": loss}

    def detect(self, images: list[torch.Tensor]) -> Detections:
        self._sync_standardization()
        data, factors = self._batch(images, None)
        data = self.model.data_preprocessor(data, False)
        results = self.model(**data, mode="predict")
        detections = []
        for result, (sx, sy) in zip(results, factors):
            predicted = result.pred_instances
            keep = predicted.labels == 0
            boxes = predicted.bboxes[keep].float() / predicted.bboxes.new_tensor([sx, sy, sx, sy])
            detections.append({"boxes": boxes, "scores": predicted.scores[keep].float()})
        return detections


# -- building -----------------------------------------------------------------------------------
def load_weights_file(model: nn.Module, path: str) -> dict[str, int]:
    """Initialize ``model`` from a local file: tensors whose name and shape match are loaded.

    Accepts a plain state dict or a checkpoint holding one under ``state_dict`` or ``model``;
    a file sharing no tensor with the model is an error (wrong architecture).
    """
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"detector weights file {str(file)!r} does not exist (weights are only read from local files).")
    try:
        payload = torch.load(file, map_location="cpu", weights_only=False)
    except Exception as error:
        raise ConfigError(f"detector weights file {str(file)!r} cannot be read by torch.load: {error}") from None
    if isinstance(payload, dict):
        for key in ("state_dict", "model"):
            if isinstance(payload.get(key), dict):
                payload = payload[key]
                break
    if not isinstance(payload, dict):
        raise ConfigError(f"detector weights file {str(file)!r} holds a {type(payload).__name__}, not a state dict.")
    own = model.state_dict()
    prefixed = {k if k in own else f"model.{k}": v for k, v in payload.items() if isinstance(v, torch.Tensor)}
    matched = {k: v for k, v in prefixed.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise ConfigError(
            f"detector weights file {str(file)!r} shares no tensor (by name and shape) with the configured detector; "
            f"it was saved for another architecture."
        )
    model.load_state_dict(matched, strict=False)
    return {"loaded": len(matched), "of": len(own)}


def build_detector(config: DetectorConfig, in_channels: int) -> nn.Module:
    """A new detector for ``in_channels``-channel measurements (random init, or ``config.weights``)."""
    if in_channels < 1:
        raise InputError(f"measurements need at least one channel; got {in_channels}.")
    if config.backend == "mmdet":
        model: nn.Module = MMDetFaceDetector(config, in_channels)
    else:
        model = TorchvisionFaceDetector(config, in_channels)
    if config.weights:
        load_weights_file(model, config.weights)
    return model


# -- data and training --------------------------------------------------------------------------
@dataclass
class DetectionSet:
    """Measurements of scenes and their face boxes in measurement coordinates."""

    images: torch.Tensor  # (N, C, h, w) float
    boxes: list[torch.Tensor]  # per image (k, 4) xyxy in measurement pixels

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.shape[0] == 0:
            raise DataError(f"detection needs a non-empty (N, C, H, W) measurement tensor; got {tuple(self.images.shape)}.")
        if len(self.boxes) != self.images.shape[0]:
            raise DataError(f"{self.images.shape[0]} measurements but boxes for {len(self.boxes)} scenes.")
        if not torch.isfinite(self.images).all():
            raise DataError("the measurements contain NaN or infinite values.")

    @classmethod
    def from_clean_boxes(cls, measurements: torch.Tensor, clean_boxes: list[torch.Tensor], clean_hw: Sequence[int]) -> "DetectionSet":
        """Map clean-pixel boxes into the measurements' coordinates (the module's one rule).

        Boxes are clipped to the measurement; boxes that collapse below 1e-3 measurement pixels
        (a face far smaller than one sensor pixel) cannot be regressed and are left out of training.
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


def tensor_digest(*tensors: torch.Tensor | Sequence[torch.Tensor]) -> str:
    """SHA-256 of the exact contents (shape, dtype, bytes) of tensors and lists of tensors."""
    digest = hashlib.sha256()

    def add(t: torch.Tensor) -> None:
        t = t.detach().cpu().contiguous()
        digest.update(f"{tuple(t.shape)}{t.dtype}".encode())
        digest.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())

    for item in tensors:
        if isinstance(item, torch.Tensor):
            add(item)
        else:
            digest.update(f"list{len(item)}".encode())
            for t in item:
                add(t)
    return digest.hexdigest()[:32]


@torch.no_grad()
def detect(model: nn.Module, images: torch.Tensor, batch_size: int = 32, device: torch.device | str | None = None) -> Detections:
    """Detections of ``model`` on ``(N, C, h, w)`` measurements, boxes in measurement pixels, on the CPU."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    outputs: Detections = []
    for start in range(0, images.shape[0], batch_size):
        chunk = [image.to(device).float() for image in images[start : start + batch_size]]
        for result in model.detect(chunk):
            outputs.append({"boxes": result["boxes"].detach().float().cpu(), "scores": result["scores"].detach().float().cpu()})
    model.train(was_training)
    return outputs


def detect_in_clean_coordinates(
    model: nn.Module, images: torch.Tensor, clean_hw: Sequence[int], batch_size: int = 32, device=None
) -> Detections:
    """Detections on measurements, mapped back to clean pixel coordinates (the module's one rule)."""
    measured_hw = tuple(images.shape[-2:])
    return [
        {"boxes": boxes_to_clean(d["boxes"], clean_hw, measured_hw), "scores": d["scores"]}
        for d in detect(model, images, batch_size, device)
    ]


@dataclass
class DetectorHistory(HistorySummary):
    """Per-epoch records and the outcome of one detector training run."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_ap50: float = float("nan")
    stopped_early: bool = False
    resumed_from_epoch: int = 0
    steps: int = 0
    wall_time_s: float = 0.0



def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _flip(image: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    width = image.shape[-1]
    flipped = boxes.clone()
    flipped[:, 0], flipped[:, 2] = width - boxes[:, 2], width - boxes[:, 0]
    return image.flip(-1), flipped


def validation_ap50(model: nn.Module, data: DetectionSet, batch_size: int, device) -> float:
    """AP50 (101-point interpolated, in measurement coordinates) of ``model`` on ``data``."""
    if sum(int(b.shape[0]) for b in data.boxes) == 0:
        raise DataError("the validation scenes hold no face box: early stopping on AP50 is impossible.")
    return interpolated_ap(precision_recall(detect(model, data.images, batch_size, device), data.boxes, 0.5))


def train_detector(
    model: nn.Module,
    train: DetectionSet,
    val: DetectionSet,
    config: DetectorTraining,
    ctx: RunContext,
    name: str,
    *,
    standardize: bool = True,
    signature_extra: Any = None,
) -> tuple[nn.Module, DetectorHistory]:
    """Train ``model`` on ``train`` with early stopping on the AP50 of ``val``; returns the best weights.

    AdamW with a one-cycle schedule (20 % linear warm-up, cosine decay) and gradient clipping;
    shuffling and flips are seeded by ``ctx.seed`` and the epoch. ``standardize``: set the input
    standardization from ``train``'s per-channel statistics first. Each epoch is checkpointed
    to ``ctx.checkpoint_path(name)``; a killed run resumes after its last completed epoch.
    """
    started = time.perf_counter()
    if train.images.shape[1:2] != val.images.shape[1:2] or train.images.shape[1] != model.in_channels:
        raise DataError(
            f"{name}: training measurements have {train.images.shape[1]} channels, validation {val.images.shape[1]}, "
            f"the detector expects {model.in_channels}; both splits must go through the same encoder."
        )
    device = ctx.device
    torch.manual_seed(ctx.seed)
    if standardize:
        model.set_standardization(*channel_statistics(train.images))
    model.to(device)
    count = train.images.shape[0]
    steps_per_epoch = math.ceil(count / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=max(total_steps, 1), pct_start=0.2, anneal_strategy="cos",
        div_factor=25.0, final_div_factor=1e3,
    )
    signature = stable_hash(
        {
            "version": DETECTOR_VERSION, "name": name, "training": config.model_dump(mode="json"),
            "model": [[k, list(v.shape)] for k, v in sorted(model.state_dict().items())],
            "init": tensor_digest(list(_cpu_state(model).values())),
            "train": tensor_digest(train.images, train.boxes), "val": tensor_digest(val.images, val.boxes),
            "seed": ctx.seed, "extra": signature_extra,
        },
        length=32,
    )
    state = TrainingState(
        model, optimizer, scheduler, DetectorHistory(), signature=signature, path=ctx.checkpoint_path(name), ctx=ctx,
        name=name, worst_score=-1.0,
    )
    state.resume()
    history = state.history
    with ctx.progress(config.epochs, f"train {name}") as bar:
        if state.epoch:
            bar.update(state.epoch)
        while not state.finished and state.epoch < config.epochs and history.steps < total_steps:
            epoch = state.epoch
            epoch_started = time.perf_counter()
            generator = torch.Generator().manual_seed(_epoch_seed(ctx.seed, epoch, salt=DETECTION_EPOCH_SALT))
            torch.manual_seed(_epoch_seed(ctx.seed, epoch, salt=DETECTION_EPOCH_SALT))
            model.train()
            total_loss, batches = 0.0, 0
            for index in torch.randperm(count, generator=generator).split(config.batch_size):
                if history.steps >= total_steps:
                    break
                images, boxes = [], []
                flips = torch.rand(index.numel(), generator=generator) < 0.5
                for i, flip in zip(index.tolist(), flips.tolist()):
                    image, box = train.images[i], train.boxes[i]
                    if config.hflip and flip:
                        image, box = _flip(image, box)
                    images.append(image.to(device))
                    boxes.append(box.to(device))
                losses = model.losses(images, boxes)
                loss = sum(losses.values())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(parameters, config.grad_clip)
                optimizer.step()
                scheduler.step()
                history.steps += 1
                total_loss += float(loss.detach())
                batches += 1
            val_ap50 = validation_ap50(model, val, config.eval_batch_size, device)
            history.epochs.append(
                {"epoch": epoch + 1, "train_loss": total_loss / max(batches, 1), "val_ap50": val_ap50,
                 "lr": float(scheduler.get_last_lr()[0]), "time_s": time.perf_counter() - epoch_started}
            )
            if state.end_epoch(val_ap50, config.patience, config.epochs):
                history.best_val_ap50 = val_ap50
            state.finished = state.finished or history.steps >= total_steps
            state.save()
            bar.update(1, loss=history.epochs[-1]["train_loss"], val_ap50=val_ap50)
    state.restore_best()
    history.wall_time_s += time.perf_counter() - started
    return model, history


def fit_detector(
    config: DetectorConfig,
    train: DetectionSet,
    val: DetectionSet,
    ctx: RunContext,
    name: str,
    *,
    training: DetectorTraining | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
    shared: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """Build a detector for ``train``'s channel count (seeded) and train it; returns it and a summary.

    ``init_state``: weights to start from (fine-tuning); the standardization is then re-estimated
    from ``train``. ``shared``: look the trained weights up in / store them to ``ctx.cache``,
    keyed by the exact training data, config, initial weights and seed, so that every cell that
    needs the same detector (the clean detector of the attack's protocols; the clean camera's
    utility detector) trains it once.
    """
    training = training or config.training
    in_channels = int(train.images.shape[1])
    key = None
    if shared and ctx.cache is not None:
        key = stable_hash(
            {
                "version": DETECTOR_VERSION, "model": config.model_key(), "training": training.model_dump(mode="json"),
                "train": tensor_digest(train.images, train.boxes), "val": tensor_digest(val.images, val.boxes),
                "init": tensor_digest(list(init_state.values())) if init_state is not None else None, "seed": ctx.seed,
            },
            length=24,
        )
        cached = ctx.cache.load("models", f"face-detector-{key}")
        if cached is not None:
            torch.manual_seed(ctx.seed)
            model = build_detector(config, in_channels)
            model.load_state_dict(cached["state"])
            return model.to(ctx.device).eval(), {**cached["summary"], "from_cache": True}
    torch.manual_seed(ctx.seed)
    model = build_detector(config, in_channels)
    if init_state is not None:
        model.load_state_dict(init_state)
    model, history = train_detector(model, train, val, training, ctx, name, signature_extra=config.model_key())
    summary = history.summary()
    if key is not None:
        ctx.cache.save("models", f"face-detector-{key}", {"state": _cpu_state(model), "summary": summary})
    return model, {**summary, "from_cache": False}
