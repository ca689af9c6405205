"""Face vs. no-face classification (CAnOPIC §4, experiment 2): the utility of a privacy camera.

A classifier is trained on the measurements of face and non-face crops (train split, early
stopping on the validation split) and scored on the test split's measurements: accuracy and
AUROC of the face probability. The chance level is the accuracy of always answering the test
split's majority class.
"""

from __future__ import annotations

import torch
from pydantic import Field

from privbench.api.errors import DataError
from privbench.api.evaluation import EvalInputs, EvalResult, Evaluation, MetricSpec, RunContext
from privbench.api.items import ItemScores
from privbench.api.registry import register_task
from privbench.nn.training import ClassifierConfig, TrainConfig, fit_new_classifier, predict_logits

PART = "face_vs_noface"
FACE = 1  # label of the face class (0 = no face)


class FaceVsNoFaceConfig(ClassifierConfig):
    """Classifier architecture and training budget (defaults: the quick preset).

    Face vs. no-face converges within a few epochs (on synthfaces ``quick`` the first epoch
    already scores ≥ 95 % on validation, clean or blurred), so the default budget is 4 epochs.
    """

    training: TrainConfig = Field(default_factory=lambda: TrainConfig(epochs=4))


def binary_scores(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy of the arg-max decision and AUROC of the face probability softmax(logits)[:, 1]."""
    # imported on use: torchmetrics takes seconds to import (every run loads this plugin)
    from torchmetrics.functional.classification import binary_auroc

    face_probability = logits.softmax(dim=1)[:, FACE]
    accuracy = float((logits.argmax(dim=1) == labels).float().mean())
    auroc = float(binary_auroc(face_probability, labels.long()))
    return {"accuracy": accuracy, "auroc": auroc}


def majority_chance(labels: torch.Tensor) -> float:
    """Accuracy of always predicting the most frequent label."""
    return float(torch.bincount(labels.long()).max()) / labels.numel()


@register_task("face-vs-noface")
class FaceVsNoFace(Evaluation):
    """Is there a face? A CNN trained and scored on the encoder's measurements of 64×64 crops."""

    Config = FaceVsNoFaceConfig
    role = "utility"
    version = "1"
    requires = (PART,)
    metrics = {
        "accuracy": MetricSpec(True, "face vs. no-face accuracy on the test crops (fraction)"),
        "auroc": MetricSpec(
            True, "area under the ROC curve of the face probability on the test crops"
        ),
    }
    headline = "accuracy"

    def evaluate(self, inputs: EvalInputs, ctx: RunContext) -> EvalResult:
        num_classes = inputs.num_classes(PART)
        if num_classes != 2:
            raise DataError(
                f"face-vs-noface needs the part {PART!r} labelled 0 = no face, 1 = face; "
                f"the dataset's part has {num_classes} classes."
            )
        test_y = inputs.labels(PART, "test")
        if test_y.unique().numel() != 2:
            raise DataError(
                "face-vs-noface needs both faces and non-faces in the test split to compute AUROC."
            )
        model, history = fit_new_classifier(
            self.config,
            num_classes,
            inputs.encoded(PART, "train"),
            inputs.labels(PART, "train"),
            inputs.encoded(PART, "val"),
            inputs.labels(PART, "val"),
            ctx,
            name="face-vs-noface",
        )
        logits = predict_logits(
            model, inputs.encoded(PART, "test"), self.config.training.eval_batch_size, ctx.device
        )
        return EvalResult(
            metrics=binary_scores(logits, test_y),
            chance=majority_chance(test_y),
            details={"model": self.config.model, "training": history.summary()},
            items=ItemScores.per_item((logits.argmax(dim=1) == test_y).float()),
        )
