"""Face identification (CAnOPIC §4, experiment 1): the privacy attack on a camera's measurements.

A closed-set identity classifier is trained and scored on the identity split of the dataset;
top-1 and top-5 accuracy on the test split measure how much identity survives the encoder. The
protocol says what the attacker trains on:

- ``retrained`` (default, CAnOPIC): fit on the measurements of the training crops;
- ``pretrained``: fit on clean crops, scored on measurements (an attacker who never saw the
  camera; needs measurements of the same shape as the clean crops);
- ``finetuned``: fit on clean crops, then fine-tuned on the measurements (same shape rule).

A privacy claim is only as strong as the strongest attacker tried, so the attack trains an
**attacker zoo** (``zoo``): several architectures of different families, each on the same split with
the same budget and protocol. The row keeps every member's ``top1_<arch>`` and ``top5_<arch>``; the
headline ``top1`` is the best member's top-1 (the worst case for the camera) and ``top5`` the best
top-5 of any member. The default zoo is one net per family at widths that keep the quick preset
affordable on 2 CPU cores: ``small-cnn`` (residual, ResNet-style), ``googlenet`` at width 1/8
(Inception modules, the classifier CAnOPIC evaluates with) and ``mobilenet`` at width 1/8
(depthwise-separable convolutions). ``model: <arch>`` (optionally with ``width_multiplier``) is
shorthand for a zoo of that one architecture.

The chance level is 1 / number of identities.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, field_validator, model_validator

from privbench.api.errors import ConfigError, DataError
from privbench.api.evaluation import (
    EvalInputs,
    EvalResult,
    Evaluation,
    EvaluationConfig,
    MetricSpec,
    Protocol,
    RunContext,
)
from privbench.api.items import ItemScores
from privbench.api.registry import register_attack
from privbench.nn.classifiers import ARCHITECTURES
from privbench.nn.training import (
    ClassifierArchitecture,
    ClassifierConfig,
    TrainConfig,
    fit_new_classifier,
    predict_logits,
)

PART = "identities"


class ZooMember(ClassifierArchitecture):
    """One attacker of the zoo: an architecture (required here) and its width multiplier."""

    model: str = Field(description=f"classifier architecture: {', '.join(ARCHITECTURES)}")


DEFAULT_ZOO = (
    ZooMember(model="small-cnn", width_multiplier=1.0),
    ZooMember(model="googlenet", width_multiplier=0.125),
    ZooMember(model="mobilenet", width_multiplier=0.125),
)


class FaceIdConfig(EvaluationConfig):
    """Protocol, attacker zoo and training budget (defaults: the quick preset)."""

    protocol: Literal["retrained", "pretrained", "finetuned"] = Field(
        "retrained", description="what the attacker trains on (see the module docstring)"
    )
    zoo: list[ZooMember] = Field(
        default_factory=lambda: list(DEFAULT_ZOO),
        min_length=1,
        description="attacker architectures, each trained on the same split; an entry is an "
        "architecture name or {model, width_multiplier}",
    )
    training: TrainConfig = Field(default_factory=TrainConfig)
    finetune_lr_scale: float = Field(
        0.3,
        gt=0,
        le=1.0,
        description="fine-tuning peak learning rate = training.lr × this (finetuned protocol)",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        values = dict(values)
        if "model" in values:  # ``model: resnet18`` = a zoo of that one architecture
            if "zoo" in values:
                raise ValueError(
                    "give either 'zoo' or the one-architecture shorthand 'model', not both"
                )
            values["zoo"] = [
                {
                    "model": values.pop("model"),
                    "width_multiplier": values.pop("width_multiplier", 1.0),
                }
            ]
        elif "width_multiplier" in values:
            raise ValueError("'width_multiplier' goes with 'model' (or inside each zoo entry)")
        if isinstance(values.get("zoo"), (list, tuple)):
            values["zoo"] = [{"model": m} if isinstance(m, str) else m for m in values["zoo"]]
        return values

    @field_validator("zoo")
    @classmethod
    def _one_entry_per_architecture(cls, zoo: list[ZooMember]) -> list[ZooMember]:
        names = [member.model for member in zoo]
        if len(set(names)) != len(names):
            raise ValueError(
                "each architecture may appear once in the zoo "
                f"(its metrics are named after it); got {names}"
            )
        return zoo

    def member_config(self, member: ZooMember) -> ClassifierConfig:
        return ClassifierConfig(
            model=member.model, width_multiplier=member.width_multiplier, training=self.training
        )


def identification_scores(
    logits: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> dict[str, float]:
    """Top-1 and top-5 accuracy (micro-averaged fractions; top-5 is 1 with at most 5 classes)."""
    # imported on use: torchmetrics takes seconds to import (every run loads this plugin)
    from torchmetrics.functional.classification import multiclass_accuracy

    labels = labels.long()
    top1 = multiclass_accuracy(logits, labels, num_classes=num_classes, top_k=1, average="micro")
    top5 = multiclass_accuracy(
        logits, labels, num_classes=num_classes, top_k=min(5, num_classes), average="micro"
    )
    return {"top1": float(top1), "top5": float(top5)}


@register_attack("face-id")
class FaceIdentification(Evaluation):
    # Kept on one line: `privbench list attacks` shows a component's first docstring line.
    """Who is it? An attacker zoo of CNNs identifying the person in the measurement of a face crop."""  # noqa: E501

    Config = FaceIdConfig
    role = "privacy"
    version = "2"  # 2: the headline is the best of an attacker zoo
    protocol = Protocol.RETRAINED

    @property
    def protocol_name(self) -> str:
        """The configured protocol (``config.protocol``) of this instance."""
        return Protocol(self.config.protocol).value

    requires = (PART,)
    metrics = {
        "top1": MetricSpec(
            True,
            "best zoo member's top-1 identification accuracy on the identity test split (fraction)",
        ),
        "top5": MetricSpec(
            True,
            "best zoo member's top-5 identification accuracy on the identity test split (fraction)",
        ),
        **{
            f"top{k}_{arch}": MetricSpec(
                True, f"top-{k} accuracy of the {arch} attacker (fraction)"
            )
            for arch in ARCHITECTURES
            for k in (1, 5)
        },
    }
    headline = "top1"

    def evaluate(self, inputs: EvalInputs, ctx: RunContext) -> EvalResult:
        num_classes = inputs.num_classes(PART)
        if num_classes < 2:
            raise DataError(
                "face-id needs at least 2 identities in part "
                f"{PART!r}; the dataset has {num_classes}."
            )
        labels = {split: inputs.labels(PART, split) for split in ("train", "val", "test")}
        encoded = {split: inputs.encoded(PART, split) for split in ("train", "val", "test")}
        protocol = self.config.protocol
        clean = None
        if protocol != "retrained":
            clean = {split: inputs.clean(PART, split) for split in ("train", "val", "test")}
            clean_shape, encoded_shape = (
                tuple(clean["train"].shape[1:]),
                tuple(encoded["train"].shape[1:]),
            )
            if clean_shape != encoded_shape:
                raise ConfigError(
                    f"face-id protocol {protocol!r} trains the attacker on clean crops of shape "
                    f"{clean_shape} and applies it to measurements, but encoder "
                    f"{inputs.encoder_name or '?'!r} produces measurements of shape "
                    f"{encoded_shape}. Use protocol 'retrained' for encoders that change the shape "
                    "(pooling, low resolution, filter banks)."
                )
        metrics: dict[str, float] = {}
        details: dict = {"protocol": protocol, "zoo": {}}
        correct: dict[str, torch.Tensor] = {}
        for member in self.config.zoo:
            scores, member_details, correct[member.model] = self.attack_with(
                member, inputs, ctx, labels, encoded, clean, num_classes
            )
            metrics[f"top1_{member.model}"] = scores["top1"]
            metrics[f"top5_{member.model}"] = scores["top5"]
            details["zoo"][member.model] = {
                "width_multiplier": member.width_multiplier,
                **member_details,
            }
        best = max(
            self.config.zoo, key=lambda m: (metrics[f"top1_{m.model}"], metrics[f"top5_{m.model}"])
        )
        metrics["top1"] = metrics[f"top1_{best.model}"]
        metrics["top5"] = max(metrics[f"top5_{m.model}"] for m in self.config.zoo)
        details["best_model"] = best.model
        return EvalResult(
            metrics=metrics,
            chance=1.0 / num_classes,
            details=details,
            items=ItemScores.per_item(correct[best.model].float()),
        )

    def attack_with(
        self,
        member: ZooMember,
        inputs: EvalInputs,
        ctx: RunContext,
        labels,
        encoded,
        clean,
        num_classes,
    ):
        """Train one zoo member under the protocol; its test scores on the measurements, a
        summary and which test crops it identified (top-1)."""
        config = self.config.member_config(member)
        protocol = self.config.protocol
        details: dict = {}
        if protocol == "retrained":
            model, history = fit_new_classifier(
                config,
                num_classes,
                encoded["train"],
                labels["train"],
                encoded["val"],
                labels["val"],
                ctx,
                name=f"face-id-retrained-{member.model}",
            )
            details["training"] = history.summary()
        else:
            model, history = fit_new_classifier(
                config,
                num_classes,
                clean["train"],
                labels["train"],
                clean["val"],
                labels["val"],
                ctx,
                name=f"face-id-clean-{member.model}",
            )
            clean_logits = predict_logits(
                model, clean["test"], config.training.eval_batch_size, ctx.device
            )
            details["clean_training"] = history.summary()
            details["clean_test_top1"] = identification_scores(
                clean_logits, labels["test"], num_classes
            )["top1"]
            if protocol == "finetuned":
                finetune = config.training.model_copy(
                    update={"lr": config.training.lr * self.config.finetune_lr_scale}
                )
                model, history = fit_new_classifier(
                    config,
                    num_classes,
                    encoded["train"],
                    labels["train"],
                    encoded["val"],
                    labels["val"],
                    ctx,
                    name=f"face-id-finetuned-{member.model}",
                    training=finetune,
                    init_state={k: v.clone() for k, v in model.state_dict().items()},
                )
                details["training"] = history.summary()
        logits = predict_logits(model, encoded["test"], config.training.eval_batch_size, ctx.device)
        correct = logits.argmax(dim=1) == labels["test"].long()
        return identification_scores(logits, labels["test"], num_classes), details, correct
