"""Face detection on scenes (CAnOPIC §4, experiment 3): where are the faces in the measurement?

A detector (the shared backend of :mod:`privbench.detection`, FCOS by default) is trained on the
encoder's measurements of the training scenes, with the face boxes mapped into measurement
coordinates by the backend's one rule (× ``W_out/W_in``, ``H_out/H_in``), early-stopped on the
validation scenes' AP50, and scored on the test scenes with its predictions mapped back to clean
pixels: COCO AP@[.5:.95], AP50 (headline) and AP75 from torchmetrics' ``MeanAveragePrecision``,
and the FDDB discrete ROC's true-positive rate at 0.5 false positives per scene (CAnOPIC reports
FDDB discrete ROC curves). The precision-recall curve and the ROC are kept in the row's details.

The chance level is 0: a detector that returns nothing has AP 0.
"""

from __future__ import annotations

from pydantic import Field

from privbench.api.errors import DataError
from privbench.api.evaluation import (
    EvalInputs,
    EvalResult,
    Evaluation,
    EvaluationConfig,
    MetricSpec,
    RunContext,
)
from privbench.api.items import ItemScores
from privbench.api.registry import register_task
from privbench.detection import (
    DetectionSet,
    DetectorConfig,
    detect_in_clean_coordinates,
    detection_report,
    face_boxes,
    fit_detector,
    measurement_scale,
)

PART = "scenes"

DETECTION_METRICS = {
    "ap50": MetricSpec(True, "COCO AP at IoU 0.5 of face boxes on the test scenes (fraction)"),
    "ap": MetricSpec(
        True, "COCO AP averaged over IoU 0.50:0.05:0.95 on the test scenes (fraction)"
    ),
    "ap75": MetricSpec(True, "COCO AP at IoU 0.75 on the test scenes (fraction)"),
    "roc_tpr": MetricSpec(
        True, "FDDB discrete ROC: share of faces found at 0.5 false positives per test scene"
    ),
}


class FaceDetectionConfig(EvaluationConfig):
    """The detector (backend, architecture, size, training budget) and the scoring options."""

    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    category: str = Field("face", min_length=1, description="box category of the scenes to detect")
    roc_false_positives_per_image: float = Field(
        0.5,
        gt=0,
        le=100,
        description="roc_tpr is read off the discrete ROC at this many false positives per scene",
    )


def detection_splits(
    inputs: EvalInputs, category: str, *, clean: bool = False
) -> tuple[dict, dict, tuple[int, int]]:
    """Training/validation :class:`DetectionSet` s, test measurements and clean boxes, clean size.

    ``clean``: use the clean scenes instead of the encoder's measurements.
    """
    scenes = inputs.data.part(PART)
    sets, test = {}, {}
    clean_hw = tuple(scenes["train"].images.shape[-2:])
    for split in ("train", "val", "test"):
        part = scenes[split]
        if len(part) == 0:
            raise DataError(
                f"face detection needs scenes in the {split!r} split; the dataset has none."
            )
        if tuple(part.images.shape[-2:]) != clean_hw:
            raise DataError(
                f"all scenes must have one size for detection; split {split!r} has "
                f"{tuple(part.images.shape[-2:])}, train has {clean_hw}."
            )
        boxes = face_boxes(part, category)
        measurements = inputs.clean(PART, split) if clean else inputs.encoded(PART, split)
        if split == "test":
            if sum(int(b.shape[0]) for b in boxes) == 0:
                raise DataError(f"the test scenes hold no {category!r} box; AP is undefined.")
            test = {"images": measurements, "boxes": boxes}
        else:
            sets[split] = DetectionSet.from_clean_boxes(measurements, boxes, clean_hw)
    return sets, test, clean_hw


def score_detector(
    model, test: dict, clean_hw, config, device
) -> tuple[dict[str, float], dict, ItemScores]:
    """Predictions on the test measurements, mapped back to clean pixels: their metrics,
    curves and AP50's parts per test image (for the leaderboard's intervals)."""
    batch_size = config.detector.training.eval_batch_size
    predictions = detect_in_clean_coordinates(model, test["images"], clean_hw, batch_size, device)
    metrics, curves = detection_report(
        predictions, test["boxes"], false_positives_per_image=config.roc_false_positives_per_image
    )
    return metrics, curves, ItemScores.detections(predictions, test["boxes"])


@register_task("face-detection")
class FaceDetection(Evaluation):
    """Face boxes in the measurement of a scene, scored by COCO AP and the FDDB discrete ROC."""

    Config = FaceDetectionConfig
    role = "utility"
    version = "1"
    requires = (PART,)
    metrics = DETECTION_METRICS
    headline = "ap50"

    def evaluate(self, inputs: EvalInputs, ctx: RunContext) -> EvalResult:
        sets, test, clean_hw = detection_splits(inputs, self.config.category)
        model, training = fit_detector(
            self.config.detector, sets["train"], sets["val"], ctx, "face-detection", shared=True
        )
        metrics, curves, items = score_detector(model, test, clean_hw, self.config, ctx.device)
        measured_hw = tuple(test["images"].shape[-2:])
        return EvalResult(
            metrics=metrics,
            chance=0.0,
            items=items,
            details={
                "detector": self.config.detector.label(),
                "measurement_scale_xy": list(measurement_scale(clean_hw, measured_hw)),
                "training": training,
                **curves,
            },
        )
