"""Designers: procedures that fit a learnable encoder's parameters under a privacy weight α.

- ``adversarial`` (CAnOPIC §3.2): alternate step 1 — encoder fixed, train a face-ID adversary R
  and the utility model D with cross-entropy — and step 2 — R and D fixed, train the encoder on
  CAnOPIC eq. (1): CE(D(C(x)), T) − α·Entropy(R(C(x))). The quantizer's hardness T rises across
  cycles. R is a ResNet-18-style network, a different architecture from the attacks that later
  score the encoder, so the benchmark never scores an encoder with the network it trained against.
- ``end-to-end`` (2PSC §2.3): encoder and utility model trained jointly on the task loss plus
  α·(1 − mean‖Y − X‖²/J), the 2PSC distortion term, and an optional PSF-spread term; separate
  learning rates for the optics, the feature extractor and the head. The utility is a classifier
  (face vs no-face, face ID) or, with ``task: captioning``, 2PSC's own: the attention-LSTM
  captioner of :mod:`privbench.captioning` on the ``scenes`` part, whose caption loss (word NLL +
  doubly stochastic attention term) is the task loss.

Both log per-cycle losses and metrics, checkpoint after every cycle and resume from the
checkpoint, and leave the fitted encoder in place (the runner hashes its weights into the cache
key and the result rows).
"""

from __future__ import annotations

import math
from typing import Any, Callable, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn
from pydantic import Field

from privbench.api.cache import atomic_torch_save
from privbench.captioning import (
    CaptionModelConfig,
    Vocabulary,
    build_caption_model,
    caption_loss,
    encode_captions,
    longest_caption,
    validation_loss,
)
from privbench.api.config import ComponentConfig, stable_hash, validate_config
from privbench.api.encoder import Encoder, encode_batches
from privbench.api.errors import ConfigError
from privbench.api.evaluation import RunContext
from privbench.nn.imaging import to_common_grid
from privbench.nn.classifiers import build_classifier, check_arch
from privbench.api.registry import register_designer
from privbench.nn.training import TrainConfig, channel_statistics, predict_logits, train_classifier


class DesignerConfig(ComponentConfig):
    alpha: float = Field(1.0, ge=0, description="privacy weight α")
    seed: int = Field(0, description="seed of model initialization and batch order")


class Designer:
    """Base class: ``fit(encoder, data, ctx)`` fits the encoder in place and returns its history."""

    Config: ClassVar[type[DesignerConfig]] = DesignerConfig
    registered_name: ClassVar[str] = ""

    def __init__(self, **config: Any) -> None:
        self.config = validate_config(self.Config, config, what=f"designer {self.name!r}")

    @property
    def name(self) -> str:
        return self.registered_name or type(self).__name__

    def config_hash(self) -> str:
        return stable_hash({"designer": self.name, "config": self.config.model_dump(mode="json")})

    def fit(self, encoder: Encoder, data, ctx: RunContext) -> list[dict[str, float]]:
        raise NotImplementedError(f"{type(self).__name__} must implement fit()")


