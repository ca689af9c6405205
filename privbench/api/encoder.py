"""The encoder contract: a camera (optics or analog front end) as a torch ``nn.Module``.

Input: ``(B, 3, H, W)`` float in [0, 1] (linear intensity), any ``H, W >= 64``. Output: the sensor
measurement, whose shape the encoder declares through :meth:`Encoder.output_shape`; it may be
smaller (pooling, low resolution) or have more channels (CAnOPIC's 4-filter bank → 12). The
measurement is the only thing any downstream model ever sees.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from privbench.api.config import ComponentConfig, stable_hash, validate_config
from privbench.api.errors import InputError
from privbench.api.profiling import section

MIN_INPUT_SIZE = 64
#: Measurements of a split up to this size are cached for any noise-free encoder
#: (:meth:`Encoder.caches_measurements`).
SMALL_MEASUREMENT_CACHE_BYTES = 256 << 20


class EncoderConfig(ComponentConfig):
    """Options every encoder accepts (subclasses add their own fields)."""


class Encoder(nn.Module):
    """Base class of all encoders.

    Subclasses set ``Config`` (a :class:`EncoderConfig` subclass), implement :meth:`measure` and
    :meth:`output_shape`, and describe themselves physically in :meth:`describe`. Learnable
    encoders set ``learnable = True``; their parameters are fitted by a designer before the
    benchmark cells run, and the hash of the fitted weights enters every result row.

    The hooks designers, ``privbench show`` and ``privbench tune`` call are declared here and do
    nothing by default: :meth:`set_hardness`, :meth:`project_`, :meth:`regularizers`,
    :meth:`diagnostics` and :attr:`tunables`; an encoder overrides the ones it has a use for.
    """

    Config: ClassVar[type[EncoderConfig]] = EncoderConfig
    learnable: ClassVar[bool] = False
    registered_name: ClassVar[str] = ""
    #: Config fields ``privbench tune`` samples, name → distribution: ``{"type": "float" | "int",
    #: "low": …, "high": …, "log": bool}`` or ``{"type": "categorical", "choices": [...]}``.
    tunables: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Bumped when what the encoder measures for the same config changes (enters its hash).
    version: ClassVar[str] = "1"

    def __init__(self, **config: Any):
        super().__init__()
        self.config = validate_config(self.Config, config, what=f"encoder {self.name!r}")

    # -- identity -----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.registered_name if self.is_registered() else type(self).__name__

    def is_registered(self) -> bool:
        """Whether this class itself is the registered encoder its ``registered_name`` names (a
        subclass inherits the name, not the registration)."""
        if not self.registered_name:
            return False
        from privbench.api.registry import ENCODERS

        return self.registered_name in ENCODERS and ENCODERS.get(self.registered_name) is type(self)

    def code_fingerprint(self) -> str:
        """What identifies an unregistered encoder's code, which declares no :attr:`version`:
        the hash of the source files defining its classes
        (:func:`privbench.api.camera.source_fingerprint`)."""
        from privbench.api.camera import source_fingerprint

        return source_fingerprint(self)

    def config_dict(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json")

    def config_hash(self) -> str:
        """Hash of name + config (+ the encoder's :attr:`version` once it is past "1"; + its
        source code when it is not registered, :meth:`code_fingerprint`): identifies an
        encoder configuration (not its learned weights)."""
        payload: dict[str, Any] = {"encoder": self.name, "config": self.config_dict()}
        if self.version != "1":  # version 1 is implied: the keys of stored results stay valid
            payload["version"] = self.version
        if not self.is_registered():
            # the code as it was when first asked (a file edited later is another camera)
            if "_code_fingerprint" not in self.__dict__:
                self.__dict__["_code_fingerprint"] = self.code_fingerprint()
            payload["source"] = self.__dict__["_code_fingerprint"]
        return stable_hash(payload)

    @section("hash")
    def weights_hash(self) -> str | None:
        """Hash of the parameters' and buffers' values: of a learnable encoder, and of an
        unregistered one (whose config does not determine its weights); ``None`` for a
        registered fixed encoder and for one without any tensors."""
        fixed_by_config = not self.learnable and self.is_registered()
        state = self.state_dict()
        return None if fixed_by_config or not state else state_hash(state)

    # -- the contract -------------------------------------------------------------------
    def output_shape(self, input_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """Shape ``(C, H, W)`` of the measurement for an input of shape ``(3, H, W)``."""
        return tuple(input_shape)  # type: ignore[return-value]

    def describe(self) -> dict[str, Any]:
        """Physical description shown on the leaderboard (units in the keys)."""
        return dict(self.config_dict())

    def measure(self, images: torch.Tensor) -> torch.Tensor:
        """The physics: map validated images to measurements. Subclasses implement this."""
        raise NotImplementedError(f"{type(self).__name__} must implement measure()")

    def measurement_range(self) -> tuple[float, float]:
        """The values a noise-free measurement of images in [0, 1] spans, ``(low, high)``:
        (0, 1) for intensities (the default), (0, N − 1) for N quantized levels. Comparisons
        with the scene (:func:`privbench.nn.imaging.to_common_grid`) map this range onto
        [0, 1], the same for every measurement, whatever else is in its batch."""
        return (0.0, 1.0)

    def has_sensor_noise(self) -> bool:
        """Whether a measurement is random (sensor noise): then it is drawn anew for every
        batch, from torch's global random stream (the cell's), so a model trained on it sees
        fresh noise every epoch as it would from a real camera, and it is never cached."""
        return False

    def caches_measurements(self, measurement_bytes: int, image_bytes: int) -> bool:
        """Whether the runner may cache this encoder's measurements of a split (on disk,
        memory-mapped) instead of encoding them batch by batch in every cell and epoch: only
        without sensor noise (a cached draw would be the same noise in every epoch), and only
        where it pays: the measurements take no more disk than the split's images, or the
        split is small (:data:`SMALL_MEASUREMENT_CACHE_BYTES`, where reading beats encoding
        whatever the encoder)."""
        if self.has_sensor_noise():
            return False
        return measurement_bytes <= max(image_bytes, SMALL_MEASUREMENT_CACHE_BYTES)

    # -- hooks (no-ops unless an encoder has a use for them) -----------------------------
    def regularizers(
        self, clean: torch.Tensor, measurement: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Optional loss terms (by name, e.g. ``psf_spread``) a designer may add while fitting
        this encoder, for the measurement just computed from ``clean``."""
        return {}

    def set_hardness(self, hardness: float) -> None:
        """The hardness T of a soft relaxation used in training mode (CAnOPIC's soft quantizer
        y = Σ σ(T(x − b_i))); the adversarial designer raises it over its cycles."""

    def project_(self) -> None:
        """Project the parameters back onto what is physically realizable (non-negative,
        unit-sum kernels; ordered thresholds; lens height limits). Designers call it under
        ``torch.no_grad()`` after every optimizer step."""

    def diagnostics(self, input_shape: tuple[int, int, int]) -> dict[str, torch.Tensor]:
        """Extra panels for ``privbench show`` (title → 1-D curve, 2-D image or a stack of
        images) for inputs of ``input_shape``: PSFs, kernels, thresholds."""
        return {}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images, who=self.name)
        return self.measure(images)


