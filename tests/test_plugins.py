"""Third-party encoders: registration through entry points of a separately installed package."""

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import privbench
from privbench.api.registry import ATTACKS, DATASETS, DESIGNERS, ENCODERS, TASKS

REGISTRIES = (ENCODERS, TASKS, ATTACKS, DESIGNERS, DATASETS)

PLUGIN_MODULE = '''
"""A third-party privacy encoder: a vertical-bar mask camera (columns of the sensor covered)."""
import torch
from pydantic import Field

from privbench import Encoder, EncoderConfig, register_encoder


class BarsConfig(EncoderConfig):
    period_px: int = Field(4, ge=2, description="one open column every period_px columns")


@register_encoder("demo-bars")
class BarMaskCamera(Encoder):
    """Keeps one column in period_px; the rest of the sensor is covered."""

    Config = BarsConfig

    def measure(self, images):
        mask = torch.zeros(images.shape[-1], device=images.device)
        mask[:: self.config.period_px] = 1.0
        return images * mask


class Negative(Encoder):
    """Registered by its entry point object rather than by a decorator."""

    def measure(self, images):
        return 1.0 - images
'''

#: One file per kind, as a third party writes them: a learnable encoder, a task, an attack, a
#: designer and a dataset adapter, each registered through its own entry-point group.
KIND_MODULES = {
    "gain_camera.py": """
\"\"\"A learnable analog gain per colour channel (what the demo designer fits).\"\"\"
import torch
from torch import nn

from privbench import Encoder, register_encoder


@register_encoder("demo-gain")
class ChannelGain(Encoder):
    learnable = True

    def __init__(self, **config):
        super().__init__(**config)
        self.gain = nn.Parameter(torch.full((3, 1, 1), 0.5))

    def measure(self, images):
        return images * self.gain
""",
    "centroid_task.py": """
\"\"\"Utility task: nearest class mean on the face vs no-face part.\"\"\"
import torch

from privbench import EvalResult, Evaluation, MetricSpec, register_task


def nearest_mean_accuracy(inputs, part):
    train, test = inputs.encoded(part, "train").materialize().flatten(1), inputs.encoded(
        part, "test"
    ).materialize().flatten(1)
    train_y, test_y = inputs.labels(part, "train"), inputs.labels(part, "test")
    classes = int(train_y.max()) + 1
    means = torch.stack([train[train_y == c].mean(0) for c in range(classes)])
    predicted = torch.cdist(test, means).argmin(1)
    return float((predicted == test_y).float().mean()), 1.0 / classes


@register_task("demo-centroid-task")
class CentroidTask(Evaluation):
    role = "utility"
    requires = ("face_vs_noface",)
    metrics = {"accuracy": MetricSpec(True, "nearest-mean accuracy")}
    headline = "accuracy"

    def evaluate(self, inputs, ctx):
        accuracy, chance = nearest_mean_accuracy(inputs, "face_vs_noface")
        return EvalResult({"accuracy": accuracy}, chance=chance)
""",
    "centroid_attack.py": """
\"\"\"Privacy attack: nearest identity mean, retrained on the measurements.\"\"\"
from privbench import EvalResult, Evaluation, MetricSpec, Protocol, register_attack
from privbench_demo_plugin.centroid_task import nearest_mean_accuracy


@register_attack("demo-centroid-attack")
class CentroidAttack(Evaluation):
    role = "privacy"
    protocol = Protocol.RETRAINED
    requires = ("identities",)
    metrics = {"top1": MetricSpec(True, "nearest-mean identification")}
    headline = "top1"

    def evaluate(self, inputs, ctx):
        top1, chance = nearest_mean_accuracy(inputs, "identities")
        return EvalResult({"top1": top1}, chance=chance)
""",
    "gain_designer.py": """
\"\"\"Designer: gradient steps on alpha * the measurement's mean power (a dimmer camera).\"\"\"
import torch
from pydantic import Field

from privbench import Designer, DesignerConfig, register_designer


class DimmerConfig(DesignerConfig):
    steps: int = Field(3, ge=1)


@register_designer("demo-dimmer")
class Dimmer(Designer):
    Config = DimmerConfig

    def fit(self, encoder, data, ctx):
        images = data.part("identities").train.images.float() / 255
        optimizer = torch.optim.SGD(encoder.parameters(), lr=0.1)
        history = []
        for step in range(self.config.steps):
            loss = self.config.alpha * encoder(images).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            history.append({"step": step + 1, "power": float(loss.detach())})
        encoder.eval()
        return history
""",
    "stripes_dataset.py": """
\"\"\"A generated dataset: stripe frequency is the identity, its parity face vs no-face.\"\"\"
import torch
from pydantic import Field

from privbench import ComponentConfig, DatasetAdapter, register_dataset
from privbench.api.config import stable_hash
from privbench.data import BenchmarkData, LabeledImages, LabeledSplits


class StripesConfig(ComponentConfig):
    per_class: int = Field(4, ge=2)


def stripes(per_class, offset):
    images, labels = [], []
    for label in range(4):
        x = torch.arange(64).float()
        for k in range(per_class):
            phase = 0.1 * k + 0.05 * offset  # small nuisance: frequency decides the class
            row = (torch.sin(x * (label + 1) * 0.3 + phase) > 0).to(torch.uint8) * 200
            images.append(row.expand(3, 64, 64).clone())
            labels.append(label)
    return torch.stack(images), torch.tensor(labels)


@register_dataset("demo-stripes")
class Stripes(DatasetAdapter):
    Config = StripesConfig

    def load(self, cache_dir=None):
        parts = [stripes(self.config.per_class, offset) for offset in (0, 1, 2)]
        identities = LabeledSplits(*(LabeledImages(x, y, list("abcd")) for x, y in parts))
        binary = LabeledSplits(*(LabeledImages(x, y % 2, ["no", "yes"]) for x, y in parts))
        return BenchmarkData(
            name="demo-stripes",
            fingerprint=stable_hash({"stripes": self.config.per_class}),
            identities=identities,
            face_vs_noface=binary,
        )
""",
}

