import itertools

import pytest
import torch

import privbench
from privbench.api.errors import ConfigError
from privbench.nn.optics import psf_width_px

TABLE_1 = [
    "canopic-conv1-mp-q",
    "canopic-conv4-mp-q",
    "canopic-conv1",
    "canopic-mp",
    "canopic-q",
    "canopic-conv1-mp",
    "canopic-conv1-q",
    "canopic-mp-q",
]


def test_all_paper_encoders_registered():
    assert set(TABLE_1 + ["zernike-lens", "defocus"]) <= set(privbench.list_encoders())


# -- lens ------------------------------------------------------------------------------------
def test_focused_lens_psf_is_compact_and_normalized():
    lens = privbench.get_encoder("zernike-lens")
    with torch.no_grad():
        psf = lens.psf(64, 64)
    assert psf.shape == (3, 64, 64)
    assert torch.allclose(psf.sum(dim=(-2, -1)), torch.ones(3), atol=1e-5)
    assert float(psf[:, 29:36, 29:36].sum(dim=(-2, -1)).min()) > 0.7  # most energy within ±3 px


def test_lens_is_learnable_with_frozen_piston_tip_tilt():
    lens = privbench.get_encoder(
        "zernike-lens", num_zernike=10, init_coefficients_um=[0, 0, 0, 0.3]
    )
    assert lens.learnable and float(lens.coefficients_um.detach()[3]) == pytest.approx(0.3)
    lens(torch.rand(1, 3, 64, 64)).square().mean().backward()
    grad = lens.coefficients_um.grad
    assert torch.all(grad[:3] == 0) and float(grad[3:].abs().sum()) > 0


def test_psf_once_per_forward_and_reused_while_parameters_unchanged(monkeypatch):
    import privbench.encoders.zernike_lens as module

    calls = []
    original = module.fresnel_psf
    monkeypatch.setattr(module, "fresnel_psf", lambda *a, **k: calls.append(1) or original(*a, **k))
    lens = privbench.get_encoder("zernike-lens").eval()
    images = torch.rand(8, 3, 64, 64)
    lens(images)  # with grad: one PSF for the whole batch
    assert len(calls) == 1
    with torch.no_grad():
        lens(images)
        lens(images)
    assert len(calls) == 2  # computed once in no-grad mode, then reused
    with torch.no_grad():
        lens.coefficients_um[5] += 0.1  # a parameter update invalidates it
        lens(images)
    assert len(calls) == 3


