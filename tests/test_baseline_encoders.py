import numpy as np
import pytest
import torch
from scipy import ndimage

import privbench
from privbench.api.errors import InputError


@pytest.mark.parametrize("name", privbench.list_encoders())
@pytest.mark.parametrize("size", [(64, 64), (97, 80), (128, 128)])
def test_any_size_from_64_and_declared_output_shape(name, size):
    encoder = privbench.get_encoder(name).eval()
    images = torch.rand(2, 3, *size)
    with torch.no_grad():
        out = encoder(images)
    assert tuple(out.shape[1:]) == tuple(encoder.output_shape((3, *size)))
    assert out.shape[0] == 2 and torch.isfinite(out).all()


@pytest.mark.parametrize("name", privbench.list_encoders())
def test_deterministic(name):
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.manual_seed(0)
        first = privbench.get_encoder(name).eval()(images)
        torch.manual_seed(0)
        second = privbench.get_encoder(name).eval()(images)
    assert torch.equal(first, second)


def test_identity_is_exact():
    images = torch.rand(1, 3, 64, 64)
    assert torch.equal(privbench.get_encoder("identity")(images), images)


@pytest.mark.parametrize("sigma", [1.0, 2.5, 8.0])
def test_gaussian_blur_matches_scipy(sigma):
    images = torch.rand(1, 3, 64, 72, dtype=torch.float64)
    out = privbench.get_encoder("gaussian-blur", sigma_px=sigma)(images.float()).double()
    # scipy's gaussian_filter with mode="nearest" is replicate padding; truncate=3: radius ceil(3σ)
    reference = np.stack(
        [
            ndimage.gaussian_filter(c, sigma, mode="nearest", truncate=np.ceil(3 * sigma) / sigma)
            for c in images[0].numpy()
        ]
    )
    assert np.abs(out[0].numpy() - reference).max() < 1e-5


def test_gaussian_blur_larger_than_image_uses_replicate_padding():
    images = torch.full((1, 3, 64, 64), 0.25)
    out = privbench.get_encoder("gaussian-blur", sigma_px=40)(images)
    assert torch.allclose(
        out, images, atol=1e-6
    )  # constant image stays constant (kernel sums to 1)


def test_pixelate_is_block_mean():
    images = torch.rand(1, 3, 64, 64)
    out = privbench.get_encoder("pixelate", block_px=8)(images)
    block = images[0, :, 8:16, 16:24].mean(dim=(1, 2))
    assert torch.allclose(out[0, :, 8:16, 16:24], block.view(3, 1, 1).expand(3, 8, 8), atol=1e-6)
    grid = privbench.get_encoder("pixelate", block_px=8, keep_size=False)(images)
    assert grid.shape == (1, 3, 8, 8) and torch.allclose(grid[0, :, 1, 2], block, atol=1e-6)


def test_pixelate_partial_edge_blocks_average_real_pixels():
    images = torch.rand(1, 3, 70, 70)
    out = privbench.get_encoder("pixelate", block_px=8)(images)
    edge = images[0, :, 64:70, 64:70].mean(dim=(1, 2))
    assert torch.allclose(out[0, :, 66, 66], edge, atol=1e-6)


def test_low_res_area_integration():
    images = torch.rand(1, 3, 64, 64)
    out = privbench.get_encoder("low-res", size_px=16)(images)
    assert out.shape == (1, 3, 16, 16)
    assert torch.allclose(out[0, :, 0, 0], images[0, :, :4, :4].mean(dim=(1, 2)), atol=1e-6)
    up = privbench.get_encoder("low-res", upsample=True)(images)
    assert up.shape == images.shape


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (torch.rand(3, 64, 64), "(B, 3, H, W)"),
        (torch.rand(1, 1, 64, 64), "(B, 3, H, W)"),
        (torch.rand(1, 3, 32, 64), "at least 64x64"),
        (torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.uint8), "floating-point"),
        (torch.rand(1, 3, 64, 64) * 255, "[0, 1]"),
        (np.zeros((1, 3, 64, 64)), "torch.Tensor"),
    ],
)
def test_bad_images_get_clear_errors(bad, fragment):
    with pytest.raises(InputError) as info:
        privbench.get_encoder("pixelate")(bad)
    assert fragment in str(info.value)