PYPROJECT = """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "privbench-demo-plugin"
version = "0.0.1"

[tool.setuptools]
packages = ["privbench_demo_plugin"]

[project.entry-points."privbench.encoders"]
demo-bars = "privbench_demo_plugin"
demo-negative = "privbench_demo_plugin:Negative"
demo-gain = "privbench_demo_plugin.gain_camera"

[project.entry-points."privbench.tasks"]
demo-centroid-task = "privbench_demo_plugin.centroid_task"

[project.entry-points."privbench.attacks"]
demo-centroid-attack = "privbench_demo_plugin.centroid_attack"

[project.entry-points."privbench.designers"]
demo-dimmer = "privbench_demo_plugin.gain_designer"

[project.entry-points."privbench.datasets"]
demo-stripes = "privbench_demo_plugin.stripes_dataset"
"""


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    source = tmp_path_factory.mktemp("plugin-src")
    (source / "pyproject.toml").write_text(PYPROJECT)
    package = source / "privbench_demo_plugin"
    package.mkdir()
    (package / "__init__.py").write_text(PLUGIN_MODULE)
    for name, text in KIND_MODULES.items():
        (package / name).write_text(text)
    target = tmp_path_factory.mktemp("plugin-site")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    for registry in REGISTRIES:
        registry.refresh()
    yield target
    sys.path.remove(str(target))


def test_plugin_encoders_are_registered(installed_plugin):
    assert {"demo-bars", "demo-negative"} <= set(privbench.list_encoders())
    bars = privbench.get_encoder("demo-bars", period_px=8)
    images = torch.rand(1, 3, 64, 64)
    out = bars(images)
    assert torch.equal(out[..., ::8], images[..., ::8]) and out[..., 1::8].abs().sum() == 0
    negative = privbench.get_encoder("demo-negative")
    assert torch.allclose(negative(images), 1 - images)


