"""Small, fast components for testing the runner's mechanics (not shipped with privbench).

The dataset is a few coloured-pattern classes; the evaluation is a real nearest-class-mean
classifier on measurements (fit on train, scored on test), so results depend on the encoder.
"""

from __future__ import annotations

import os
import time

import torch

from privbench.api.adapter import DatasetAdapter
from privbench.api.config import ComponentConfig, stable_hash
from privbench.api.encoder import Encoder, EncoderConfig
from privbench.api.evaluation import EvalResult, Evaluation, EvaluationConfig, MetricSpec
from privbench.api.registry import (
    register_attack,
    register_dataset,
    register_encoder,
    register_task,
)
from privbench.data import BenchmarkData, LabeledImages, LabeledSplits

CALLS = {"dataset": 0, "evaluate": 0}


def make_images(num_classes: int, per_class: int, seed: int, size: int = 64) -> LabeledImages:
    generator = torch.Generator().manual_seed(seed)
    images, labels = [], []
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for label in range(num_classes):
        frequency = (
            1 + label
        )  # class = stripe frequency + a colour tint: fine detail and coarse colour
        stripes = (torch.sin(xx * frequency * 3.1416 / 16) > 0).float()
        for _ in range(per_class):
            tint = torch.tensor([0.2 + 0.1 * (label % 3), 0.5, 0.8 - 0.1 * (label % 2)]).view(
                3, 1, 1
            )
            noise = torch.rand(3, size, size, generator=generator) * 0.3
            image = (0.5 * stripes + 0.3 * tint + noise).clamp(0, 1)
            images.append((image * 255).round().to(torch.uint8))
            labels.append(label)
    return LabeledImages(
        torch.stack(images), torch.tensor(labels), [f"c{i}" for i in range(num_classes)]
    )


class ToyConfig(ComponentConfig):
    num_classes: int = 4
    per_class: int = 6
    seed: int = 0


@register_dataset("toy-patterns", override=True)
class ToyPatterns(DatasetAdapter):
    """A few coloured-pattern classes (a dataset plugin in one file)."""

    Config = ToyConfig

    def load(self, cache_dir=None) -> BenchmarkData:
        return build_toy(**self.config.model_dump())


def build_toy(num_classes: int = 4, per_class: int = 6, seed: int = 0) -> BenchmarkData:
    CALLS["dataset"] += 1
    splits = LabeledSplits(
        make_images(num_classes, per_class, seed),
        make_images(num_classes, 2, seed + 1),
        make_images(num_classes, 3, seed + 2),
    )
    binary = LabeledSplits(
        *(LabeledImages(s.images, (s.labels % 2), ["even", "odd"]) for _, s in splits.items())
    )
    return BenchmarkData(
        name="toy-patterns",
        fingerprint=stable_hash({"toy": [num_classes, per_class, seed]}),
        identities=splits,
        face_vs_noface=binary,
    )


class CentroidConfig(EvaluationConfig):
    sleep_s: float = 0.0


class _NearestCentroid(Evaluation):
    Config = CentroidConfig
    metrics = {"accuracy": MetricSpec(True, "nearest-class-mean accuracy on test")}
    headline = "accuracy"

    def evaluate(self, inputs, ctx) -> EvalResult:
        CALLS["evaluate"] += 1
        part = self.requires[0]
        train = inputs.encoded(part, "train").materialize()
        test = inputs.encoded(part, "test").materialize()
        train_y, test_y = inputs.labels(part, "train"), inputs.labels(part, "test")
        classes = int(train_y.max()) + 1
        flat = train.flatten(1)
        centroids = torch.stack([flat[train_y == c].mean(0) for c in range(classes)])
        predicted = torch.cdist(test.flatten(1), centroids).argmin(1)
        if self.config.sleep_s or float(os.environ.get("TOY_SLEEP", "0")):
            time.sleep(self.config.sleep_s or float(os.environ["TOY_SLEEP"]))
        return EvalResult(
            {"accuracy": float((predicted == test_y).float().mean())}, chance=1.0 / classes
        )


@register_task("toy-utility", override=True)
class ToyUtility(_NearestCentroid):
    """Toy utility: nearest-centroid on the binary labels."""

    role = "utility"
    requires = ("face_vs_noface",)


@register_attack("toy-attack", override=True)
class ToyAttack(_NearestCentroid):
    """Toy attack: nearest-centroid identification."""

    role = "privacy"
    protocol = "retrained"
    requires = ("identities",)


