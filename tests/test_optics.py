"""Optics primitives against independent references (poppy, scipy/conv2d, analytic optics)."""

import numpy as np
import pytest
import torch

from privbench.api.errors import ConfigError
from privbench.nn.convolution import (
    convolution_grid,
    direct_convolve,
    fast_fft_length,
    fft_convolve,
    kernel_spectrum,
)
from privbench.nn.optics import (
    fresnel_psf,
    noll_to_nm,
    psf_width_px,
    pupil_coordinates,
    zernike_basis,
)


def test_noll_indices_match_poppy():
    poppy_zernike = pytest.importorskip("poppy.zernike")
    for j in range(1, 67):
        n, m = noll_to_nm(j)
        assert (n, m) == tuple(poppy_zernike.noll_indices(j)), j


def test_zernike_basis_matches_poppy_to_1e6():
    poppy_zernike = pytest.importorskip("poppy.zernike")
    samples, q = 96, 36
    rho, theta = pupil_coordinates(samples)
    ours = zernike_basis(samples, q, dtype=torch.float64).numpy()
    reference = np.array(
        poppy_zernike.zernike_basis(nterms=q, rho=rho.numpy(), theta=theta.numpy(), outside=0.0)
    )
    assert np.abs(ours - reference).max() < 1e-6


def test_zernike_basis_is_orthonormal_over_the_disk():
    samples, q = 256, 21
    basis = zernike_basis(samples, q, dtype=torch.float64)
    rho, _ = pupil_coordinates(samples)
    inside = rho <= 1
    flat = basis[:, inside]
    gram = flat @ flat.T / inside.sum()  # mean over the unit disk of Z_i Z_j
    assert torch.allclose(gram, torch.eye(q, dtype=torch.float64), atol=2e-2)
    assert float(basis[:, ~inside].abs().max()) == 0.0  # zero outside the disk


def test_basis_is_cached():
    assert zernike_basis(64, 10).data_ptr() == zernike_basis(64, 10).data_ptr() or torch.equal(
        zernike_basis(64, 10), zernike_basis(64, 10)
    )
    with pytest.raises(ConfigError):
        zernike_basis(64, 0)


@pytest.mark.parametrize("padding", ["replicate", "zero"])
@pytest.mark.parametrize("kernel_size", [(5, 5), (11, 7), (63, 63), (64, 64)])
def test_fft_convolution_equals_direct_convolution(padding, kernel_size):
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 64, 70, generator=generator, dtype=torch.float64)
    kernel = torch.rand(3, *kernel_size, generator=generator, dtype=torch.float64)
    ours = fft_convolve(images, kernel, padding)
    reference = direct_convolve(images, kernel, padding)
    assert ours.shape == images.shape
    assert torch.allclose(ours, reference, atol=1e-9)


@pytest.mark.parametrize("padding, mode", [("replicate", "nearest"), ("zero", "constant")])
def test_fft_convolution_at_slow_lengths_equals_scipy(padding, mode):
    # 37 + 37 − 1 = 73 and 53 + 53 − 1 = 105 are padded up to the fast lengths 75 and 108: the
    # result must still be the linear convolution scipy computes directly (odd kernels, whose
    # centre is unambiguous).
    ndimage = pytest.importorskip("scipy.ndimage")
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(1, 2, 37, 53, generator=generator, dtype=torch.float64)
    kernel = torch.rand(2, 37, 53, generator=generator, dtype=torch.float64)
    ours = fft_convolve(images, kernel, padding)
    for channel in range(2):
        reference = ndimage.convolve(
            images[0, channel].numpy(), kernel[channel].numpy(), mode=mode, cval=0.0
        )
        np.testing.assert_allclose(ours[0, channel].numpy(), reference, atol=1e-10)


