"""Face identification (CAnOPIC §4, experiment 1): the privacy attack on a camera's measurements.

A closed-set identity classifier is trained and scored on the identity split of the dataset;
top-1 and top-5 accuracy on the test split measure how much identity survives the encoder. The
protocol says what the attacker trains on:

- ``retrained`` (default, CAnOPIC): fit on the measurements of the training crops;
- ``pretrained``: fit on clean crops, scored on measurements (an attacker who never saw the
  camera; needs measurements of the same shape as the clean crops);
- ``finetuned``: fit on clean crops, then fine-tuned on the measurements (same shape rule).

The chance level is 1 / number of identities.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torchmetrics.functional.classification import multiclass_accuracy

from privbench.errors import ConfigError, DataError
from privbench.evaluation import EvalInputs, EvalResult, Evaluation, MetricSpec, RunContext
from privbench.registry import register_attack
from privbench.training import ClassifierConfig, fit_new_classifier, predict_logits

PART = "identities"


class FaceIdConfig(ClassifierConfig):
    """Protocol, classifier architecture and training budget (defaults: the quick preset)."""

    protocol: Literal["retrained", "pretrained", "finetuned"] = Field(
        "retrained", description="what the attacker trains on (see the module docstring)"
    )
    finetune_lr_scale: float = Field(
        0.3, gt=0, le=1.0, description="fine-tuning peak learning rate = training.lr × this (finetuned protocol)"
    )


def identification_scores(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Top-1 and top-5 accuracy (micro-averaged fractions; top-5 is 1 with at most 5 classes)."""
    labels = labels.long()
    top1 = multiclass_accuracy(logits, labels, num_classes=num_classes, top_k=1, average="micro")
    top5 = multiclass_accuracy(logits, labels, num_classes=num_classes, top_k=min(5, num_classes), average="micro")
    return {"top1": float(top1), "top5": float(top5)}


@register_attack("face-id")
class FaceIdentification(Evaluation):
    """Who is it? A CNN identifying the person in the encoder's measurement of a 64×64 face crop."""

    Config = FaceIdConfig
    role = "privacy"
    version = "1"
    protocol = "retrained"
    requires = (PART,)
    metrics = {
        "top1": MetricSpec(True, "top-1 identification accuracy on the identity test split (fraction)"),
        "top5": MetricSpec(True, "top-5 identification accuracy on the identity test split (fraction)"),
    }
    headline = "top1"

    def evaluate(self, inputs: EvalInputs, ctx: RunContext) -> EvalResult:
        num_classes = inputs.num_classes(PART)
        if num_classes < 2:
            raise DataError(f"face-id needs at least 2 identities in part {PART!r}; the dataset has {num_classes}.")
        labels = {split: inputs.labels(PART, split) for split in ("train", "val", "test")}
        encoded = {split: inputs.encoded(PART, split) for split in ("train", "val", "test")}
        protocol = self.config.protocol
        details: dict = {"model": self.config.model, "protocol": protocol}

        if protocol == "retrained":
            model, history = fit_new_classifier(
                self.config, num_classes, encoded["train"], labels["train"], encoded["val"], labels["val"], ctx,
                name="face-id-retrained",
            )
            details["training"] = history.summary()
        else:
            clean = {split: inputs.clean(PART, split) for split in ("train", "val", "test")}
            clean_shape, encoded_shape = tuple(clean["train"].shape[1:]), tuple(encoded["train"].shape[1:])
            if clean_shape != encoded_shape:
                raise ConfigError(
                    f"face-id protocol {protocol!r} trains the attacker on clean crops of shape {clean_shape} "
                    f"and applies it to measurements, but encoder {inputs.encoder_name or '?'!r} produces "
                    f"measurements of shape {encoded_shape}. Use protocol 'retrained' for encoders that change "
                    f"the shape (pooling, low resolution, filter banks)."
                )
            model, history = fit_new_classifier(
                self.config, num_classes, clean["train"], labels["train"], clean["val"], labels["val"], ctx,
                name="face-id-clean",
            )
            clean_logits = predict_logits(model, clean["test"], self.config.training.eval_batch_size, ctx.device)
            details["clean_training"] = history.summary()
            details["clean_test_top1"] = identification_scores(clean_logits, labels["test"], num_classes)["top1"]
            if protocol == "finetuned":
                finetune = self.config.training.model_copy(
                    update={"lr": self.config.training.lr * self.config.finetune_lr_scale}
                )
                model, history = fit_new_classifier(
                    self.config, num_classes, encoded["train"], labels["train"], encoded["val"], labels["val"], ctx,
                    name="face-id-finetuned", training=finetune,
                    init_state={k: v.clone() for k, v in model.state_dict().items()},
                )
                details["training"] = history.summary()

        logits = predict_logits(model, encoded["test"], self.config.training.eval_batch_size, ctx.device)
        return EvalResult(
            metrics=identification_scores(logits, labels["test"], num_classes),
            chance=1.0 / num_classes,
            details=details,
        )
