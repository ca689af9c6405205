import pytest
import torch
from privbench.designers import (
    AdversarialDesigner,
    EndToEndDesigner,
    canopic_encoder_loss,
    distortion_term,
    entropy,
    hardness_schedule,
)

import privbench
from privbench.api.errors import ConfigError
from privbench.api.evaluation import RunContext
from privbench.nn.classifiers import build_classifier


def test_entropy_and_distortion_reference_values():
    uniform = torch.zeros(4, 10)
    assert float(entropy(uniform)) == pytest.approx(torch.log(torch.tensor(10.0)).item())
    certain = torch.tensor([[50.0, 0.0, 0.0]])
    assert float(entropy(certain)) == pytest.approx(0.0, abs=1e-6)
    x = torch.rand(2, 3, 64, 64)
    assert float(distortion_term(x, x)) == pytest.approx(1.0)
    y = torch.zeros_like(x)
    assert float(distortion_term(x, y)) == pytest.approx(1 - float((x**2).mean()), rel=1e-6)
    # Shapes differ: a 12-channel bank of four RGB images on an 8×8 grid is brought to 3×64×64.
    bank = x[:, :, ::8, ::8].repeat(1, 4, 1, 1)
    assert 0 < float(distortion_term(x, bank)) <= 1


def test_hardness_schedule_is_geometric():
    schedule = hardness_schedule(1.0, 16.0, 5)
    assert schedule[0] == pytest.approx(1.0) and schedule[-1] == pytest.approx(16.0)
    assert schedule[2] == pytest.approx(4.0)