@pytest.mark.parametrize("kernel_size", [(4, 6), (8, 8), (5, 4), (64, 64)])
@pytest.mark.parametrize("padding, mode", [("replicate", "nearest"), ("zero", "constant")])
def test_even_kernels_are_centred_like_scipy(kernel_size, padding, mode):
    # scipy.ndimage.convolve puts an even kernel's centre at (kh // 2, kw // 2), the convention
    # fft_convolve documents and the PSF's optical axis uses; off by one, the measurement shifts.
    ndimage = pytest.importorskip("scipy.ndimage")
    generator = torch.Generator().manual_seed(3)
    images = torch.rand(1, 1, 30, 33, generator=generator, dtype=torch.float64)
    kernel = torch.rand(1, *kernel_size, generator=generator, dtype=torch.float64)
    reference = ndimage.convolve(images[0, 0].numpy(), kernel[0].numpy(), mode=mode, cval=0.0)
    for ours in (fft_convolve(images, kernel, padding), direct_convolve(images, kernel, padding)):
        np.testing.assert_allclose(ours[0, 0].numpy(), reference, atol=1e-10)


def test_a_centred_delta_kernel_of_even_size_is_the_identity():
    images = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    delta = torch.zeros(3, 16, 16, dtype=torch.float64)
    delta[:, 8, 8] = 1.0
    assert torch.allclose(fft_convolve(images, delta), images, atol=1e-12)


def test_fast_fft_lengths_are_the_smallest_5_smooth_lengths():
    def smooth(n: int) -> bool:
        for p in (2, 3, 5):
            while n % p == 0:
                n //= p
        return n == 1

    for n in range(1, 700):
        expected = next(m for m in range(n, 2 * n + 1) if smooth(m))
        assert fast_fft_length(n) == expected, n
    assert fast_fft_length(511) == 512 and fast_fft_length(127) == 128
    assert convolution_grid((256, 256), (256, 256)) == (512, 512)
    with pytest.raises(ConfigError, match="at least 1"):
        fast_fft_length(0)


def test_a_kept_kernel_spectrum_gives_the_same_convolution():
    generator = torch.Generator().manual_seed(2)
    images = torch.rand(2, 3, 40, 40, generator=generator)
    kernel = torch.rand(3, 40, 40, generator=generator)
    spectrum = kernel_spectrum(kernel, convolution_grid((40, 40), (40, 40)))
    assert torch.equal(
        fft_convolve(images, kernel, spectrum=spectrum), fft_convolve(images, kernel)
    )
    wrong = kernel_spectrum(kernel, (64, 64))
    with pytest.raises(ConfigError, match="kernel_spectrum"):
        fft_convolve(images, kernel, spectrum=wrong)


def test_fft_convolution_is_linear_not_circular():
    image = torch.zeros(1, 1, 64, 64, dtype=torch.float64)
    image[..., 0, 0] = 1.0  # a point at the corner must not wrap to the other corners
    kernel = torch.ones(9, 9, dtype=torch.float64) / 81
    out = fft_convolve(image, kernel, padding="zero")
    assert float(out[..., 60:, 60:].abs().max()) < 1e-12
    assert float(out[..., :5, :5].sum()) == pytest.approx(25 / 81)


LENS = dict(
    sample_pitch_m=1e-6,
    wavelengths_m=(550e-9,),
    refractive_indices=(1.5,),
    focal_length_m=None,
    samples_per_pixel=1,
)


def _airy_fwhm(psf_row: np.ndarray) -> float:
    """FWHM (samples) of a centred peak, by linear interpolation of the half-maximum crossings."""
    peak = int(np.argmax(psf_row))
    half = psf_row[peak] / 2
    right = peak + np.argmax(psf_row[peak:] < half)
    left = peak - np.argmax(psf_row[peak::-1] < half)
    right_crossing = right - 1 + (psf_row[right - 1] - half) / (psf_row[right - 1] - psf_row[right])
    left_crossing = left + 1 - (psf_row[left + 1] - half) / (psf_row[left + 1] - psf_row[left])
    return right_crossing - left_crossing