def state_hash(state: dict[str, torch.Tensor]) -> str:
    """The hash of a state dict's values (key by key, widened to float64 / complex128, so the
    dtype a checkpoint was saved in does not change it): :meth:`Encoder.weights_hash`."""
    import hashlib

    digest = hashlib.sha256()
    for key, value in sorted(state.items()):
        digest.update(key.encode())
        wide = torch.complex128 if value.is_complex() else torch.float64
        digest.update(value.detach().to("cpu", wide).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def check_images(images: Any, *, who: str = "encoder", min_size: int = MIN_INPUT_SIZE) -> None:
    """Validate an encoder input, raising an InputError that names what is wrong."""
    if not isinstance(images, torch.Tensor):
        raise InputError(
            f"{who} expects a torch.Tensor of shape (B, 3, H, W), float in [0, 1]; got "
            f"{type(images).__name__}."
        )
    if images.dim() != 4 or images.shape[1] != 3:
        raise InputError(
            f"{who} expects images of shape (B, 3, H, W) (a batch of RGB images); got shape "
            f"{tuple(images.shape)}. Add a batch dimension with x.unsqueeze(0) or convert to RGB."
        )
    height, width = images.shape[-2:]
    if height < min_size or width < min_size:
        raise InputError(
            f"{who} accepts images of at least {min_size}x{min_size} pixels; got {height}x{width}. "
            f"Resize the input (e.g. torch.nn.functional.interpolate) before encoding."
        )
    if not images.is_floating_point():
        raise InputError(
            f"{who} expects floating-point intensities in [0, 1]; got dtype {images.dtype}. "
            f"Convert uint8 images with x.float() / 255."
        )
    if images.numel():
        low, high = float(images.detach().min()), float(images.detach().max())
        if low < -1e-6 or high > 1 + 1e-6 or math.isnan(low) or math.isnan(high):
            raise InputError(
                f"{who} expects linear intensities in [0, 1]; got values in "
                f"[{low:.4g}, {high:.4g}]. "
                f"Scale 0-255 images by 1/255 and clamp."
            )


@torch.no_grad()
def encode_batches(
    encoder: Encoder,
    images_uint8: torch.Tensor,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Encode a uint8 ``(N, 3, H, W)`` image stack in batches; returns float32 measurements on
    the CPU."""
    encoder = encoder.to(device).eval()
    outputs = []
    for start in range(0, images_uint8.shape[0], batch_size):
        batch = images_uint8[start : start + batch_size].to(device).float().div_(255.0)
        outputs.append(encoder(batch).float().cpu())
    if not outputs:
        channels, height, width = encoder.output_shape(tuple(images_uint8.shape[1:]))
        return torch.empty(0, channels, height, width)
    return torch.cat(outputs)