# -- helpers -------------------------------------------------------------------------------
def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean Shannon entropy (nats) of the softmax distributions: maximal when R cannot decide."""
    log_p = F.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(dim=1).mean()


def distortion_term(clean: torch.Tensor, measurement: torch.Tensor) -> torch.Tensor:
    """2PSC's 1 − (1/J) Σ_ℓ ‖Y_ℓ − X_ℓ‖², with Y on the scene's grid (:func:`to_common_grid`).

    Minimizing it rewards a measurement Y that differs from the scene X.
    """
    return 1.0 - ((to_common_grid(clean, measurement) - clean) ** 2).mean()


def _val_accuracy(model, x: torch.Tensor, y: torch.Tensor, device) -> float:
    return float((predict_logits(model, x, device=device).argmax(1) == y).float().mean())


def _standardize_from(model, x: torch.Tensor) -> None:
    model.set_standardization(*channel_statistics(x))


def _batches(count: int, batch_size: int, generator: torch.Generator):
    order = torch.randperm(count, generator=generator)
    for start in range(0, count, batch_size):
        yield order[start : start + batch_size]


def _subset(images: torch.Tensor, labels: torch.Tensor, limit: int | None, generator: torch.Generator):
    if limit is None or images.shape[0] <= limit:
        return images, labels
    keep = torch.randperm(images.shape[0], generator=generator)[:limit]
    return images[keep], labels[keep]


def _float_images(images_uint8: torch.Tensor, device) -> torch.Tensor:
    return images_uint8.to(device).float().div_(255.0)


def _set_hardness(encoder: Encoder, hardness: float) -> None:
    setter = getattr(encoder, "set_hardness", None)
    if callable(setter):
        setter(hardness)


def hardness_schedule(start: float, end: float, cycles: int) -> list[float]:
    """Geometric ramp of the quantizer hardness T from ``start`` to ``end`` over the cycles."""
    if cycles == 1:
        return [end]
    ratio = (end / start) ** (1.0 / (cycles - 1))
    return [start * ratio**i for i in range(cycles)]


def _resume(ctx: RunContext, name: str):
    path = ctx.checkpoint_path(name)
    if path is not None and path.is_file():
        return torch.load(path, map_location="cpu", weights_only=False), path
    return None, path


# -- adversarial (CAnOPIC) -----------------------------------------------------------------
def canopic_encoder_loss(encoder, utility, adversary, face_or_not, targets, faces, alpha: float):
    """CAnOPIC eq. (1): CrossEntropy(D(C(x)), T) − α·Entropy(R(C(x))).

    ``face_or_not``/``targets``: a face vs no-face batch for the utility term; ``faces``: a batch
    of face crops for the privacy term (the entropy of R is only meaningful on faces).
    Returns (loss, cross-entropy, entropy).
    """
    ce = F.cross_entropy(utility(encoder(face_or_not)), targets)
    h = entropy(adversary(encoder(faces)))
    return ce - alpha * h, ce, h



class AdversarialConfig(DesignerConfig):
    cycles: int = Field(4, ge=1, le=200, description="alternations of step 1 and step 2")
    utility_arch: str = Field("small-cnn", description="the face vs no-face model D")
    adversary_arch: str = Field("resnet18", description="the face-ID adversary R (ResNet-18-style, as in CAnOPIC)")
    adversary_width: float = Field(0.5, gt=0, le=4, description="width multiplier of R")
    step1_epochs: int = Field(2, ge=1, description="epochs of R and D per cycle (warm-started across cycles)")
    step2_epochs: int = Field(1, ge=1, description="epochs of the encoder per cycle")
    batch_size: int = Field(64, ge=2)
    model_lr: float = Field(1e-3, gt=0)
    encoder_lr: float = Field(1e-2, gt=0)
    hardness_start: float = Field(1.0, gt=0, description="quantizer hardness T in the first cycle")
    hardness_end: float = Field(20.0, gt=0, description="quantizer hardness T in the last cycle")
    max_train_images: int | None = Field(None, ge=16, description="subsample the training crops (speed)")


@register_designer("adversarial")
class AdversarialDesigner(Designer):
    """CAnOPIC's alternating optimization: utility CE − α·entropy of a face-ID adversary."""

    Config = AdversarialConfig

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        check_arch(self.config.utility_arch)
        check_arch(self.config.adversary_arch)

    def fit(self, encoder: Encoder, data, ctx: RunContext) -> list[dict[str, float]]:
        cfg = self.config
        device = ctx.device
        generator = torch.Generator().manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        faces = data.part("identities")
        binary = data.part("face_vs_noface")
        id_x, id_y = _subset(faces.train.images, faces.train.labels, cfg.max_train_images, generator)
        fn_x, fn_y = _subset(binary.train.images, binary.train.labels, cfg.max_train_images, generator)
        id_val_x, id_val_y = faces.val.images, faces.val.labels
        fn_val_x, fn_val_y = binary.val.images, binary.val.labels
        shape = encoder.output_shape(tuple(faces.train.images.shape[1:]))
        adversary = build_classifier(cfg.adversary_arch, shape, faces.train.num_classes, width_multiplier=cfg.adversary_width).to(device)
        utility = build_classifier(cfg.utility_arch, shape, 2).to(device)
        encoder.to(device)
        encoder_parameters = [p for p in encoder.parameters() if p.requires_grad]
        if not encoder_parameters:
            raise ConfigError(f"Encoder {encoder.name!r} has no trainable parameters for the adversarial designer.")
        encoder_optimizer = torch.optim.Adam(encoder_parameters, lr=cfg.encoder_lr)
        schedule = hardness_schedule(cfg.hardness_start, cfg.hardness_end, cfg.cycles)

        history: list[dict[str, float]] = []
        start_cycle = 0
        state, checkpoint = _resume(ctx, "adversarial")
        if state is not None and state.get("config") == self.config_hash():
            encoder.load_state_dict(state["encoder"])
            adversary.load_state_dict(state["adversary"])
            utility.load_state_dict(state["utility"])
            encoder_optimizer.load_state_dict(state["encoder_optimizer"])
            generator.set_state(state["generator"])
            history, start_cycle = state["history"], state["cycle"] + 1
            ctx.log(f"adversarial designer: resuming after cycle {state['cycle'] + 1} of {cfg.cycles}")

        with ctx.progress(cfg.cycles, f"adversarial α={cfg.alpha:g}") as bar:
            bar.update(start_cycle)
            for cycle in range(start_cycle, cfg.cycles):
                hardness = schedule[cycle]
                _set_hardness(encoder, hardness)
                # Step 1: encoder fixed (evaluation mode: the deployed, exactly quantized camera).
                step1 = TrainConfig(epochs=cfg.step1_epochs, batch_size=cfg.batch_size, lr=cfg.model_lr, patience=None)
                step1_ctx = RunContext(device=device, seed=cfg.seed + cycle, progress=ctx.progress, log=ctx.log)
                adversary, adversary_history = train_classifier(
                    adversary, encode_batches(encoder, id_x, device=device), id_y,
                    encode_batches(encoder, id_val_x, device=device), id_val_y, step1, step1_ctx,
                    f"adversary R (cycle {cycle + 1})", init_state=adversary.state_dict() if cycle else None,
                )
                utility, utility_history = train_classifier(
                    utility, encode_batches(encoder, fn_x, device=device), fn_y,
                    encode_batches(encoder, fn_val_x, device=device), fn_val_y, step1, step1_ctx,
                    f"utility D (cycle {cycle + 1})", init_state=utility.state_dict() if cycle else None,
                )
                adversary_val = adversary_history.best_val_accuracy
                utility_val = utility_history.best_val_accuracy

                # Step 2: R and D fixed; CAnOPIC eq. (1) on the encoder (soft quantization).
                for model in (adversary, utility):
                    model.eval()
                    model.requires_grad_(False)
                encoder.train()
                ce_total = entropy_total = steps = 0.0
                for _ in range(cfg.step2_epochs):
                    id_batches = iter(_batches(id_x.shape[0], cfg.batch_size, generator))
                    for index in _batches(fn_x.shape[0], cfg.batch_size, generator):
                        id_index = next(id_batches, None)
                        if id_index is None:
                            id_batches = iter(_batches(id_x.shape[0], cfg.batch_size, generator))
                            id_index = next(id_batches)
                        loss, ce, h = canopic_encoder_loss(
                            encoder, utility, adversary, _float_images(fn_x[index], device), fn_y[index].to(device),
                            _float_images(id_x[id_index], device), cfg.alpha,
                        )
                        encoder_optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        encoder_optimizer.step()
                        _project(encoder)
                        ce_total += float(ce.detach())
                        entropy_total += float(h.detach())
                        steps += 1
                for model in (adversary, utility):
                    model.requires_grad_(True)
                encoder.eval()
                record = {
                    "cycle": cycle + 1,
                    "hardness": hardness,
                    "adversary_val_top1": adversary_val,
                    "utility_val_accuracy": utility_val,
                    "encoder_utility_ce": ce_total / max(1, steps),
                    "encoder_adversary_entropy": entropy_total / max(1, steps),
                    "encoder_loss": (ce_total - cfg.alpha * entropy_total) / max(1, steps),
                }
                history.append(record)
                ctx.log(
                    f"cycle {cycle + 1}/{cfg.cycles}: T={hardness:.3g} R val top-1 {adversary_val:.3f}, "
                    f"D val acc {utility_val:.3f}, CE {record['encoder_utility_ce']:.3f}, "
                    f"entropy {record['encoder_adversary_entropy']:.3f}"
                )
                if checkpoint is not None:
                    atomic_torch_save(
                        {
                            "config": self.config_hash(),
                            "cycle": cycle,
                            "encoder": encoder.state_dict(),
                            "adversary": adversary.state_dict(),
                            "utility": utility.state_dict(),
                            "encoder_optimizer": encoder_optimizer.state_dict(),
                            "generator": generator.get_state(),
                            "history": history,
                        },
                        checkpoint,
                    )
                ctx.report(cycle + 1, record)
                bar.update(1, R=adversary_val, D=utility_val)
        _set_hardness(encoder, schedule[-1])
        encoder.eval()
        return history


