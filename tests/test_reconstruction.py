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
    assert torch.allclose(to_common_grid(clean, levels, (0.0, 15.0)), levels / 15.0)
    assert to_common_grid(clean, clean[:, :, ::8, ::8]).shape == clean.shape
    assert abs(float(psnr(clean, clean + 0.1).mean()) - 20.0) < 1e-3


def test_a_measurements_grid_mapping_does_not_depend_on_its_batch():
    # CAnOPIC's quantized levels 0 … 15: the dark image's levels must map the same way alone and
    # beside a bright image (dividing by the batch's maximum made them depend on each other).
    encoder = privbench.get_encoder("canopic-conv1-mp-q").eval()
    assert encoder.measurement_range() == (0.0, 15.0)
    dark = torch.full((1, 3, 64, 64), 0.2)
    bright = torch.ones(1, 3, 64, 64)
    with torch.no_grad():
        alone = encoder(dark)
        together = encoder(torch.cat([dark, bright]))
    value_range = encoder.measurement_range()
    on_grid_alone = to_common_grid(dark, alone, value_range)
    on_grid_together = to_common_grid(torch.cat([dark, bright]), together, value_range)[:1]
    assert torch.equal(on_grid_alone, on_grid_together)
    # hand-computed: 0.2 · 15 = 3 levels crossed (thresholds 0.5, 1.5, 2.5) → 3 / 15 = 0.2
    assert torch.allclose(on_grid_alone, torch.full_like(dark, 0.2))
    assert privbench.get_encoder("gaussian-blur").measurement_range() == (0.0, 1.0)


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
