"""Fitted encoders as files (JSON + safetensors) and camera cards (issue 17)."""

import json

import pytest
import torch

import privbench
from privbench.api.encoder_files import load_encoder, save_encoder
from privbench.api.errors import ConfigError
from privbench.cli import main


def _perturbed_canopic():
    encoder = privbench.get_encoder("canopic-conv1-mp-q")
    with torch.no_grad():
        for parameter in encoder.parameters():
            parameter.add_(torch.rand_like(parameter) * 0.01)
    return encoder.eval()


def test_an_exported_encoder_loads_back_identical(tmp_path):
    encoder = _perturbed_canopic()
    history = [{"cycle": 1, "adversary_val_top1": 0.5}, {"cycle": 2, "adversary_val_top1": 0.3}]
    path = save_encoder(encoder, tmp_path, history=history)
    assert (tmp_path / "canopic-conv1-mp-q.safetensors").is_file()
    loaded = load_encoder(path)
    assert (
        loaded.weights_hash()
        == encoder.weights_hash()
        != privbench.get_encoder("canopic-conv1-mp-q").weights_hash()
    )
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(images), encoder(images))
    assert json.loads(path.read_text())["design_history"] == history


def test_damaged_or_foreign_encoder_files_are_refused(tmp_path):
    path = save_encoder(_perturbed_canopic(), tmp_path)
    weights = tmp_path / "canopic-conv1-mp-q.safetensors"
    weights.write_bytes(weights.read_bytes()[:-2] + b"\0\0")
    with pytest.raises(ConfigError, match="SHA-256"):
        load_encoder(path)
    record = json.loads(path.read_text())
    record["version"] = "0"
    path.write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="version 0"):
        load_encoder(path)

    class Mine(privbench.Encoder):
        def measure(self, images):
            return images

    with pytest.raises(ConfigError, match="not registered"):
        save_encoder(Mine(), tmp_path)


def test_export_load_and_card_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "encoders"
    for args in (
        ["encoder", "export", "gaussian-blur", "--set", "sigma_px=3", "--out", str(out)],
        ["encoder", "load", str(out / "gaussian-blur.json")],
        ["card", "zernike-lens", "--out", str(tmp_path / "card")],
    ):
        with pytest.raises(SystemExit) as info:
            main(args)
        assert info.value.code in (0, None), capsys.readouterr()
    assert "gaussian-blur: config hash" in capsys.readouterr().out
    card = (tmp_path / "card" / "card.md").read_text()
    assert "# Camera card: zernike-lens" in card and "| f_number |" in card
    for picture in ("camera.png", "samples.png"):
        assert (tmp_path / "card" / picture).stat().st_size > 1000


def test_a_card_shows_the_design_history(tmp_path):
    from privbench.report.card import write_card

    history = [{"cycle": c, "hardness": 2.0**c, "utility_val_accuracy": 0.9} for c in (1, 2, 3)]
    path = write_card(_perturbed_canopic(), tmp_path, label="mine α=1", history=history)
    text = path.read_text()
    assert "## Design" in text and "| 3 | 8 | 0.9 |" in text
    assert (tmp_path / "design.png").is_file()
