"""`privbench show`: a clean image beside its measurement and the encoder's diagnostics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from privbench.api.adapter import DEFAULT_MAX_IMAGE_PIXELS
from privbench.api.errors import InputError, OutputError
from privbench.api.registry import get_encoder
from privbench.data.formats.images import header_size, too_large_error
from privbench.data.formats.pixels import to_rgb8
from privbench.report.visualize import measurement_to_rgb


def load_image(path: str | Path, size: int | None = None) -> torch.Tensor:
    """An image file as a ``(1, 3, H, W)`` float tensor in [0, 1]."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"Image {str(path)!r} does not exist; give a PNG or JPEG file with --image."
        )
    try:
        with Image.open(path) as opened:
            width, height = opened.size
            if size and opened.format == "JPEG":  # decode no larger than the output needs
                opened.draft("RGB", (size * 2, size * 2))
            if opened.size[0] * opened.size[1] > DEFAULT_MAX_IMAGE_PIXELS:
                raise too_large_error(path, width, height, DEFAULT_MAX_IMAGE_PIXELS)
            picture = to_rgb8(opened)
    except Image.DecompressionBombError:
        raise too_large_error(path, *header_size(path), DEFAULT_MAX_IMAGE_PIXELS) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:  # as the stores
        raise InputError(
            f"Cannot read {str(path)!r} as an image ({error}); give a PNG or JPEG file."
        ) from None
    if size:
        picture = picture.resize((size, size), Image.BILINEAR)
    array = np.asarray(picture, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def sample_face() -> torch.Tensor:
    """A face from the embedded synthfaces data (tiny preset), as (1, 3, 64, 64)."""
    from privbench.api.adapter import load_dataset

    data = load_dataset("synthfaces", {"preset": "tiny"})
    return data.identities.test.images[:1].float() / 255.0


def show(
    encoder_name: str,
    *,
    image=None,
    out="show.png",
    config: dict[str, Any] | None = None,
    size=None,
) -> Path:
    """``privbench show``: the registered encoder ``encoder_name`` (with ``config``) on
    ``image`` (default: a synthfaces face), see :func:`show_encoder`."""
    encoder = get_encoder(encoder_name, **(config or {}))
    clean = load_image(image, size) if image is not None else sample_face()
    return show_encoder(encoder, clean, out)


def show_encoder(encoder, clean: torch.Tensor, out: str | Path) -> Path:
    """``clean`` (1, 3, H, W) beside ``encoder``'s measurement of it and its diagnostics (PSF,
    kernels, thresholds), as one PNG at ``out`` (fitted encoders too: the card uses it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with torch.no_grad():
        measurement = encoder.eval()(clean)[0]
    panels: list[tuple[str, np.ndarray, str | None]] = [
        ("clean input", clean[0].permute(1, 2, 0).numpy(), None),
        (f"measurement {tuple(measurement.shape)}", measurement_to_rgb(measurement), None),
    ]
    for name, array in encoder.diagnostics(tuple(clean.shape[1:])).items():
        panels.extend(_diagnostic_panels(name, torch.as_tensor(array).detach().float().cpu()))
    columns = min(4, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(3.4 * columns, 3.4 * rows), dpi=120, squeeze=False
    )
    for axis in axes.flat:
        axis.axis("off")
    for axis, (title, array, cmap) in zip(axes.flat, panels):
        if array.ndim == 1:
            axis.axis("on")
            axis.plot(array, marker="o", markersize=3)
            axis.grid(alpha=0.3)
        else:
            shown = axis.imshow(array, cmap=cmap, interpolation="nearest")
            if cmap is not None:
                figure.colorbar(shown, ax=axis, fraction=0.046, pad=0.04)
        axis.set_title(title, fontsize=9)
    import textwrap

    width = max(40, 28 * columns)
    figure.suptitle(
        textwrap.fill(f"{encoder.name}: {_short_description(encoder.describe())}", width),
        fontsize=9,
    )
    figure.tight_layout()
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(out)
    except OSError as error:
        raise OutputError(f"Cannot write {str(out)!r}: {error}. Choose another --out.") from None
    finally:
        plt.close(figure)
    return out


def _diagnostic_panels(name: str, array: torch.Tensor) -> list[tuple[str, np.ndarray, str | None]]:
    if array.dim() <= 1:
        return [(name, array.reshape(-1).numpy(), None)]
    if array.dim() == 2:
        return [(name, array.numpy(), "viridis")]
    return [(f"{name}[{i}]", array[i].numpy(), "viridis") for i in range(min(array.shape[0], 12))]


def _short_description(description: dict[str, Any]) -> str:
    text = ", ".join(f"{k}={v}" for k, v in description.items())
    return text if len(text) < 240 else text[:237] + "..."