def _project(encoder: Encoder) -> None:
    """Keep the encoder physically realizable after a gradient step, if it knows how."""
    project = getattr(encoder, "project_", None)
    if callable(project):
        with torch.no_grad():
            project()


# -- end to end (2PSC) ---------------------------------------------------------------------
class EndToEndConfig(DesignerConfig):
    task: Literal["face-vs-noface", "face-id", "captioning"] = Field(
        "face-vs-noface", description="the utility the encoder is trained for (labels of that data part; captioning: the scenes' captions)"
    )
    arch: str = Field("small-cnn", description="the utility model trained jointly with the encoder")
    epochs: int = Field(4, ge=1)
    batch_size: int = Field(64, ge=2)
    optics_lr: float = Field(1e-2, gt=0, description="learning rate of the encoder (2PSC: 1e-2)")
    features_lr: float = Field(1e-3, gt=0, description="feature extractor (2PSC: 1e-4 with pre-trained ResNet-101)")
    head_lr: float = Field(1e-3, gt=0, description="classifier head (2PSC: 1e-4)")
    psf_spread_weight: float = Field(0.0, ge=0, description="weight of the encoder's PSF-spread regularizer, if any")
    max_train_images: int | None = Field(None, ge=16)
    caption_model: CaptionModelConfig = Field(
        default_factory=CaptionModelConfig, description="captioning: the captioner trained with the lens (2PSC §2.2)"
    )
    min_word_count: int = Field(5, ge=1, le=10_000, description="captioning: training-caption frequency a word needs to enter the vocabulary")
    max_caption_words: int = Field(40, ge=1, le=200, description="captioning: reference captions are cut to this many words")