def test_canopic_loss_decreases_on_a_fixed_batch(toy):
    torch.manual_seed(0)
    encoder = privbench.get_encoder("toy-learnable-blur").train()
    utility = build_classifier("small-cnn", (3, 64, 64), 2).eval().requires_grad_(False)
    adversary = build_classifier("small-cnn", (3, 64, 64), 4).eval().requires_grad_(False)
    data = toy.build_toy()
    x = data.face_vs_noface.train.images[:16].float() / 255
    t = data.face_vs_noface.train.labels[:16]
    faces = data.identities.train.images[:16].float() / 255
    optimizer = torch.optim.Adam(encoder.parameters(), lr=0.05)
    losses = []
    for _ in range(15):
        loss, _, _ = canopic_encoder_loss(encoder, utility, adversary, x, t, faces, alpha=1.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


def test_end_to_end_task_loss_decreases(toy):
    data = toy.build_toy(per_class=10)
    encoder = privbench.get_encoder("toy-learnable-blur")
    before = encoder.weights_hash()
    designer = EndToEndDesigner(
        alpha=0.1, epochs=6, batch_size=8, features_lr=3e-3, head_lr=3e-3, task="face-id"
    )
    history = designer.fit(encoder, data, RunContext(seed=0))
    assert len(history) == 6
    assert history[-1]["task"] < history[0]["task"]
    assert encoder.weights_hash() != before
    kernel = encoder.kernel.detach()
    assert kernel.min() >= 0 and float(kernel.sum()) == pytest.approx(
        1.0, abs=1e-5
    )  # projected: realizable


def test_adversarial_runs_logs_and_resumes(toy, tmp_path):
    data = toy.build_toy(per_class=8)
    config = {
        "alpha": 2.0,
        "cycles": 2,
        "step1_epochs": 1,
        "step2_epochs": 1,
        "batch_size": 8,
        "utility_arch": "small-cnn",
        "adversary_arch": "small-cnn",
    }
    encoder = privbench.get_encoder("toy-learnable-blur")
    full = AdversarialDesigner(**config).fit(
        encoder, data, RunContext(seed=0, workdir=tmp_path / "full")
    )
    assert [r["cycle"] for r in full] == [1, 2]
    for key in (
        "adversary_val_top1",
        "utility_val_accuracy",
        "encoder_utility_ce",
        "encoder_adversary_entropy",
        "hardness",
    ):
        assert key in full[0]

    class Killed(Exception):
        pass

    def kill_after_first_cycle(step, values):
        if step == 1:
            raise Killed()

    interrupted = privbench.get_encoder("toy-learnable-blur")
    with pytest.raises(Killed):
        AdversarialDesigner(**config).fit(
            interrupted,
            data,
            RunContext(seed=0, workdir=tmp_path / "part", report=kill_after_first_cycle),
        )
    messages = []
    resumed_encoder = privbench.get_encoder("toy-learnable-blur")
    resumed = AdversarialDesigner(**config).fit(
        resumed_encoder, data, RunContext(seed=0, workdir=tmp_path / "part", log=messages.append)
    )
    assert any("adversarial: resumed from checkpoint after epoch 1" in m for m in messages)
    assert [r["cycle"] for r in resumed] == [1, 2]

    # The first cycle comes from the checkpoint, the second continues its batch order: the same
    # records (but for their measured times) and the same fitted encoder as the uninterrupted run.
    def untimed(history):
        return [{k: v for k, v in record.items() if k != "time_s"} for record in history]

    assert untimed(resumed) == untimed(full)
    assert torch.equal(resumed_encoder.kernel, encoder.kernel)


def test_runner_fits_alpha_sweep_and_caches_fitted_weights(toy, tmp_path):
    spec = toy.toy_spec(
        encoders=[
            "identity",
            {
                "name": "toy-learnable-blur",
                "designer": {"name": "end-to-end", "config": {"epochs": 1, "batch_size": 8}},
                "alphas": [0.0, 5.0],
            },
        ]
    )
    report = privbench.run(spec, out_dir=tmp_path / "o", cache_dir=tmp_path / "c", report=True)
    rows = report.results
    learned = rows[rows["encoder"] == "toy-learnable-blur"]
    assert sorted(learned["alpha"].unique()) == [0.0, 5.0]
    assert learned["encoder_weights_hash"].nunique() == 2
    assert set(learned["encoder_label"]) == {"toy-learnable-blur α=0", "toy-learnable-blur α=5"}
    assert len(list((tmp_path / "c" / "fitted").glob("*.pt"))) == 2
    again = privbench.run(spec, out_dir=tmp_path / "o", cache_dir=tmp_path / "c", report=True)
    assert again.ran == 0  # fitted weights came from the cache, so the cells' keys matched


def test_fixed_encoders_are_never_fitted(toy, tmp_path):
    spec = toy.toy_spec(
        encoders=["identity", {"name": "pixelate", "designer": {"name": "adversarial"}}]
    )
    with pytest.raises(ConfigError, match="never fitted"):
        privbench.run(spec, out_dir=tmp_path / "o", cache_dir=tmp_path / "c")


def test_alphas_without_designer_is_a_spec_error(toy):
    from privbench.runs.spec import load_spec

    with pytest.raises(ConfigError, match="no designer"):
        load_spec(toy.toy_spec(encoders=[{"name": "toy-learnable-blur", "alphas": [1.0]}]))


DESIGNER_FILE = '''
"""A designer in one file: spread the toy lens's PSF by minimizing 2PSC's distortion term alone."""
import torch
from pydantic import Field

from privbench import Designer, DesignerConfig, register_designer
from privbench.designers import distortion_term


class SpreadConfig(DesignerConfig):
    steps: int = Field(5, ge=1)


@register_designer("test-spread", override=True)
class Spread(Designer):
    Config = SpreadConfig

    def fit(self, encoder, data, ctx):
        images = data.part("identities").train.images[:8].float() / 255
        optimizer = torch.optim.Adam(encoder.parameters(), lr=0.05)
        history = []
        for step in range(self.config.steps):
            loss = self.config.alpha * distortion_term(images, encoder(images))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                encoder.project_()
            history.append({"step": step + 1, "distortion": float(loss.detach())})
        return history
'''


def test_a_designer_is_one_file_found_by_name_and_run_by_the_runner(toy, tmp_path):
    import importlib.util

    path = tmp_path / "spread_designer.py"
    path.write_text(DESIGNER_FILE)
    module_spec = importlib.util.spec_from_file_location("spread_designer", path)
    module_spec.loader.exec_module(importlib.util.module_from_spec(module_spec))
    assert "test-spread" in privbench.list_designers()

    initial = privbench.get_encoder("toy-learnable-blur").weights_hash()
    spec = toy.toy_spec(
        encoders=[
            {
                "name": "toy-learnable-blur",
                "designer": {"name": "test-spread", "config": {"steps": 4}},
            }
        ]
    )
    rows = privbench.run(
        spec, out_dir=tmp_path / "o", cache_dir=tmp_path / "c", report=True
    ).results
    assert set(rows["alpha"]) == {1.0}
    fitted = set(rows["encoder_weights_hash"])
    assert len(fitted) == 1 and initial not in fitted  # the designer changed the weights