def test_a_plugin_package_adds_one_file_per_kind_and_runs_them_together(installed_plugin, tmp_path):
    assert "demo-gain" in privbench.list_encoders()
    assert "demo-centroid-task" in privbench.list_tasks()
    assert "demo-centroid-attack" in privbench.list_attacks()
    assert "demo-dimmer" in privbench.list_designers()
    assert "demo-stripes" in privbench.list_datasets()
    spec = {
        "name": "demo",
        "dataset": {"name": "demo-stripes", "config": {"per_class": 3}},
        "encoders": [
            "identity",
            "demo-bars",
            {"name": "demo-gain", "designer": {"name": "demo-dimmer", "config": {"alpha": 2.0}}},
        ],
        "tasks": ["demo-centroid-task"],
        "attacks": ["demo-centroid-attack"],
        "sample_encoder_inputs": 0,
    }
    report = privbench.run(spec, out_dir=tmp_path / "o", cache_dir=tmp_path / "c", report=True)
    assert not report.failures and report.ran == 6
    rows = report.results
    assert set(rows["encoder"]) == {"identity", "demo-bars", "demo-gain"}
    gain = rows[rows["encoder"] == "demo-gain"]
    assert set(gain["alpha"]) == {2.0} and {d["designer"] for d in gain["details"]} == {
        "demo-dimmer"
    }
    fitted = report.fitted["demo-gain"]
    assert float(fitted.encoder.gain.detach().mean()) < 0.5  # the designer dimmed the camera
    assert [r["step"] for r in fitted.history] == [1, 2, 3]
    assert set(rows["protocol"].dropna()) == {"retrained"}
    identity = rows[rows["encoder"] == "identity"].set_index("evaluation")
    assert identity.loc["demo-centroid-attack", "metrics"]["top1"] == 1.0  # stripes are separable


def test_plugin_encoder_runs_in_a_benchmark(installed_plugin, toy, tmp_path):
    spec = toy.toy_spec(encoders=["identity", "demo-bars"])
    frame = privbench.run(spec, out_dir=tmp_path / "out", cache_dir=tmp_path / "cache")
    assert set(frame["encoder"]) == {"identity", "demo-bars"}


def test_plugin_visible_to_the_cli(installed_plugin):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(installed_plugin), os.environ.get("PYTHONPATH", "")]),
        "COLUMNS": "200",
    }
    result = subprocess.run(
        [sys.executable, "-c", "from privbench.cli import main; main(['list', 'encoders'])"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "demo-bars" in result.stdout and "demo-negative" in result.stdout


def test_broken_plugin_warns_instead_of_breaking(tmp_path):
    site = tmp_path / "site"
    dist = site / "broken_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[privbench.encoders]\nbroken = no_such_module_xyz\n")
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    try:
        with pytest.warns(UserWarning, match="broken"):
            ENCODERS.refresh()
        assert "pixelate" in privbench.list_encoders()
    finally:
        sys.path.remove(str(site))
        importlib.invalidate_caches()
        ENCODERS.refresh()


def test_readme_registration_example_runs(toy, tmp_path):
    """The docs' "Register your own encoder" example is executed verbatim."""
    readme = (Path(__file__).parent.parent / "docs" / "python-api.md").read_text()
    marker = "<!-- tested-example: register-encoder -->"
    assert marker in readme
    block = readme.split(marker, 1)[1].split("```python", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(textwrap.dedent(block), "docs/python-api.md", "exec"), namespace)
    assert "vignette" in privbench.list_encoders()
    frame = privbench.run(
        toy.toy_spec(encoders=["identity", "vignette"]),
        out_dir=tmp_path / "o",
        cache_dir=tmp_path / "c",
    )
    assert set(frame["encoder"]) == {"identity", "vignette"}