@register_designer("end-to-end")
class EndToEndDesigner(Designer):
    """2PSC §2.3: encoder + utility model jointly; task loss + α·distortion (+ PSF spread)."""

    Config = EndToEndConfig

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        check_arch(self.config.arch)

    def fit(self, encoder: Encoder, data, ctx: RunContext) -> list[dict[str, float]]:
        cfg = self.config
        if cfg.task == "captioning":
            return self._fit_captioning(encoder, data, ctx)
        device = ctx.device
        generator = torch.Generator().manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        part = data.part("face_vs_noface" if cfg.task == "face-vs-noface" else "identities")
        x, y = _subset(part.train.images, part.train.labels, cfg.max_train_images, generator)
        shape = encoder.output_shape(tuple(x.shape[1:]))
        model = build_classifier(cfg.arch, shape, part.train.num_classes).to(device)
        encoder.to(device)
        _standardize_from(model, encode_batches(encoder, x[:512], device=device))
        optics = [p for p in encoder.parameters() if p.requires_grad]
        if not optics:
            raise ConfigError(f"Encoder {encoder.name!r} has no trainable parameters for the end-to-end designer.")
        head = [p for n, p in model.named_parameters() if ".head." in n or n.startswith("head.")]
        head_ids = {id(p) for p in head}
        features = [p for p in model.parameters() if id(p) not in head_ids]
        optimizer = torch.optim.Adam(
            [
                {"params": optics, "lr": cfg.optics_lr},
                {"params": features, "lr": cfg.features_lr},
                {"params": head, "lr": cfg.head_lr},
            ]
        )
        part_val = part.val

        def task_loss(batch: torch.Tensor, measurement: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(model(measurement), y[batch].to(device))

        def validate() -> dict[str, float]:
            measurements = encode_batches(encoder, part_val.images, device=device)
            return {"val_accuracy": _val_accuracy(model, measurements, part_val.labels, device)}

        return self._train_jointly(encoder, model, optimizer, x, generator, ctx, "end-to-end", task_loss, validate)

    def _fit_captioning(self, encoder: Encoder, data, ctx: RunContext) -> list[dict[str, float]]:
        """2PSC §2.3 end to end: lens + captioner on caption loss + α·(1 − mean‖Y − X‖²/J).

        Per step, a batch of scenes goes through the encoder (with gradients), the captioner's
        feature extractor and, for each reference caption of those scenes, the attention LSTM
        under teacher forcing. Learning rates: ``optics_lr`` (lens), ``features_lr`` (feature
        extractor), ``head_lr`` (LSTM decoder), as 2PSC's 1e-2 / 1e-4 / 1e-4. Validation: the
        teacher-forced caption loss of the validation scenes through the current lens.
        """
        cfg = self.config
        device = ctx.device
        generator = torch.Generator().manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        scenes = data.part("scenes")
        train, val = scenes.train, scenes.val
        index = torch.arange(len(train))
        if cfg.max_train_images is not None and len(train) > cfg.max_train_images:
            index = torch.randperm(len(train), generator=generator)[: cfg.max_train_images].sort().values
        x = train.images[index]
        references = [train.captions[i] for i in index.tolist()]
        vocabulary = Vocabulary.build((text for texts in references for text in texts), cfg.min_word_count)
        max_words = min(cfg.max_caption_words, max(longest_caption(references), 1))
        captions = encode_captions(vocabulary, references, max_words)
        val_captions = encode_captions(vocabulary, val.captions, max_words)
        shape = encoder.output_shape(tuple(x.shape[1:]))
        model = build_caption_model(cfg.caption_model, shape, len(vocabulary)).to(device)
        encoder.to(device)
        model.features.set_standardization(*channel_statistics(encode_batches(encoder, x[:512], device=device)))
        optics = [p for p in encoder.parameters() if p.requires_grad]
        if not optics:
            raise ConfigError(f"Encoder {encoder.name!r} has no trainable parameters for the end-to-end designer.")
        optimizer = torch.optim.Adam(
            [
                {"params": optics, "lr": cfg.optics_lr},
                {"params": list(model.features.parameters()), "lr": cfg.features_lr},
                {"params": list(model.decoder.parameters()), "lr": cfg.head_lr},
            ]
        )
        regularization = cfg.caption_model.attention_regularization

        def task_loss(batch: torch.Tensor, measurement: torch.Tensor) -> torch.Tensor:
            features = model.features(measurement)
            rows = captions.rows_of_images(batch)
            position = {int(i): p for p, i in enumerate(batch)}
            feature_rows = torch.tensor([position[int(i)] for i in captions.image_index[rows]], device=device)
            tokens, lengths = captions.tokens[rows].to(device), captions.steps[rows].to(device)
            logits, attention = model.decoder(features[feature_rows], tokens, lengths)
            return caption_loss(logits, tokens, lengths, attention, regularization)[0]

        def validate() -> dict[str, float]:
            measurements = encode_batches(encoder, val.images, device=device)
            return {"val_loss": validation_loss(model, measurements, val_captions, regularization, cfg.batch_size, device)}

        return self._train_jointly(encoder, model, optimizer, x, generator, ctx, "end-to-end-captioning", task_loss, validate)

    def _train_jointly(
        self,
        encoder: Encoder,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        images: torch.Tensor,
        generator: torch.Generator,
        ctx: RunContext,
        name: str,
        task_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        validate: Callable[[], dict[str, float]],
    ) -> list[dict[str, float]]:
        """The 2PSC §2.3 loop shared by every task: task loss + α·distortion (+ PSF spread), per epoch
        a validation, a checkpoint (resumed when the config matches) and a report to ``ctx``."""
        cfg = self.config
        device = ctx.device
        history: list[dict[str, float]] = []
        start_epoch = 0
        state, checkpoint = _resume(ctx, name)
        if state is not None and state.get("config") == self.config_hash():
            encoder.load_state_dict(state["encoder"])
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            generator.set_state(state["generator"])
            history, start_epoch = state["history"], state["epoch"] + 1

        with ctx.progress(cfg.epochs, f"{name} α={cfg.alpha:g}") as bar:
            bar.update(start_epoch)
            for epoch in range(start_epoch, cfg.epochs):
                encoder.train()
                model.train()
                sums = {"task": 0.0, "distortion": 0.0, "psf_spread": 0.0, "loss": 0.0}
                steps = 0
                for batch in _batches(images.shape[0], cfg.batch_size, generator):
                    clean = _float_images(images[batch], device)
                    measurement = encoder(clean)
                    task = task_loss(batch, measurement)
                    distortion = distortion_term(clean, measurement)
                    loss = task + cfg.alpha * distortion
                    spread = encoder.regularizers(clean, measurement).get("psf_spread")
                    if spread is not None and cfg.psf_spread_weight:
                        loss = loss + cfg.psf_spread_weight * spread
                        sums["psf_spread"] += float(spread.detach())
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    _project(encoder)
                    sums["task"] += float(task.detach())
                    sums["distortion"] += float(distortion.detach())
                    sums["loss"] += float(loss.detach())
                    steps += 1
                encoder.eval()
                model.eval()
                with torch.no_grad():
                    validation = validate()
                record = {"epoch": epoch + 1, **{k: v / max(1, steps) for k, v in sums.items()}, **validation}
                history.append(record)
                shown = ", ".join(f"{k} {v:.3f}" for k, v in validation.items())
                ctx.log(f"{name} epoch {epoch + 1}/{cfg.epochs}: task loss {record['task']:.3f}, distortion {record['distortion']:.3f}, {shown}")
                if checkpoint is not None:
                    atomic_torch_save(
                        {
                            "config": self.config_hash(),
                            "epoch": epoch,
                            "encoder": encoder.state_dict(),
                            "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "generator": generator.get_state(),
                            "history": history,
                        },
                        checkpoint,
                    )
                ctx.report(epoch + 1, record)
                bar.update(1, **validation)
        encoder.eval()
        return history
