"""Linear 'same' convolution by FFT (2PSC eq. 3's H ⊛ X, CAnOPIC's optical convolution).

The image is padded (zero or replicate) by the kernel's half-size, transformed on fast FFT
lengths (products of 2, 3 and 5) and cropped to the part no circular wrap-around reaches, so the
result is the linear convolution; a fixed kernel's spectrum can be kept and passed back in. The
kernel's centre is (kh // 2, kw // 2), scipy.ndimage's convention and the PSF's optical axis.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from privbench.api.errors import ConfigError


def fast_fft_length(n: int) -> int:
    """The smallest length ≥ ``n`` whose only prime factors are 2, 3 and 5: pocketfft's fast
    lengths. A padded 256-pixel image with a 256-pixel kernel is 511 = 7 · 73 samples, a slow
    length (measured: 2.2× the time of 512); zero-padding to the next fast length keeps the
    convolution exact (see :func:`fft_convolve`)."""
    if n < 1:
        raise ConfigError(f"an FFT length must be at least 1; got {n}.")
    best = None
    power5 = 1
    while power5 < 2 * n:
        power35 = power5
        while power35 < 2 * n:
            length = power35
            while length < n:
                length *= 2
            best = length if best is None else min(best, length)
            power35 *= 3
        power5 *= 5
    return best


def convolution_grid(image_size: tuple[int, int], kernel_size: tuple[int, int]) -> tuple[int, int]:
    """The FFT grid :func:`fft_convolve` uses: the padded size rounded up to fast lengths."""
    return tuple(  # type: ignore[return-value]
        fast_fft_length(image + kernel - 1) for image, kernel in zip(image_size, kernel_size)
    )


def kernel_spectrum(kernel: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """The kernel's ``rfft2`` on ``grid`` (what :func:`fft_convolve` multiplies by): computed once
    and passed back in while the kernel is unchanged (a fixed lens's PSF)."""
    if kernel.dim() == 2:
        kernel = kernel.unsqueeze(0)
    return torch.fft.rfft2(kernel, s=grid)


def _same_padding(kh: int, kw: int) -> tuple[int, int, int, int]:
    """Padding (top, bottom, left, right) of a 'same' convolution whose kernel centre is
    ``(kh // 2, kw // 2)``, the convention of ``scipy.ndimage.convolve`` and of a PSF whose
    optical axis is the pixel ``(H // 2, W // 2)``.

    Output pixel i sums ``kernel[k] · padded[i + kh − 1 − k]``, so the kernel sample k = kh // 2
    lands on the input pixel i when ``top = kh − 1 − kh // 2``: for an even kernel the larger
    pad goes at the end (bottom/right), for an odd one both are equal."""
    return kh - 1 - kh // 2, kh // 2, kw - 1 - kw // 2, kw // 2


def fft_convolve(
    images: torch.Tensor,
    kernel: torch.Tensor,
    padding: str = "replicate",
    spectrum: torch.Tensor | None = None,
) -> torch.Tensor:
    """Linear 'same' convolution of (B, C, H, W) images with a (C, kh, kw) or (kh, kw) kernel.

    The image is padded (``replicate`` or ``zero``) by the kernel's half-size, then zero-padded
    at the end to fast FFT lengths (:func:`convolution_grid`); only the part no circular
    wrap-around can reach is kept, so the result is the linear convolution, not a circular one.
    ``spectrum``: the kernel's :func:`kernel_spectrum` on that grid, when the caller keeps it.
    The kernel's centre is (kh // 2, kw // 2). Equals ``F.conv2d`` with the flipped kernel.
    """
    if padding not in ("replicate", "zero"):
        raise ConfigError(f"padding must be 'replicate' or 'zero'; got {padding!r}.")
    if kernel.dim() == 2:
        kernel = kernel.unsqueeze(0)
    kh, kw = kernel.shape[-2:]
    top, bottom, left, right = _same_padding(kh, kw)
    height, width = images.shape[-2:]
    if padding == "replicate":
        padded = replicate_pad(images, top, bottom, left, right)
    else:
        padded = F.pad(images, (left, right, top, bottom))
    # A circular convolution on a grid of N ≥ P samples (P: the padded image's length) is exact
    # on the 'valid' part (indices ≥ k − 1): the wrap-around of the P + k − 1 linear samples only
    # reaches indices < P + k − 1 − N ≤ k − 1, which are cropped away. That part is the 'same'
    # output on the original grid.
    grid = convolution_grid((height, width), (kh, kw))
    if spectrum is None:
        spectrum = kernel_spectrum(kernel.to(images.dtype), grid)
    elif tuple(spectrum.shape[-2:]) != (grid[0], grid[1] // 2 + 1):
        raise ConfigError(
            f"the kernel spectrum has shape {tuple(spectrum.shape[-2:])} but the convolution of "
            f"{height}×{width} images with a {kh}×{kw} kernel needs grid {grid} "
            f"({grid[0]}×{grid[1] // 2 + 1}); make it with kernel_spectrum(kernel, {grid})."
        )
    full = torch.fft.irfft2(torch.fft.rfft2(padded, s=grid) * spectrum, s=grid)
    return full[..., kh - 1 : kh - 1 + height, kw - 1 : kw - 1 + width]


def replicate_pad(
    images: torch.Tensor, top: int, bottom: int, left: int, right: int
) -> torch.Tensor:
    """Replicate-pad the last two dimensions, also by more than the image size (which
    ``F.pad`` refuses): edge pixels are repeated outward, a pure copy."""
    height, width = images.shape[-2:]
    if max(top, bottom) < height and max(left, right) < width:
        return F.pad(images, (left, right, top, bottom), mode="replicate")
    rows = torch.arange(-top, height + bottom, device=images.device).clamp_(0, height - 1)
    cols = torch.arange(-left, width + right, device=images.device).clamp_(0, width - 1)
    return images.index_select(-2, rows).index_select(-1, cols)


def direct_convolve(
    images: torch.Tensor, kernel: torch.Tensor, padding: str = "replicate"
) -> torch.Tensor:
    """Reference 'same' convolution with ``F.conv2d`` (used to test and benchmark the FFT path)."""
    if kernel.dim() == 2:
        kernel = kernel.unsqueeze(0)
    channels = images.shape[1]
    kernel = kernel.expand(channels, -1, -1) if kernel.shape[0] == 1 else kernel
    kh, kw = kernel.shape[-2:]
    pads = _same_padding(kh, kw)
    padded = (
        replicate_pad(images, *pads)
        if padding == "replicate"
        else F.pad(images, (pads[2], pads[3], pads[0], pads[1]))
    )
    weight = kernel.flip(-1, -2).unsqueeze(1).to(images.dtype)
    return F.conv2d(padded, weight, groups=channels)
