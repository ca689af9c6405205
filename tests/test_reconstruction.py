import torch

import privbench
from privbench.api.cache import ArtifactCache
from privbench.api.encoder import encode_batches
from privbench.api.evaluation import EvalInputs, RunContext
from privbench.nn.imaging import psnr, to_common_grid


def _inputs(data, encoder_name, **config):
    encoder = privbench.get_encoder(encoder_name, **config)
    return EvalInputs(
        data,
        lambda part, split: encode_batches(encoder, data.part(part)[split].images),
        encoder_name,
    )


def test_common_grid_rule():
    clean = torch.rand(2, 3, 64, 64)
    assert torch.equal(to_common_grid(clean, clean), clean)
    bank = clean.repeat(1, 4, 1, 1)  # four identical RGB images → their mean is the image
    assert torch.allclose(to_common_grid(clean, bank), clean, atol=1e-6)
    levels = (clean * 15).round()
    assert float(to_common_grid(clean, levels).max()) <= 1.0
    assert to_common_grid(clean, clean[:, :, ::8, ::8]).shape == clean.shape
    assert abs(float(psnr(clean, clean + 0.1).mean()) - 20.0) < 1e-3


def test_reconstruction_attack_scores_and_shares_clean_classifier(toy, tmp_path, monkeypatch):
    from privbench.attacks import reconstruction

    fits = []
    original = reconstruction.fit_new_classifier
    monkeypatch.setattr(
        reconstruction, "fit_new_classifier", lambda *a, **k: fits.append(1) or original(*a, **k)
    )
    data = toy.build_toy(per_class=8)
    attack = privbench.get_attack(
        "reconstruction",
        epochs=2,
        decoder_width=8,
        batch_size=8,
        training={"epochs": 3, "batch_size": 8},
    )
    cache = ArtifactCache(tmp_path / "cache")
    clean = attack.evaluate(
        _inputs(data, "identity"), RunContext(seed=0, cache=cache, workdir=tmp_path / "a")
    )
    blurred = attack.evaluate(
        _inputs(data, "pixelate", block_px=16),
        RunContext(seed=0, cache=cache, workdir=tmp_path / "b"),
    )
    assert len(fits) == 1  # the clean classifier was trained once and shared through the cache
    for result in (clean, blurred):
        assert set(result.metrics) == set(attack.metrics)
        assert (
            0 <= result.metrics["recon_face_id_top1"] <= 1
            and -1 <= result.metrics["recon_ssim"] <= 1
        )
        assert result.chance == 0.25
    assert clean.metrics["measurement_psnr_db"] > 100  # the clean camera's measurement is the scene
    assert blurred.metrics["measurement_psnr_db"] < 40
    assert clean.metrics["clean_face_id_top1"] == blurred.metrics["clean_face_id_top1"]
