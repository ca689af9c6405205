"""The ``adversarial`` designer: CAnOPIC's alternating optimization (Tan et al., §3.2).

Each cycle alternates

- **step 1** — the encoder C fixed (evaluation mode: the deployed, exactly quantized camera),
  train a face-ID adversary R and the utility model D (face vs no-face) with cross-entropy,
  warm-started from the previous cycle;
- **step 2** — R and D fixed, train the encoder on CAnOPIC eq. (1),
  ``L = CE(D(C(x)), T) − α · Entropy(R(C(x)))``, with the soft quantizer of hardness T, which
  rises geometrically across the cycles (:func:`hardness_schedule`).

R is a ResNet-18-style network, a different architecture from the attacks that later score the
encoder, so the benchmark never scores an encoder with the network it trained against. One
cycle is one epoch of :func:`privbench.nn.fit.fit`; its batch order is one run-long generator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from privbench.designers._common import (
    design_history,
    design_signature,
    entropy,
    float_images,
    project,
    reporter,
    subset,
    trainable_parameters,
)
from pydantic import Field
from torch import nn

from privbench.api.designer import Designer, DesignerConfig, DesignHistory
from privbench.api.encoder import Encoder, encode_batches
from privbench.api.evaluation import RunContext
from privbench.api.registry import register_designer
from privbench.nn.classifiers import build_classifier, check_arch
from privbench.nn.fit import FitHistory, fit, shuffled_batches
from privbench.nn.training import TrainConfig, train_classifier


def canopic_encoder_loss(encoder, utility, adversary, face_or_not, targets, faces, alpha: float):
    """CAnOPIC eq. (1): CrossEntropy(D(C(x)), T) − α·Entropy(R(C(x))).

    ``face_or_not``/``targets``: a face vs no-face batch for the utility term; ``faces``: a batch
    of face crops for the privacy term (the entropy of R is only meaningful on faces).
    Returns (loss, cross-entropy, entropy).
    """
    ce = F.cross_entropy(utility(encoder(face_or_not)), targets)
    h = entropy(adversary(encoder(faces)))
    return ce - alpha * h, ce, h


def hardness_schedule(start: float, end: float, cycles: int) -> list[float]:
    """Geometric ramp of the quantizer hardness T from ``start`` to ``end`` over the cycles."""
    if cycles == 1:
        return [end]
    ratio = (end / start) ** (1.0 / (cycles - 1))
    return [start * ratio**i for i in range(cycles)]


class AdversarialConfig(DesignerConfig):
    cycles: int = Field(4, ge=1, le=200, description="alternations of step 1 and step 2")
    utility_arch: str = Field("small-cnn", description="the face vs no-face model D")
    adversary_arch: str = Field(
        "resnet18", description="the face-ID adversary R (ResNet-18-style, as in CAnOPIC)"
    )
    adversary_width: float = Field(0.5, gt=0, le=4, description="width multiplier of R")
    step1_epochs: int = Field(
        2, ge=1, description="epochs of R and D per cycle (warm-started across cycles)"
    )
    step2_epochs: int = Field(1, ge=1, description="epochs of the encoder per cycle")
    batch_size: int = Field(64, ge=2)
    model_lr: float = Field(1e-3, gt=0)
    encoder_lr: float = Field(1e-2, gt=0)
    hardness_start: float = Field(1.0, gt=0, description="quantizer hardness T in the first cycle")
    hardness_end: float = Field(20.0, gt=0, description="quantizer hardness T in the last cycle")
    max_train_images: int | None = Field(
        None, ge=16, description="subsample the training crops (speed)"
    )


@register_designer("adversarial")
class AdversarialDesigner(Designer):
    """CAnOPIC's alternating optimization: utility CE − α·entropy of a face-ID adversary."""

    Config = AdversarialConfig

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        check_arch(self.config.utility_arch)
        check_arch(self.config.adversary_arch)

    def fit(self, encoder: Encoder, data, ctx: RunContext) -> DesignHistory:
        cfg = self.config
        device = ctx.device
        generator = torch.Generator().manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        faces, binary = data.part("identities"), data.part("face_vs_noface")
        id_x, id_y = subset(faces.train.images, faces.train.labels, cfg.max_train_images, generator)
        fn_x, fn_y = subset(
            binary.train.images, binary.train.labels, cfg.max_train_images, generator
        )
        shape = encoder.output_shape(tuple(faces.train.images.shape[1:]))
        adversary = build_classifier(
            cfg.adversary_arch, shape, faces.train.num_classes, width_multiplier=cfg.adversary_width
        ).to(device=device, memory_format=torch.channels_last)
        utility = build_classifier(cfg.utility_arch, shape, 2).to(
            device=device, memory_format=torch.channels_last
        )
        encoder.to(device)
        encoder_optimizer = torch.optim.Adam(trainable_parameters(encoder, self), lr=cfg.encoder_lr)
        schedule = hardness_schedule(cfg.hardness_start, cfg.hardness_end, cfg.cycles)
        step1 = TrainConfig(
            epochs=cfg.step1_epochs, batch_size=cfg.batch_size, lr=cfg.model_lr, patience=None
        )

        def train_models(cycle: int) -> tuple[float, float]:
            """Step 1: R and D on the fixed encoder's measurements; their best val accuracies."""
            step1_ctx = RunContext(
                device=device, seed=cfg.seed + cycle, progress=ctx.progress, log=ctx.log
            )
            trained = []
            for model, part, x, y, label in (
                (adversary, faces, id_x, id_y, "adversary R"),
                (utility, binary, fn_x, fn_y, "utility D"),
            ):
                _, history = train_classifier(
                    model,
                    encode_batches(encoder, x, device=device),
                    y,
                    encode_batches(encoder, part.val.images, device=device),
                    part.val.labels,
                    step1,
                    step1_ctx,
                    f"{label} (cycle {cycle + 1})",
                    init_state=model.state_dict() if cycle else None,
                )
                trained.append(history.best_val_accuracy)
            return trained[0], trained[1]

        def train_encoder(generator: torch.Generator) -> tuple[float, float, int]:
            """Step 2: eq. (1) on the encoder, R and D fixed; sums of CE and entropy, steps."""
            for model in (adversary, utility):
                model.eval()
                model.requires_grad_(False)
            encoder.train()
            ce_total = entropy_total = 0.0
            steps = 0
            for _ in range(cfg.step2_epochs):
                # Face batches cycle on their own order, drawn when first needed.
                id_batches: list[torch.Tensor] = []
                for index in shuffled_batches(
                    fn_x.shape[0], cfg.batch_size, generator, drop_single=False
                ):
                    if not id_batches:
                        id_batches = shuffled_batches(
                            id_x.shape[0], cfg.batch_size, generator, drop_single=False
                        )
                    id_index = id_batches.pop(0)
                    loss, ce, h = canopic_encoder_loss(
                        encoder,
                        utility,
                        adversary,
                        float_images(fn_x[index], device),
                        fn_y[index].to(device),
                        float_images(id_x[id_index], device),
                        cfg.alpha,
                    )
                    encoder_optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    encoder_optimizer.step()
                    project(encoder)
                    ce_total += float(ce.detach())
                    entropy_total += float(h.detach())
                    steps += 1
            for model in (adversary, utility):
                model.requires_grad_(True)
            encoder.eval()
            return ce_total, entropy_total, steps

        cycle_record: dict[str, float] = {}

        def train_cycle(cycle: int, generator: torch.Generator) -> dict[str, float]:
            hardness = schedule[cycle]
            encoder.set_hardness(hardness)
            adversary_val, utility_val = train_models(cycle)
            ce_total, entropy_total, steps = train_encoder(generator)
            cycle_record.clear()
            cycle_record.update(
                {
                    "hardness": hardness,
                    "adversary_val_top1": adversary_val,
                    "utility_val_accuracy": utility_val,
                    "encoder_utility_ce": ce_total / max(1, steps),
                    "encoder_adversary_entropy": entropy_total / max(1, steps),
                    "encoder_loss": (ce_total - cfg.alpha * entropy_total) / max(1, steps),
                }
            )
            return cycle_record

        def describe(record: Mapping[str, float]) -> str:
            return (
                f"cycle {record['epoch']}/{cfg.cycles}: T={record['hardness']:.3g} "
                f"R val top-1 {record['adversary_val_top1']:.3f}, "
                f"D val acc {record['utility_val_accuracy']:.3f}, "
                f"CE {record['encoder_utility_ce']:.3f}, "
                f"entropy {record['encoder_adversary_entropy']:.3f}"
            )

        history = fit(
            nn.ModuleDict({"encoder": encoder, "adversary": adversary, "utility": utility}),
            name="adversarial",
            ctx=ctx,
            epochs=cfg.cycles,
            optimizer=encoder_optimizer,
            train_epoch=train_cycle,
            # A cycle's score: D's step-1 validation accuracy (the last cycle is kept).
            validate=lambda: (cycle_record["utility_val_accuracy"], {}),
            signature=design_signature(self, encoder, "adversarial"),
            history=FitHistory(),
            worst_score=float("-inf"),
            keep_best=False,
            on_epoch=reporter(ctx, describe, cycle_key="cycle"),
            show=("adversary_val_top1", "utility_val_accuracy"),
            generator=generator,
        )
        encoder.set_hardness(schedule[-1])
        encoder.eval()
        return design_history(history, cycle_key="cycle")
