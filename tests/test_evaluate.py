"""Your own camera: ``privbench.evaluate`` and ``privbench run --encoder-file`` (issue 17)."""

import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import privbench
from privbench.api.camera import ModuleEncoder, load_encoder_file, source_fingerprint
from privbench.api.config import stable_hash
from privbench.api.encoder import Encoder
from privbench.api.errors import ConfigError, InputError
from privbench.cli import main


class BoxCamera(nn.Module):
    """An unregistered camera: a learnable-looking 4×4 box blur then 4× subsampling."""

    def __init__(self, size: int = 4):
        super().__init__()
        self.register_buffer("kernel", torch.full((3, 1, size, size), 1.0 / size**2))

    def forward(self, x):
        return F.conv2d(x, self.kernel, stride=self.kernel.shape[-1], groups=3)


class Halver(Encoder):
    """An unregistered Encoder subclass (declares no version: its source identifies it)."""

    def measure(self, images):
        return images * 0.5


def _evaluate(toy, tmp_path, camera, **options):
    return privbench.evaluate(
        camera,
        toy.toy_spec(),
        out_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        report=True,
        **options,
    )


def test_an_unregistered_module_runs_beside_the_clean_reference(toy, tmp_path):
    report = _evaluate(toy, tmp_path, BoxCamera())
    assert not report.failures and report.ran == 4
    rows = report.results
    assert set(rows["encoder_label"]) == {"identity", "BoxCamera"}
    camera = rows[rows["encoder_label"] == "BoxCamera"].iloc[0]
    assert camera["encoder"] == "BoxCamera"
    assert camera["encoder_config"]["module"] == f"{__name__}.BoxCamera"
    assert camera["encoder_weights_hash"] is not None
    # The camera really measured: nearest-centroid accuracy on its 16×16 measurement, computed
    # here independently of the run.
    data = toy.build_toy()
    part = data.part("identities")
    with torch.no_grad():
        train = BoxCamera()(part.train.images.float() / 255).flatten(1)
        test = BoxCamera()(part.test.images.float() / 255).flatten(1)
    centroids = torch.stack([train[part.train.labels == c].mean(0) for c in range(4)])
    expected = float((torch.cdist(test, centroids).argmin(1) == part.test.labels).float().mean())
    attack = rows[(rows["encoder_label"] == "BoxCamera") & (rows["evaluation"] == "toy-attack")]
    assert attack.iloc[0]["metrics"]["accuracy"] == pytest.approx(expected)
    board = (tmp_path / "out" / "leaderboard.md").read_text()
    assert "BoxCamera" in board


def test_the_cache_keys_follow_the_cameras_weights(toy, tmp_path):
    _evaluate(toy, tmp_path, BoxCamera())
    again = _evaluate(toy, tmp_path, BoxCamera())
    assert again.ran == 0 and again.skipped == 4
    changed = BoxCamera()
    changed.kernel[0, 0, 0, 0] += 0.01
    report = _evaluate(toy, tmp_path, changed)
    assert report.ran == 2 and report.skipped == 2  # identity's two cells are reused


def test_the_cache_keys_follow_the_cameras_source_file(toy, tmp_path):
    source = tmp_path / "my_camera.py"
    code = textwrap.dedent(
        """
        import torch.nn.functional as F
        from torch import nn

        class MyCamera(nn.Module):
            def forward(self, x):
                return F.avg_pool2d(x, 8)
        """
    )
    source.write_text(code)
    first = load_encoder_file(f"{source}:MyCamera")
    assert isinstance(first, ModuleEncoder) and first.output_shape((3, 64, 64)) == (3, 8, 8)
    assert _evaluate(toy, tmp_path, first).ran == 4
    source.write_text(code.replace("avg_pool2d(x, 8)", "avg_pool2d(x, 8)  # edited"))
    edited = load_encoder_file(f"{source}:MyCamera")
    assert edited.config_hash() != first.config_hash()
    assert _evaluate(toy, tmp_path, edited).ran == 2


def test_registered_encoders_keep_their_keys_and_subclasses_hash_their_source():
    blur = privbench.get_encoder("gaussian-blur", sigma_px=4)
    # The keys stored rows were written under: name + config (version 1 implied).
    assert blur.config_hash() == stable_hash(
        {"encoder": "gaussian-blur", "config": blur.config_dict()}
    )
    assert blur.weights_hash() is None and blur.is_registered()
    halver = Halver()
    assert not halver.is_registered() and halver.name == "Halver"
    assert halver.config_hash() == stable_hash(
        {"encoder": "Halver", "config": {}, "source": source_fingerprint(halver)}
    )
    assert halver.weights_hash() is None  # no tensors: nothing to hash


def test_an_encoder_instance_and_an_rgb_subset_of_the_benchmark(toy, tmp_path):
    report = _evaluate(toy, tmp_path, Halver(), compare=["pixelate"], label="half")
    assert set(report.results["encoder_label"]) == {"identity", "pixelate", "half"}


def test_bad_cameras_and_options_are_named_before_any_work(toy, tmp_path):
    with pytest.raises(ConfigError, match="must be a privbench Encoder or a torch nn.Module"):
        _evaluate(toy, tmp_path, lambda x: x)
    with pytest.raises(InputError, match=r"returned shape \(1, 12288\)"):
        _evaluate(toy, tmp_path, nn.Flatten())
    with pytest.raises(ConfigError, match="label 'identity' is already an encoder entry"):
        _evaluate(toy, tmp_path, BoxCamera(), label="identity")
    with pytest.raises(ConfigError, match="unknown option.*wokers"):
        _evaluate(toy, tmp_path, BoxCamera(), wokers=2)
    with pytest.raises(ConfigError, match="has no learnable parameters"):
        _evaluate(toy, tmp_path, BoxCamera(), designer="adversarial")
    assert not (tmp_path / "out" / "results.db").exists()
    with pytest.raises(ConfigError, match="defines no 'Nope'"):
        load_encoder_file(f"{__file__}:Nope")
    with pytest.raises(ConfigError, match="must be FILE.py:NAME"):
        load_encoder_file("camera.py")


def test_run_encoder_file_from_the_command_line(capsys, toy, tmp_path):
    import yaml

    spec = tmp_path / "toy.yaml"
    spec.write_text(yaml.safe_dump(toy.toy_spec()))
    camera = tmp_path / "cam.py"
    camera.write_text(
        "from torch import nn\n"
        "class Cam(nn.Module):\n"
        "    def forward(self, x):\n"
        "        return nn.functional.avg_pool2d(x, 4)\n"
    )
    args = ["run", "--spec", str(spec), "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as info:
        main([*args, "--encoder-file", f"{camera}:Cam", "--label", "my-cam"])
    output = capsys.readouterr().out
    assert info.value.code in (0, None), output
    assert "4 cells run" in output and "my-cam" in output
