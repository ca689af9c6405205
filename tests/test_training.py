"""Classifier models and the shared training loop."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from privbench.api.cache import load_verified
from privbench.api.errors import ConfigError, InputError
from privbench.api.evaluation import Progress, ProgressBar, RunContext
from privbench.nn.classifiers import ARCHITECTURES, ClassifierHead, build_classifier
from privbench.nn.training import TrainConfig, channel_statistics, predict_logits, train_classifier


def pattern_classes(
    num_classes: int,
    per_class: int,
    size: int = 16,
    channels: int = 3,
    seed: int = 0,
    scale: float = 1.0,
):
    """Noisy images whose class is a bright square at a class-specific place
    (separable, not trivial)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(num_classes * per_class, channels, size, size, generator=generator) * 0.5
    y = torch.arange(num_classes).repeat_interleave(per_class)
    cells = int(num_classes**0.5 + 0.999)
    side = size // cells
    for index, label in enumerate(y.tolist()):
        row, col = divmod(label, cells)
        x[index, :, row * side : (row + 1) * side, col * side : (col + 1) * side] += 0.5
    return x * scale, y


def final_feature_map(model, x):
    """Spatial size of the feature map entering the classifier head."""
    seen = {}
    head = next(m for m in model.modules() if isinstance(m, ClassifierHead))
    handle = head.register_forward_hook(
        lambda module, inputs, output: seen.setdefault("shape", inputs[0].shape)
    )
    with torch.no_grad():
        model.eval()(x)
    handle.remove()
    return tuple(seen["shape"][-2:])


# -- models --------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
@pytest.mark.parametrize("shape", [(3, 8, 8), (12, 8, 8), (12, 16, 16), (3, 64, 64), (3, 256, 256)])
def test_models_accept_channels_and_sizes(arch, shape):
    torch.manual_seed(0)
    width = (
        0.25 if arch != "small-cnn" and shape[-1] == 256 else 1.0
    )  # keep the 256 px case quick on CPU
    model = build_classifier(arch, shape, 7, width_multiplier=width)
    x = torch.rand(2, *shape)
    logits = model.eval()(x)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    height, width_px = final_feature_map(model, x)
    assert height >= 4 and width_px >= 4  # tiny measurements are not pooled away
    if shape[-1] in (8, 64):
        assert (height, width_px) == (4, 4)  # ... and large ones are pooled down to 4×4
    if shape[-1] == 256:
        assert height <= 16


def test_unknown_architecture_lists_accepted_names():
    with pytest.raises(ConfigError) as error:
        build_classifier("vgg16", (3, 64, 64), 10)
    for name in ARCHITECTURES:
        assert name in str(error.value)


def test_bad_shapes_and_channel_mismatch_are_clear():
    with pytest.raises(ConfigError, match="channels, height, width"):
        build_classifier("small-cnn", (64, 64), 10)
    with pytest.raises(ConfigError, match="at least 2 classes"):
        build_classifier("small-cnn", (3, 8, 8), 1)
    model = build_classifier("small-cnn", (12, 8, 8), 4)
    with pytest.raises(InputError, match=r"\(B, 12, H, W\)"):
        model(torch.rand(2, 3, 8, 8))


# -- training loop -------------------------------------------------------------------------
def test_training_loss_decreases_on_a_fixed_batch():
    x, y = pattern_classes(4, 8, size=16)
    model = build_classifier("small-cnn", (3, 16, 16), 4)
    mean, std = channel_statistics(x)
    model.set_standardization(mean, std)
    before = torch.nn.functional.cross_entropy(predict_logits(model, x, 64, "cpu"), y)
    config = TrainConfig(epochs=12, batch_size=8, patience=None, label_smoothing=0.0)
    model, history = train_classifier(model, x, y, x, y, config, RunContext(seed=0), "fixed-batch")
    losses = [epoch["train_loss"] for epoch in history.epochs]
    assert losses[-1] < 0.5 * losses[0]
    after = torch.nn.functional.cross_entropy(predict_logits(model, x, 64, "cpu"), y)
    assert after < 0.5 * before
    assert history.best_val_accuracy == 1.0


def test_standardization_comes_from_the_training_set():
    x, y = pattern_classes(
        2, 8, size=8, channels=12, scale=15.0
    )  # quantizer-like levels in [0, 15]
    model = build_classifier("small-cnn", (12, 8, 8), 2)
    model, _ = train_classifier(model, x, y, x, y, TrainConfig(epochs=1), RunContext(), "stats")
    expected_mean = x.transpose(0, 1).reshape(12, -1).mean(1)
    expected_std = x.transpose(0, 1).reshape(12, -1).std(1, unbiased=False)
    assert torch.allclose(model.input_mean, expected_mean, atol=1e-5)
    assert torch.allclose(model.input_std, expected_std, atol=1e-5)


def test_early_stopping_restores_the_best_validation_epoch():
    x, y = pattern_classes(2, 16, size=8)
    val_x, val_y = x, 1 - y  # validation labels flipped: learning the task makes val worse
    config = TrainConfig(epochs=30, batch_size=8, patience=3, lr=1e-2)
    model = build_classifier("small-cnn", (3, 8, 8), 2)
    model, history = train_classifier(
        model, x, y, val_x, val_y, config, RunContext(seed=1), "early"
    )
    assert history.stopped_early
    assert len(history.epochs) == history.best_epoch + config.patience < config.epochs
    best = history.epochs[history.best_epoch - 1]
    logits = predict_logits(model, val_x, 64, "cpu")
    restored_accuracy = float((logits.argmax(1) == val_y).float().mean())
    restored_loss = float(torch.nn.functional.cross_entropy(logits, val_y))
    assert restored_accuracy == pytest.approx(best["val_accuracy"])
    assert restored_loss == pytest.approx(best["val_loss"], rel=1e-4)
    assert history.epochs[-1]["val_loss"] > best["val_loss"]  # the last weights were not kept