def test_focused_spot_is_diffraction_limited():
    """At zero defocus the spot's FWHM is the Airy value 1.029·λz/D (tolerance 10 %)."""
    aperture = 100  # samples of 1 µm → D = 100 µm; z = 2 mm → λz/D = 11 µm = 11 samples
    height = torch.zeros(aperture, aperture)
    psf = fresnel_psf(
        height,
        aperture_samples=aperture,
        grid_samples=256,
        sensor_distance_m=2e-3,
        output_size=(256, 256),
        **LENS,
    )
    row = psf[0, 128].double().numpy()
    expected = 1.029 * 550e-9 * 2e-3 / 100e-6 / 1e-6
    assert _airy_fwhm(row) == pytest.approx(expected, rel=0.10)
    assert float(psf.sum()) == pytest.approx(1.0, abs=1e-5)


def test_defocus_widens_the_psf_monotonically():
    basis = zernike_basis(100, 4)
    widths = []
    for defocus_um in (0.0, 0.5, 1.0, 2.0, 4.0):
        for sign in (1, -1):
            height = sign * defocus_um * 1e-6 * basis[3]
            psf = fresnel_psf(
                height,
                aperture_samples=100,
                grid_samples=256,
                sensor_distance_m=1e-3,
                output_size=(256, 256),
                **LENS,
            )
            widths.append((defocus_um, float(psf_width_px(psf)[0])))
    by_amount = {}
    for amount, width in widths:
        by_amount.setdefault(amount, []).append(width)
    means = [np.mean(by_amount[a]) for a in sorted(by_amount)]
    assert all(b > a for a, b in zip(means, means[1:]))
    # ± the same defocus blur about equally (the geometric blur depends on |defocus|).
    assert by_amount[2.0][0] == pytest.approx(by_amount[2.0][1], rel=0.15)