def toy_spec(**overrides) -> dict:
    spec = {
        "name": "toy",
        "version": "1",
        "dataset": {"name": "toy-patterns"},
        "encoders": ["identity", {"name": "gaussian-blur", "config": {"sigma_px": 4}}, "pixelate"],
        "tasks": ["toy-utility"],
        "attacks": ["toy-attack"],
        "seeds": [0],
        "sample_encoder_inputs": 2,
    }
    spec.update(overrides)
    return spec


class LearnableBlurConfig(EncoderConfig):
    kernel_px: int = 7


@register_encoder("toy-learnable-blur", override=True)
class LearnableBlur(Encoder):
    """Toy learnable camera: one non-negative, unit-sum k×k PSF shared by the colour channels."""

    Config = LearnableBlurConfig
    learnable = True

    def __init__(self, **config):
        super().__init__(**config)
        k = self.config.kernel_px
        self.kernel = torch.nn.Parameter(torch.full((k, k), 1.0 / k**2) + 0.01 * torch.eye(k))

    def measure(self, images):
        k = self.kernel.shape[-1]
        weight = self.kernel.clamp_min(0)
        weight = (weight / weight.sum()).expand(3, 1, k, k)
        padded = torch.nn.functional.pad(images, (k // 2,) * 4, mode="replicate")
        return torch.nn.functional.conv2d(padded, weight, groups=3)

    def project_(self):
        self.kernel.clamp_(min=0)
        self.kernel.div_(self.kernel.sum())


class TrainedConfig(EvaluationConfig):
    epochs: int = 4
    #: Fault injection for the engine's tests: a file path; while it does not exist, the process
    #: writes it and kills itself (SIGKILL) after epoch ``crash_after`` is checkpointed.
    crash_marker: str | None = None
    crash_after: int = 2
    #: Fault injection: raise an exception / report a NaN metric instead of a result.
    fail: str | None = None
    lr: float = 0.05


@register_attack("toy-trained-attack", override=True)
class ToyTrainedAttack(Evaluation):
    """Toy attack trained with privbench's one training loop (epoch checkpoints, resume): a
    linear identity classifier on the flattened measurements."""

    Config = TrainedConfig
    role = "privacy"
    protocol = "retrained"
    requires = ("identities",)
    metrics = {"accuracy": MetricSpec(True, "linear classifier accuracy on test")}
    headline = "accuracy"

    def evaluate(self, inputs, ctx) -> EvalResult:
        import signal

        from privbench.nn.fit import FitHistory, fit, shuffled_batches

        cfg = self.config
        if cfg.fail == "exception":
            raise RuntimeError("injected failure")
        x, y = (
            inputs.encoded("identities", "train").materialize().flatten(1),
            inputs.labels("identities", "train"),
        )
        vx, vy = (
            inputs.encoded("identities", "val").materialize().flatten(1),
            inputs.labels("identities", "val"),
        )
        classes = int(y.max()) + 1
        model = torch.nn.Linear(x.shape[1], classes)
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9)

        def train_epoch(epoch, generator):
            for batch in shuffled_batches(x.shape[0], 8, generator):
                loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            return {"loss": float(loss.detach())}

        def validate():
            with torch.no_grad():
                accuracy = float((model(vx).argmax(1) == vy).float().mean())
            return accuracy, {"val_accuracy": accuracy}

        def on_epoch(epoch, record):
            marker = cfg.crash_marker
            if marker and epoch >= cfg.crash_after and not os.path.exists(marker):
                with open(marker, "w") as handle:
                    handle.write(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)

        history = fit(
            model,
            name="toy-trained-attack",
            ctx=ctx,
            epochs=cfg.epochs,
            optimizer=optimizer,
            train_epoch=train_epoch,
            validate=validate,
            signature=stable_hash({"toy-trained": cfg.epochs, "n": x.shape[0]}),
            history=FitHistory(),
            worst_score=-1.0,
            keep_best=False,
            on_epoch=on_epoch,
        )
        tx, ty = (
            inputs.encoded("identities", "test").materialize().flatten(1),
            inputs.labels("identities", "test"),
        )
        with torch.no_grad():
            accuracy = float((model(tx).argmax(1) == ty).float().mean())
        if cfg.fail == "nan":
            accuracy = float("nan")
        details = {"resumed_from_epoch": history.resumed_from_epoch, "pid": os.getpid()}
        return EvalResult({"accuracy": accuracy}, chance=1.0 / classes, details=details)