class _Killed(Exception):
    pass


class _KillAfter(Progress):
    """A progress factory whose bar raises after ``epochs`` updates: a run killed mid-training."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def __call__(self, total, description):
        parent = self

        class Bar(ProgressBar):
            def update(self, advance=1, **info):
                parent.epochs -= advance
                if parent.epochs <= 0:
                    raise _Killed()

        return Bar()


def test_resume_from_checkpoint_continues_and_matches_an_uninterrupted_run(tmp_path):
    x, y = pattern_classes(3, 8, size=8)
    config = TrainConfig(epochs=4, batch_size=8, patience=None)

    def fresh():
        torch.manual_seed(0)
        return build_classifier("small-cnn", (3, 8, 8), 3)

    reference, reference_history = train_classifier(
        fresh(), x, y, x, y, config, RunContext(workdir=tmp_path / "a"), "m"
    )

    killed_ctx = RunContext(workdir=tmp_path / "b", progress=_KillAfter(2))
    with pytest.raises(_Killed):
        train_classifier(fresh(), x, y, x, y, config, killed_ctx, "m")
    partial = load_verified(tmp_path / "b" / "m.pt", weights_only=False)
    assert partial["epoch"] == 2 and not partial["finished"]

    logs = []
    resumed, history = train_classifier(
        fresh(), x, y, x, y, config, RunContext(workdir=tmp_path / "b", log=logs.append), "m"
    )
    assert history.resumed_from_epoch == 2
    assert any("resumed" in line for line in logs)
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3, 4]
    for mine, theirs in zip(history.epochs, reference_history.epochs):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-4)
    for key, value in reference.state_dict().items():
        assert torch.allclose(resumed.state_dict()[key].float(), value.float(), atol=1e-5), key

    # A finished checkpoint is reused without training; a changed config starts afresh.
    again, again_history = train_classifier(
        fresh(), x, y, x, y, config, RunContext(workdir=tmp_path / "b"), "m"
    )
    assert again_history.resumed_from_epoch == 4 and len(again_history.epochs) == 4
    other = config.model_copy(update={"lr": 1e-3})
    _, other_history = train_classifier(
        fresh(), x, y, x, y, other, RunContext(workdir=tmp_path / "b"), "m"
    )
    assert other_history.resumed_from_epoch == 0


def test_predict_logits_batches_and_returns_cpu():
    x, y = pattern_classes(2, 5, size=8)
    model = build_classifier("mobilenet", (3, 8, 8), 2, width_multiplier=0.25)
    whole = predict_logits(model, x, 100, "cpu")
    pieces = predict_logits(model, x, 3, "cpu")
    assert whole.shape == (10, 2) and whole.device.type == "cpu"
    assert torch.allclose(whole, pieces, atol=1e-5)


def test_train_config_validation():
    with pytest.raises(Exception, match="augment"):
        TrainConfig(augment="rotate")
    with pytest.raises(ValidationError):
        TrainConfig(unknown=1)


def test_training_state_starts_over_on_an_unreadable_checkpoint_and_counts_patience(tmp_path):
    from privbench.nn.fit import TrainingState
    from privbench.nn.training import TrainHistory

    torch.manual_seed(0)
    model = build_classifier("small-cnn", (3, 8, 8), 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    path = tmp_path / "m.pt"
    path.write_bytes(b"cut short by a kill")
    logs = []

    def state():
        return TrainingState(
            model,
            optimizer,
            scheduler,
            TrainHistory(),
            signature="s",
            path=path,
            ctx=RunContext(workdir=tmp_path, log=logs.append),
            name="m",
            worst_score=(-1.0, float("-inf")),
        )

    fresh = state()
    assert not fresh.resume() and fresh.epoch == 0
    assert any("unreadable checkpoint" in line for line in logs)

    # Patience 2 over 5 epochs: a best at epoch 1, two worse epochs stop the run after epoch 3.
    assert fresh.end_epoch((0.5, -1.0), patience=2, max_epochs=5)
    assert not fresh.end_epoch((0.5, -1.5), patience=2, max_epochs=5) and not fresh.finished
    assert not fresh.end_epoch((0.4, -0.5), patience=2, max_epochs=5)
    assert fresh.finished and fresh.history.stopped_early and fresh.history.best_epoch == 1
    fresh.save()

    resumed = state()
    assert resumed.resume()
    assert (resumed.epoch, resumed.finished, resumed.bad_epochs) == (3, True, 2)
    assert resumed.best_score == (0.5, -1.0) and resumed.history.resumed_from_epoch == 3
    assert load_verified(path, weights_only=False)["best_score"] == [0.5, -1.0]


def test_a_diverged_training_is_a_failed_cell_never_a_row(toy, tmp_path):
    from privbench.pipeline import run

    diverging = {"name": "toy-trained-attack", "config": {"lr": 1e38, "epochs": 3}}
    spec = toy.toy_spec(encoders=["identity"], attacks=[diverging])
    report = run(spec, out_dir=tmp_path / "out", cache_dir=tmp_path / "cache", report=True)
    assert len(report.failures) == 1
    assert "diverged at epoch" in report.failures[0][1]
    assert "Lower the learning rate" in report.failures[0][1]
    assert (report.results["evaluation"] != "toy-trained-attack").all()