def test_gradcheck_in_float64():
    """torch.autograd.gradcheck of image formation (eqs. 1-3) w.r.t. the Zernike coefficients."""
    basis = zernike_basis(12, 5, dtype=torch.float64)
    images = torch.rand(1, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def formation(coefficients):
        height = torch.tensordot(coefficients, basis, dims=1) * 1e-6
        psf = fresnel_psf(
            height,
            aperture_samples=12,
            grid_samples=24,
            sample_pitch_m=1e-6,
            wavelengths_m=(550e-9,),
            refractive_indices=(1.5,),
            sensor_distance_m=2e-4,
            focal_length_m=None,
            samples_per_pixel=4,
            output_size=(6, 6),
        )
        return fft_convolve(images, psf, "replicate")

    coefficients = torch.tensor(
        [0.0, 0.1, -0.1, 0.2, 0.05], dtype=torch.float64, requires_grad=True
    )
    assert formation(coefficients).dtype == torch.float64
    assert torch.autograd.gradcheck(formation, (coefficients,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("pads", [(1, 2, 3, 0), (9, 12, 0, 20), (40, 1, 1, 40)])
def test_replicate_pad_is_numpy_edge_padding_also_beyond_the_image_size(pads):
    from privbench.nn.convolution import replicate_pad

    top, bottom, left, right = pads
    images = torch.rand(2, 3, 8, 10, dtype=torch.float64)
    expected = np.pad(images.numpy(), ((0, 0), (0, 0), (top, bottom), (left, right)), mode="edge")
    assert np.array_equal(replicate_pad(images, top, bottom, left, right).numpy(), expected)


def _airy_pixel_fraction(wavelength_m: float, diameter_m: float, distance_m: float, pixel_m: float):
    """Share of an in-focus Airy pattern's light in the square pixel centred on its axis, by
    direct numerical integration of I(r) = (2 J1(v)/v)², v = π D r / (λ z), whose integral over
    the plane is 4π/k² (k = π D / (λ z)): an independent reference for the Fresnel PSF."""
    integrate = pytest.importorskip("scipy.integrate")
    special = pytest.importorskip("scipy.special")
    k = np.pi * diameter_m / (wavelength_m * distance_m)

    def intensity(y, x):
        v = k * np.hypot(x, y) + 1e-30
        return (2 * special.j1(v) / v) ** 2

    half = pixel_m / 2
    inside, _ = integrate.dblquad(intensity, -half, half, -half, half, epsabs=1e-14)
    return inside / (4 * np.pi / k**2)


@pytest.mark.parametrize("size", [64, 63])
def test_the_in_focus_lens_puts_the_airy_share_of_a_point_in_one_pixel(size):
    """The diffraction-limited f/5 lens (D = 200 µm, z = 1 mm, 4 µm pixels): a point's light in
    its own pixel is the Airy integral's 67-81 % (R, G, B), not a 2×2 box's ~22 % as with the
    optical axis on a pixel corner. 8 wave samples per pixel: within 1.5 % (4 samples: 3 %)."""
    from privbench.encoders.zernike_lens import ZernikeLens

    lens = ZernikeLens(noise_std=0.0, wave_samples_per_pixel=8)
    point = torch.zeros(1, 3, size, size)
    point[..., size // 2, size // 2] = 1.0
    with torch.no_grad():
        measured = lens.measure(point)[0]
    assert divmod(int(measured[1].argmax()), size) == (size // 2, size // 2)
    for channel, wavelength_nm in enumerate(lens.config.wavelengths_nm):
        expected = _airy_pixel_fraction(wavelength_nm * 1e-9, 200e-6, 1e-3, 4e-6)
        brightest = float(measured[channel, size // 2, size // 2])
        assert brightest == pytest.approx(expected, rel=0.015), wavelength_nm


def test_the_psf_windows_share_of_light_lies_between_the_airy_encircled_energies():
    """In focus, the share of the light inside the 64×64-px window (half-width a = 128 µm) lies
    between Rayleigh's encircled energy 1 − J0(v)² − J1(v)² of the inscribed circle (r = a) and
    of the circumscribed one (r = a√2), v = π D r / (λ z): an analytic reference."""
    special = pytest.importorskip("scipy.special")
    from privbench.encoders.zernike_lens import ZernikeLens

    lens = ZernikeLens(noise_std=0.0).eval()
    with torch.no_grad():
        lens.psf(64, 64)
    half_width = 32 * 4e-6
    for share, wavelength_nm in zip(lens.psf_energy_fraction, lens.config.wavelengths_nm):
        k = np.pi * 200e-6 / (wavelength_nm * 1e-9 * 1e-3)

        def encircled(r, k=k):
            return 1 - special.j0(k * r) ** 2 - special.j1(k * r) ** 2

        assert encircled(half_width) < float(share) < encircled(half_width * np.sqrt(2))


def test_the_psf_window_grows_until_it_keeps_the_light_and_refuses_beyond_the_simulation():
    from privbench.encoders.defocus import DefocusLens

    lens = DefocusLens(defocus_um=5.0, noise_std=0.0).eval()
    with torch.no_grad():
        psf = lens.psf(64, 64)
        # RMS radius ~26 px: a 64-px window would keep only ~73 % of the light (the issue's
        # 27-53 % lost); the window grows to 96 px and keeps ≥ 99 %
        assert tuple(psf.shape) == (3, 96, 96)
        assert float(lens.psf_energy_fraction.min()) >= 0.99
        centre = psf[:, 16:80, 16:80].sum(dim=(-2, -1))
        assert torch.all((centre > 0.6) & (centre < 0.8))
        # a kernel larger than the image: the measurement keeps the image size and unit gain
        flat = torch.full((1, 3, 64, 64), 0.5)
        assert torch.allclose(lens(flat), flat, atol=1e-5)
        too_much = DefocusLens(defocus_um=12.0, noise_std=0.0)
        too_much.train().psf(64, 64)  # a designer may pass through such a state
        with pytest.raises(ConfigError, match=r"keeps only 7\d\.\d %.*1.75 × the image"):
            too_much.eval().psf(64, 64)  # also when the PSF comes from the cache
        with pytest.raises(ConfigError, match="smaller blur"):
            too_much.eval()(torch.rand(1, 3, 64, 64))
