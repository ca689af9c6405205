"""Optics primitives shared by the optical encoders (2PSC §2.1, eqs. 1–3).

- **Noll-indexed Zernike basis** (Noll, JOSA 1976): real cos/sin modes, ordered and normalized
  as Noll does (the mean of Z_j² over the unit disk is 1; zero outside the disk). Bases are
  cached per (grid, q) so a lens evaluates Σ α_j Z_j as one matrix product.
- **PSF** (eq. 1): the height map φ = Σ α_j Z_j (eq. 2) modulates the phase of a unit plane
  wave by 2π(n_λ − 1)φ/λ inside a circular aperture, on top of an ideal focusing lens of focal
  length f; the field is propagated over the sensor distance with the Fresnel transfer function
  H(f_x, f_y) = exp(−iπλz(f_x² + f_y²)) (Goodman, *Introduction to Fourier Optics*, eq. 4-21;
  the constant phase exp(ikz) drops out of the intensity) on a grid zero-padded 2× against
  wrap-around; the intensity is area-downsampled to the sensor pixels and normalized to unit
  sum per wavelength (colour channel).
- **Image formation** (eq. 3): Y_ℓ = S_ℓ(H_λ ⊛ X_ℓ) + N_ℓ — the convolution is
  :func:`privbench.nn.convolution.fft_convolve`, the noise the encoder's.
"""

from __future__ import annotations

import math
from functools import cache, lru_cache

import torch
import torch.nn.functional as F

from privbench.api.errors import ConfigError


# -- Zernike polynomials -------------------------------------------------------------------
@cache
def noll_to_nm(j: int) -> tuple[int, int]:
    """Radial order n and azimuthal frequency m of Noll index j ≥ 1 (m < 0: sine term).

    Within a radial order, |m| increases; each |m| > 0 takes two consecutive indices, the even
    one being the cosine term (m > 0) and the odd one the sine term (m < 0) — Noll's rule.
    """
    if j < 1:
        raise ConfigError(f"Noll indices start at 1; got {j}.")
    count = 0
    n = 0
    while True:
        for abs_m in range(n % 2, n + 1, 2):
            for _ in range(1 if abs_m == 0 else 2):
                count += 1
                if count == j:
                    return n, 0 if abs_m == 0 else (abs_m if j % 2 == 0 else -abs_m)
        n += 1


