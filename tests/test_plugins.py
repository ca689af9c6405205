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
from privbench.api.registry import ENCODERS

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

PYPROJECT = '''
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "privbench-demo-plugin"
version = "0.0.1"

[tool.setuptools]
py-modules = ["privbench_demo_plugin"]

[project.entry-points."privbench.encoders"]
demo-bars = "privbench_demo_plugin"
demo-negative = "privbench_demo_plugin:Negative"
'''


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    source = tmp_path_factory.mktemp("plugin-src")
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "privbench_demo_plugin.py").write_text(PLUGIN_MODULE)
    target = tmp_path_factory.mktemp("plugin-site")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    ENCODERS.refresh()
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


def test_plugin_encoder_runs_in_a_benchmark(installed_plugin, toy, tmp_path):
    spec = toy.toy_spec(encoders=["identity", "demo-bars"])
    frame = privbench.run(spec, out_dir=tmp_path / "out", cache_dir=tmp_path / "cache")
    assert set(frame["encoder"]) == {"identity", "demo-bars"}


def test_plugin_visible_to_the_cli(installed_plugin):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed_plugin), os.environ.get("PYTHONPATH", "")]), "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-c", "from privbench.cli import main; main(['list', 'encoders'])"],
                            capture_output=True, text=True, env=env, timeout=120)
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
    """The README's "Register your own encoder" example is executed verbatim."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    marker = "<!-- tested-example: register-encoder -->"
    assert marker in readme
    block = readme.split(marker, 1)[1].split("```python", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(textwrap.dedent(block), "README.md", "exec"), namespace)
    assert "vignette" in privbench.list_encoders()
    frame = privbench.run(toy.toy_spec(encoders=["identity", "vignette"]), out_dir=tmp_path / "o", cache_dir=tmp_path / "c")
    assert set(frame["encoder"]) == {"identity", "vignette"}