def test_lens_measurement_is_blur_plus_fresh_noise_from_the_global_stream():
    quiet = privbench.get_encoder("zernike-lens", noise_std=0.0).eval()
    noisy = privbench.get_encoder("zernike-lens", noise_std=0.05).eval()
    assert noisy.has_sensor_noise() and not quiet.has_sensor_noise()
    assert not noisy.caches_measurements(1, 10**12) and quiet.caches_measurements(1, 1)
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.manual_seed(7)
        difference = noisy(images) - quiet(images)
        again = noisy(images) - quiet(images)
        torch.manual_seed(7)
        replayed = noisy(images) - quiet(images)
    assert float(difference.std()) == pytest.approx(0.05, rel=0.1)
    assert not torch.equal(difference, again)  # a fresh draw for every batch ...
    assert torch.equal(difference, replayed)  # ... from torch's (the cell's) seeded stream
    expected = 0.05 * torch.randn(images.shape, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(difference, expected, atol=1e-6)


def test_lens_diagnostics_and_bad_config():
    lens = privbench.get_encoder("zernike-lens")
    diagnostics = lens.diagnostics((3, 64, 64))
    assert any("psf" in k for k in diagnostics) and any("height" in k for k in diagnostics)
    with pytest.raises(ConfigError, match="aperture_diameter_m"):
        privbench.get_encoder("zernike-lens", aperture_diameter_m=1e-3)
    with pytest.raises(ConfigError, match="init_coefficients_um"):
        privbench.get_encoder("zernike-lens", num_zernike=4, init_coefficients_um=[0, 0, 0, 0, 1])
    with pytest.raises(ConfigError, match="sensor_distance_m"):
        privbench.get_encoder("zernike-lens", sensor_distance_m=-1)


def test_defocus_blur_grows_with_defocus():
    widths = []
    for amount in (0.0, 0.5, 1.0, 2.0):
        with torch.no_grad():
            widths.append(
                float(
                    psf_width_px(
                        privbench.get_encoder("defocus", defocus_um=amount).psf(64, 64)
                    ).mean()
                )
            )
    assert all(b > a for a, b in itertools.pairwise(widths))
    assert not privbench.get_encoder("defocus").learnable


# -- CAnOPIC ----------------------------------------------------------------------------------
def test_canopic_initial_kernels():
    one = privbench.get_encoder("canopic-conv1")
    kernel = one.effective_kernels()
    assert kernel.shape == (1, 63, 63) and float(kernel.sum()) == pytest.approx(1.0, abs=1e-5)
    profile = kernel[0, 31]
    sigma = float(((torch.arange(63) - 31.0) ** 2 * profile / profile.sum()).sum().sqrt())
    assert sigma == pytest.approx(8.0, rel=0.02)
    four = privbench.get_encoder("canopic-conv4-mp-q").effective_kernels()
    assert four.shape == (4, 11, 11)
    assert (
        float(four[0, :6].sum()) == pytest.approx(1.0) and float(four[0, 6:].sum()) == 0
    )  # upper half
    assert (
        float(four[3, :, 5:].sum()) == pytest.approx(1.0) and float(four[3, :, :5].sum()) == 0
    )  # right half


def test_canopic_conv_replicate_padding_and_channels():
    constant = torch.full((1, 3, 64, 64), 0.4)
    assert torch.allclose(privbench.get_encoder("canopic-conv1")(constant), constant, atol=1e-5)
    out = privbench.get_encoder("canopic-conv4-mp-q").eval()(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 12, 8, 8)


def test_canopic_maxpool_is_8x8_max():
    images = torch.rand(1, 3, 64, 64)
    out = privbench.get_encoder("canopic-mp")(images)
    assert torch.equal(out[0, :, 2, 3], images[0, :, 16:24, 24:32].amax(dim=(-2, -1)))


def test_quantizer_hard_in_eval_soft_in_training():
    encoder = privbench.get_encoder("canopic-q")
    images = torch.rand(1, 3, 64, 64)
    expected = (images * 15 > torch.arange(15).view(-1, 1, 1, 1, 1) + 0.5).sum(0).float()
    assert torch.equal(encoder.eval()(images), expected)
    encoder.train().set_hardness(1.0)
    soft = encoder(images)
    encoder.set_hardness(200.0)
    harder = encoder(images)
    assert float((harder - expected).abs().mean()) < float((soft - expected).abs().mean())
    harder.sum().backward()
    assert encoder.thresholds.grad is not None and float(encoder.thresholds.grad.abs().sum()) > 0


def test_projection_keeps_canopic_realizable():
    encoder = privbench.get_encoder("canopic-conv1-mp-q")
    with torch.no_grad():
        encoder.kernels.sub_(torch.rand_like(encoder.kernels) * 5)
        encoder.thresholds.copy_(torch.tensor([20.0] + [float(i) for i in range(14)]))
    encoder.project_()
    assert float(encoder.kernels.min()) >= 0
    assert float(encoder.effective_kernels().sum()) == pytest.approx(1.0, abs=1e-4)
    assert (
        torch.all(encoder.thresholds[1:] >= encoder.thresholds[:-1])
        and float(encoder.thresholds.max()) <= 15
    )


def test_canopic_stages_fixed_by_name():
    with pytest.raises(ConfigError, match="fixes its stages"):
        privbench.get_encoder("canopic-mp", quantize=True)
    free = privbench.get_encoder("canopic-conv1", realizable=False)
    assert free.config.realizable is False