def radial_polynomial(n: int, m: int, rho: torch.Tensor) -> torch.Tensor:
    """R_n^|m|(ρ) = Σ_k (−1)^k (n−k)! / (k! ((n+|m|)/2−k)! ((n−|m|)/2−k)!) ρ^(n−2k)."""
    m = abs(m)
    result = torch.zeros_like(rho)
    for k in range((n - m) // 2 + 1):
        coefficient = (
            (-1) ** k
            * math.factorial(n - k)
            / (
                math.factorial(k)
                * math.factorial((n + m) // 2 - k)
                * math.factorial((n - m) // 2 - k)
            )
        )
        result = result + coefficient * rho ** (n - 2 * k)
    return result


def zernike(j: int, rho: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Noll-normalized Zernike Z_j at polar coordinates (zero outside the unit disk)."""
    n, m = noll_to_nm(j)
    radial = radial_polynomial(n, m, rho)
    if m == 0:
        value = math.sqrt(n + 1) * radial
    elif m > 0:
        value = math.sqrt(2 * (n + 1)) * radial * torch.cos(m * theta)
    else:
        value = math.sqrt(2 * (n + 1)) * radial * torch.sin(-m * theta)
    return torch.where(rho <= 1.0, value, torch.zeros_like(value))


def pupil_coordinates(samples: int, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """(ρ, θ) of a ``samples``×``samples`` grid of pixel centres spanning the unit disk's box."""
    axis = (torch.arange(samples, dtype=dtype) + 0.5) / samples * 2 - 1
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    return torch.sqrt(xx**2 + yy**2), torch.atan2(yy, xx)


@lru_cache(maxsize=16)
def _cached_basis(samples: int, q: int) -> torch.Tensor:
    rho, theta = pupil_coordinates(samples)
    return torch.stack([zernike(j, rho, theta) for j in range(1, q + 1)]).float()


def zernike_basis(samples: int, q: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The first ``q`` Noll Zernikes on a ``samples``² pupil grid, shape (q, samples,
    samples); cached."""
    if q < 1:
        raise ConfigError(f"The number of Zernike terms must be at least 1; got {q}.")
    return _cached_basis(int(samples), int(q)).to(device=device, dtype=dtype)


# -- PSF -------------------------------------------------------------------------------------
@lru_cache(maxsize=32)
def _geometry(
    aperture_samples: int,
    grid_samples: int,
    sample_pitch_m: float,
    wavelengths_m: tuple[float, ...],
    sensor_distance_m: float,
    focal_length_m: float,
    device: str,
    dtype: torch.dtype,
):
    """Everything of the PSF computation that does not depend on the height map (cached)."""
    complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    rho, _ = pupil_coordinates(aperture_samples, dtype=torch.float64)
    aperture = (rho <= 1.0).to(device=device, dtype=dtype)
    axis = (
        torch.arange(aperture_samples, dtype=torch.float64) - (aperture_samples - 1) / 2
    ) * sample_pitch_m
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    radius2 = xx**2 + yy**2
    wavelengths = torch.tensor(wavelengths_m, dtype=torch.float64).view(-1, 1, 1)
    # Ideal focusing lens: phase −k r² / (2f) (wavelength-independent focal length).
    lens_phase = (-(2 * math.pi / wavelengths) / (2 * focal_length_m) * radius2).to(
        device=device, dtype=dtype
    )
    padded = 2 * grid_samples
    frequencies = torch.fft.fftfreq(padded, d=sample_pitch_m, dtype=torch.float64)
    fy, fx = torch.meshgrid(frequencies, frequencies, indexing="ij")
    chirp = -math.pi * wavelengths * sensor_distance_m * (fx**2 + fy**2)
    transfer = torch.polar(torch.ones_like(chirp), chirp).to(device=device, dtype=complex_dtype)
    return aperture, lens_phase, transfer


def fresnel_psf(
    height_map_m: torch.Tensor,
    *,
    aperture_samples: int,
    grid_samples: int,
    sample_pitch_m: float,
    wavelengths_m: tuple[float, ...],
    refractive_indices: tuple[float, ...],
    sensor_distance_m: float,
    focal_length_m: float | None,
    samples_per_pixel: int,
    output_size: tuple[int, int],
    return_energy_fraction: bool = False,
    keep_light: float | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """PSF per wavelength on the sensor grid, shape (len(λ), H, W), unit sum each (2PSC eq. 1).

    The PSF is renormalized to unit sum inside its H×W window (the convolution kernel). Light
    that falls outside that window is lost to it: ``return_energy_fraction=True`` also returns,
    per wavelength, the share of the light through the aperture that the window holds (the
    propagation is unitary, so the total is the wave grid's sum), so that a caller can refuse a
    PSF whose renormalization would hide a large part of its light. ``keep_light`` (e.g. 0.99):
    the window grows beyond H×W, in steps of an eighth of the image on each side and up to
    1.75 × H×W (inside the padded wave grid), until it holds that share of the light; the PSF
    (the convolution kernel) is then larger than the image, its axis still at pixel
    ``(K_h // 2, K_w // 2)``.

    ``height_map_m``: (aperture_samples, aperture_samples) surface height inside the aperture's
    bounding box (zero outside the disk), sampled at ``sample_pitch_m``; it is placed on a
    ``grid_samples``² wave grid (the sensor's extent, zero-padded 2×) so that the optical axis
    is the centre of output pixel ``(H // 2, W // 2)``, the kernel centre of
    :func:`fft_convolve` (:func:`_aperture_placement`).
    All wavelengths are propagated in one batched FFT.
    """
    device = height_map_m.device
    focal = focal_length_m if focal_length_m is not None else sensor_distance_m
    aperture, lens_phase, transfer = _geometry(
        aperture_samples,
        grid_samples,
        float(sample_pitch_m),
        tuple(float(w) for w in wavelengths_m),
        float(sensor_distance_m),
        float(focal),
        str(device),
        height_map_m.dtype,
    )
    wave_numbers = torch.tensor(
        [2 * math.pi / w for w in wavelengths_m], device=device, dtype=height_map_m.dtype
    )
    delta_n = torch.tensor(
        [n - 1.0 for n in refractive_indices], device=device, dtype=height_map_m.dtype
    )
    phase = (wave_numbers * delta_n).view(-1, 1, 1) * height_map_m + lens_phase
    field_small = torch.polar(aperture.expand_as(phase), phase)
    padded = 2 * grid_samples
    start = (padded - grid_samples) // 2
    (top, shift_y), (left, shift_x) = (
        _aperture_placement(aperture_samples, grid_samples, samples_per_pixel, start, size)
        for size in output_size
    )
    field = F.pad(
        field_small,
        (left, padded - left - aperture_samples, top, padded - top - aperture_samples),
    )
    spectrum = torch.fft.fft2(field) * transfer
    if shift_y or shift_x:
        spectrum = spectrum * _subsample_shift(padded, shift_y, shift_x, spectrum.dtype, device)
    propagated = torch.fft.ifft2(spectrum)
    intensity = propagated.real**2 + propagated.imag**2
    # light per wave sample of the whole grid; a window's share counts its pixels × s² samples
    total = intensity.sum(dim=(-2, -1)) / samples_per_pixel**2
    # the sensor grid and whole pixels of the padded grid around it, on the same pixel lattice
    margin = start // samples_per_pixel
    first, last = (
        start - margin * samples_per_pixel,
        start + grid_samples + margin * samples_per_pixel,
    )
    intensity = intensity[:, first:last, first:last]
    sensor = (
        F.avg_pool2d(intensity.unsqueeze(0), samples_per_pixel).squeeze(0)
        if samples_per_pixel > 1
        else intensity
    )
    pixels = grid_samples // samples_per_pixel
    axis = tuple(margin + (pixels - size) // 2 + size // 2 for size in output_size)
    window = _light_keeping_window(sensor, axis, output_size, total, keep_light)
    psf = sensor[..., _centred(axis[0], window[0]), _centred(axis[1], window[1])]
    inside = psf.sum(dim=(-2, -1), keepdim=True)
    psf = psf / inside.clamp_min(1e-30)
    if not return_energy_fraction:
        return psf
    return psf, (inside.view(-1) / total.clamp_min(1e-30)).detach()


def _centred(axis: int, size: int) -> slice:
    """The ``size`` pixels whose index ``size // 2`` is ``axis``."""
    return slice(axis - size // 2, axis - size // 2 + size)


def _light_keeping_window(
    sensor: torch.Tensor,
    axis: tuple[int, int],
    size: tuple[int, int],
    total: torch.Tensor,
    keep_light: float | None,
) -> tuple[int, int]:
    """The PSF window: ``size``, grown (``keep_light``) in steps of an eighth of it on each side
    until every channel keeps ``keep_light`` of ``total``; at most 1.75 × ``size``, so that a
    guard band of the padded wave grid stays outside it: light that reaches the grid's edge
    wraps around (the FFT is periodic) and must count as lost, not as kept."""
    if keep_light is None:
        return size
    steps = [max(1, s // 8) for s in size]
    window = size
    for _ in range(64):
        inside = sensor[..., _centred(axis[0], window[0]), _centred(axis[1], window[1])]
        if float((inside.detach().sum(dim=(-2, -1)) / total.detach()).min()) >= keep_light:
            return window
        grown = tuple(w + 2 * step for w, step in zip(window, steps))
        fits = all(
            a - g // 2 >= 0 and a - g // 2 + g <= extent and 4 * g <= 7 * s
            for a, g, extent, s in zip(axis, grown, sensor.shape[-2:], size)
        )
        if not fits:
            return window
        window = grown
    return window


def _aperture_placement(
    aperture_samples: int, grid_samples: int, samples_per_pixel: int, start: int, size: int
) -> tuple[int, float]:
    """Where the aperture goes on the padded wave grid (along one axis) so that the optical axis
    falls on the centre of the output pixel ``size // 2``, the kernel centre of
    :func:`fft_convolve`: the integer offset of its first sample and the remaining sub-sample
    shift (0 unless the aperture's and a pixel's sample counts differ in parity).

    Pixel p of the sensor covers samples ``[p·s, (p + 1)·s)`` of the sensor grid, centre
    ``p·s + (s − 1)/2``; the output window starts at sensor pixel ``(N − size) // 2``; the
    aperture's centre is at ``offset + (A − 1)/2``. Without this, an even-sized sensor has its
    axis on a pixel corner and every lens measurement is shifted by half a pixel."""
    pixels = grid_samples // samples_per_pixel
    axis_pixel = (pixels - size) // 2 + size // 2
    axis_sample = start + axis_pixel * samples_per_pixel + (samples_per_pixel - 1) / 2
    first = axis_sample - (aperture_samples - 1) / 2
    offset = math.floor(first)
    return offset, first - offset


def _subsample_shift(
    samples: int, shift_y: float, shift_x: float, dtype: torch.dtype, device
) -> torch.Tensor:
    """Fourier shift theorem: multiplying a field's spectrum by this translates the field by
    (shift_y, shift_x) samples (trigonometric interpolation on the periodic grid)."""
    frequencies = torch.fft.fftfreq(samples, dtype=torch.float64)
    ramp = -2 * math.pi * (frequencies.view(-1, 1) * shift_y + frequencies.view(1, -1) * shift_x)
    return torch.polar(torch.ones_like(ramp), ramp).to(device=device, dtype=dtype)


def psf_width_px(psf: torch.Tensor) -> torch.Tensor:
    """RMS radius (pixels) of each PSF channel around its centroid: a robust width measure."""
    channels, height, width = psf.shape
    ys = torch.arange(height, dtype=psf.dtype, device=psf.device).view(1, -1, 1)
    xs = torch.arange(width, dtype=psf.dtype, device=psf.device).view(1, 1, -1)
    total = psf.sum(dim=(-2, -1), keepdim=True)
    cy = (psf * ys).sum(dim=(-2, -1), keepdim=True) / total
    cx = (psf * xs).sum(dim=(-2, -1), keepdim=True) / total
    second = (psf * ((ys - cy) ** 2 + (xs - cx) ** 2)).sum(dim=(-2, -1)) / total.view(-1)
    return second.sqrt()
