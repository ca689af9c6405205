"""Face detection as a privacy attack: the four experiments of 2PSC §3 (privacy validation).

Can an attacker still find the faces? The shared detector of :mod:`privbench.detection` is trained
and scored on the scenes under one of four protocols (config field ``protocol``), the four
experiments of 2PSC §3 whose precision-recall curves 2PSC plots together in Fig. 4a:

- ``clean-reference`` (2PSC "Non-privacy"): trained from scratch on clean scenes and scored on
  clean scenes. It does not depend on the encoder; it is the reference the others are read
  against, so its row carries no chance level and never enters the privacy score;
- ``pretrained`` (2PSC "Pre-trained"): the clean detector, scored on the measurements (the
  detector resizes every input to its working size, so measurements of another resolution are
  accepted; another channel count is not);
- ``retrained`` (2PSC "Training"): trained from scratch on the measurements;
- ``finetuned`` (2PSC "Fine-tuning"): the clean detector's weights, fine-tuned on the measurements
  (learning rate × ``finetune_lr_scale``, ``finetune_epochs`` epochs, input standardization
  re-estimated on the measurements).

Boxes follow the backend's one mapping rule (into measurement coordinates for training, back to
clean pixels for scoring). Metrics: COCO AP50 (headline), AP@[.5:.95], AP75 and the FDDB discrete
ROC's true-positive rate; the precision-recall curve and ROC are kept in the details, and
:func:`privbench.detection.plot_protocol_curves` draws the four protocols together. The clean
detector depends only on the data, the detector config and the seed: it is trained once and shared
by every cell (and every encoder) through the content-addressed cache. Chance level: AP 0.
"""

from __future__ import annotations

from typing import Literal

from privbench.tasks.face_detection import (
    DETECTION_METRICS,
    FaceDetectionConfig,
    detection_splits,
    score_detector,
)
from pydantic import Field

from privbench.api.errors import ConfigError
from privbench.api.evaluation import EvalInputs, EvalResult, Evaluation, Protocol, RunContext
from privbench.api.registry import register_attack
from privbench.detection import fit_detector

#: The four detection experiments of 2PSC, in the order the figures draw them.
PROTOCOLS = (Protocol.CLEAN_REFERENCE, Protocol.PRETRAINED, Protocol.RETRAINED, Protocol.FINETUNED)


class FaceDetectionAttackConfig(FaceDetectionConfig):
    """Protocol, detector and fine-tuning budget (defaults: the quick preset)."""

    protocol: Literal["clean-reference", "pretrained", "retrained", "finetuned"] = Field(
        "retrained",
        description="what the attacker's detector is trained on (see the module docstring)",
    )
    finetune_lr_scale: float = Field(
        0.3,
        gt=0,
        le=1.0,
        description="fine-tuning peak learning rate = detector.training.lr × this",
    )
    finetune_epochs: int = Field(
        6, ge=1, le=1000, description="maximum fine-tuning epochs (finetuned protocol)"
    )


@register_attack("face-detection-attack")
class FaceDetectionAttack(Evaluation):
    """Does a face detector still find the faces? 2PSC's four detection experiments as protocols."""

    Config = FaceDetectionAttackConfig
    role = "privacy"
    version = "1"
    protocol = Protocol.RETRAINED

    @property
    def protocol_name(self) -> str:
        """The configured protocol (``config.protocol``) of this instance."""
        return Protocol(self.config.protocol).value

    requires = ("scenes",)
    metrics = DETECTION_METRICS
    headline = "ap50"

    def clean_detector(self, inputs: EvalInputs, ctx: RunContext):
        """The detector trained on clean scenes (shared between cells through ``ctx.cache``)."""
        sets, _, _ = detection_splits(inputs, self.config.category, clean=True)
        return fit_detector(
            self.config.detector,
            sets["train"],
            sets["val"],
            ctx,
            "face-detection-clean",
            shared=True,
        )

    def evaluate(self, inputs: EvalInputs, ctx: RunContext) -> EvalResult:
        cfg = self.config
        protocol = cfg.protocol
        details: dict = {"protocol": protocol, "detector": cfg.detector.label()}

        if protocol == "clean-reference":
            model, details["clean_training"] = self.clean_detector(inputs, ctx)
            _, test, clean_hw = detection_splits(inputs, cfg.category, clean=True)
            metrics, curves, _ = score_detector(model, test, clean_hw, cfg, ctx.device)
            # Independent of the encoder: no chance level, so it never enters the privacy score.
            return EvalResult(metrics=metrics, chance=None, details={**details, **curves})

        sets, test, clean_hw = detection_splits(inputs, cfg.category)
        if protocol == "retrained":
            model, details["training"] = fit_detector(
                cfg.detector,
                sets["train"],
                sets["val"],
                ctx,
                "face-detection-retrained",
                shared=True,
            )
        else:
            clean_channels = int(inputs.data.part("scenes")["train"].images.shape[1])
            measured_channels = int(sets["train"].images.shape[1])
            if measured_channels != clean_channels:
                raise ConfigError(
                    f"face-detection-attack protocol {protocol!r} applies a detector trained on "
                    f"clean {clean_channels}-channel scenes to the measurements, but encoder "
                    f"{inputs.encoder_name or '?'!r} produces {measured_channels} channels. Use "
                    "protocol 'retrained' for encoders that "
                    "change the channel count (filter banks)."
                )
            model, details["clean_training"] = self.clean_detector(inputs, ctx)
            if protocol == "finetuned":
                training = cfg.detector.training.model_copy(
                    update={
                        "lr": cfg.detector.training.lr * cfg.finetune_lr_scale,
                        "epochs": cfg.finetune_epochs,
                    }
                )
                init = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                model, details["training"] = fit_detector(
                    cfg.detector,
                    sets["train"],
                    sets["val"],
                    ctx,
                    "face-detection-finetuned",
                    training=training,
                    init_state=init,
                    shared=True,
                )
        metrics, curves, items = score_detector(model, test, clean_hw, cfg, ctx.device)
        return EvalResult(metrics=metrics, chance=0.0, details={**details, **curves}, items=items)
