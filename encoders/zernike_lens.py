"""The 2PSC learned refractive lens: a Noll-indexed Zernike height map (2PSC §2.1, eqs. 1–3).

The lens surface is φ = Σ_j α_j Z_j (eq. 2) over a circular aperture; its PSF per colour channel
comes from Fresnel propagation to the sensor (eq. 1, :func:`privbench.nn.optics.fresnel_psf`), and
the measurement is Y = S(H ⊛ X) + N (eq. 3): linear FFT convolution, linear response, Gaussian
sensor noise. The α_j (micrometres of surface height) are learnable; piston, tip and tilt are
frozen by default since they only shift the image. The PSF is computed once per forward pass
(never per image) and, while the coefficients are unchanged and no gradient is needed, reused.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator

from privbench.api.encoder import MIN_INPUT_SIZE, Encoder, EncoderConfig
from privbench.api.errors import ConfigError
from privbench.api.registry import register_encoder
from privbench.nn.convolution import convolution_grid, fft_convolve, kernel_spectrum
from privbench.nn.optics import fresnel_psf, psf_width_px, zernike_basis


class LensConfig(EncoderConfig):
    """Physical parameters (units in the names). Channel order of the tuples: R, G, B."""

    wavelengths_nm: tuple[float, float, float] = Field(
        (640.0, 550.0, 460.0), description="one wavelength per colour channel (R, G, B)"
    )
    refractive_indices: tuple[float, float, float] = Field(
        (1.488, 1.493, 1.499), description="lens material index at each wavelength"
    )
    sensor_distance_m: float = Field(1e-3, gt=0, le=1.0, description="lens-to-sensor distance z")
    focal_length_m: float | None = Field(
        None,
        gt=0,
        description="focal setting of the base lens (None: = sensor distance, focused at infinity)",
    )
    aperture_diameter_m: float = Field(
        2e-4, gt=0, description="diameter D of the circular aperture"
    )
    pixel_pitch_m: float = Field(4e-6, gt=0, description="sensor pixel pitch")
    wave_samples_per_pixel: int = Field(
        4, ge=1, le=16, description="wave-field samples per sensor pixel (wave resolution)"
    )
    padding: Literal["replicate", "zero"] = Field(
        "replicate", description="boundary handling of the linear convolution"
    )
    noise_std: float = Field(
        0.01, ge=0, le=1, description="standard deviation of the Gaussian sensor noise N"
    )

    @model_validator(mode="after")
    def _aperture_fits_the_sensor(self) -> LensConfig:
        if len(set(map(len, (self.wavelengths_nm, self.refractive_indices)))) != 1:
            raise ValueError(
                "wavelengths_nm and refractive_indices need one value per colour channel"
            )
        window = MIN_INPUT_SIZE * self.pixel_pitch_m
        if self.aperture_diameter_m > window:
            raise ValueError(
                f"aperture_diameter_m = {self.aperture_diameter_m} exceeds the smallest sensor "
                f"window ({MIN_INPUT_SIZE} px × pixel_pitch_m = {window}); use a smaller aperture "
                f"or a larger pitch"
            )
        return self

    @property
    def sample_pitch_m(self) -> float:
        return self.pixel_pitch_m / self.wave_samples_per_pixel

    @property
    def aperture_samples(self) -> int:
        return max(4, round(self.aperture_diameter_m / self.sample_pitch_m))


class ZernikeLensConfig(LensConfig):
    num_zernike: int = Field(15, ge=1, le=1000, description="number q of Noll Zernike terms")
    init_coefficients_um: list[float] | None = Field(
        None,
        description="initial α_1..α_k in µm of surface height (a preset); default: a focused "
        "lens (all zero)",
    )
    freeze_piston_tip_tilt: bool = Field(
        True, description="keep α_1..α_3 fixed (they only shift the image)"
    )

    @model_validator(mode="after")
    def _init_length(self) -> ZernikeLensConfig:
        if (
            self.init_coefficients_um is not None
            and len(self.init_coefficients_um) > self.num_zernike
        ):
            raise ValueError(
                f"init_coefficients_um has {len(self.init_coefficients_um)} values but "
                f"num_zernike is {self.num_zernike}"
            )
        return self


#: The PSF window (the convolution kernel) grows beyond the image until it holds this share of
#: the light through the aperture (:func:`~privbench.nn.optics.fresnel_psf`): renormalizing a
#: window that is too small hides the rest, and a strongly aberrated lens would look brighter
#: and sharper than it is (27-53 % of the light lost at RMS radii of 17-26 px on 64-px crops).
KEEP_PSF_LIGHT = 0.99
#: A lens whose largest window (1.75 × the image) still holds less than this share is
#: refused in evaluation: its light leaves the simulated wave field.
MIN_PSF_ENERGY_FRACTION = 0.95


class RefractiveLens(Encoder):
    """Shared machinery of the Zernike-surface lenses (the learned lens, the defocus baseline)."""

    Config = LensConfig
    #: 2: the sensor noise is drawn per batch from the caller's random stream (fresh every
    #: epoch); 1 drew one fixed draw per image content (and had a ``seed`` option). 3: the
    #: optical axis is the centre of pixel (H // 2, W // 2) and the convolution's kernel centre
    #: too (2 shifted every measurement by half a pixel for even sizes).
    version = "3"

    def __init__(self, **config):
        super().__init__(**config)
        self._psf_cache: tuple | None = None
        self._spectrum_cache: tuple | None = None
        self._last_psf: torch.Tensor | None = None
        #: share of the light through the aperture inside the last PSF's window, per channel
        self.psf_energy_fraction: torch.Tensor | None = None

    def stored_coefficients_um(self) -> torch.Tensor:
        """The stored coefficient tensor (a parameter or a buffer), µm of surface height."""
        return self.coefficients_um

    def coefficient_vector_um(self) -> torch.Tensor:
        """The coefficients used in the forward pass (subclasses may stop gradients to some)."""
        return self.stored_coefficients_um()

    def height_map_m(self) -> torch.Tensor:
        """Surface height on the aperture grid (eq. 2), metres; zero outside the aperture."""
        coefficients = self.coefficient_vector_um()
        basis = zernike_basis(
            self.config.aperture_samples, coefficients.numel(), device=coefficients.device
        )
        return torch.tensordot(coefficients, basis, dims=1) * 1e-6

    def psf(self, height: int, width: int) -> torch.Tensor:
        """The PSF of each colour channel for a height×width sensor (unit sum): height×width, or
        larger where the blur needs it to keep :data:`KEEP_PSF_LIGHT` of the light."""
        cfg = self.config
        stored = self.stored_coefficients_um()
        key = (stored._version, stored.data_ptr(), height, width, str(stored.device))
        reusable = not (torch.is_grad_enabled() and stored.requires_grad)
        if reusable and self._psf_cache is not None and self._psf_cache[0] == key:
            self._check_light_kept(*self._psf_cache[1:])
            return self._psf_cache[1]
        psf, energy = fresnel_psf(
            self.height_map_m(),
            aperture_samples=cfg.aperture_samples,
            grid_samples=max(height, width) * cfg.wave_samples_per_pixel,
            sample_pitch_m=cfg.sample_pitch_m,
            wavelengths_m=tuple(w * 1e-9 for w in cfg.wavelengths_nm),
            refractive_indices=tuple(cfg.refractive_indices),
            sensor_distance_m=cfg.sensor_distance_m,
            focal_length_m=cfg.focal_length_m,
            samples_per_pixel=cfg.wave_samples_per_pixel,
            output_size=(height, width),
            return_energy_fraction=True,
            keep_light=KEEP_PSF_LIGHT,
        )
        self._check_light_kept(psf, energy)
        if reusable:
            self._psf_cache = (key, psf.detach(), energy)
        return psf

    def _check_light_kept(self, psf: torch.Tensor, energy: torch.Tensor) -> None:
        """Refuse, in evaluation, a PSF whose window holds less than
        :data:`MIN_PSF_ENERGY_FRACTION` of the light (kept as ``psf_energy_fraction``); while a
        designer trains the lens it may pass through such states."""
        self.psf_energy_fraction = energy
        if self.training or float(energy.min()) >= MIN_PSF_ENERGY_FRACTION:
            return
        height, width = psf.shape[-2:]
        shares = ", ".join(f"{100 * float(v):.1f} %" for v in energy)
        raise ConfigError(
            f"{self.name}: its PSF keeps only {shares} (per colour channel) of the light inside "
            f"the largest window the simulation holds ({height}×{width} px, 1.75 × the image; "
            f"RMS radius {float(psf_width_px(psf.detach()).max()):.1f} px); at least "
            f"{100 * MIN_PSF_ENERGY_FRACTION:.0f} % is needed, or renormalizing the window would "
            "hide the rest. Use a smaller blur (defocus_um, Zernike coefficients), a smaller "
            "aperture or larger images."
        )

    def measure(self, images: torch.Tensor) -> torch.Tensor:
        psf = self.psf(*images.shape[-2:]).to(images.dtype)
        self._last_psf = psf
        spectrum = self._psf_spectrum(psf, tuple(images.shape[-2:]))
        blurred = fft_convolve(images, psf, self.config.padding, spectrum)  # S linear: unit gain
        return blurred + self._noise(images)

    def _psf_spectrum(self, psf: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor | None:
        """The PSF's spectrum on the convolution grid, kept with the cached PSF (a fixed lens
        transforms its PSF once, not once per batch); ``None`` while the PSF is being trained."""
        if psf.requires_grad:
            return None
        cached = self._spectrum_cache
        if cached is not None and cached[0] is psf and cached[1] == image_size:
            return cached[2]
        grid = convolution_grid(image_size, tuple(psf.shape[-2:]))
        spectrum = kernel_spectrum(psf, grid)
        self._spectrum_cache = (psf, image_size, spectrum)
        return spectrum

    def has_sensor_noise(self) -> bool:
        return self.config.noise_std > 0

    def _noise(self, images: torch.Tensor) -> torch.Tensor:
        """The sensor noise N of Eq. (4): drawn from torch's global random stream on the CPU
        (the same numbers on every device), in training and in evaluation alike — the runner
        streams a noisy camera's measurements batch by batch from the cell's stream, so every
        epoch sees a fresh draw (version 2; version 1 drew one fixed draw per image content)."""
        std = self.config.noise_std
        if std == 0:
            return torch.zeros((), dtype=images.dtype, device=images.device)
        return (std * torch.randn(images.shape, dtype=images.dtype)).to(images.device)

    def regularizers(
        self, clean: torch.Tensor, measurement: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``psf_spread``: mean RMS radius (pixels) of the last PSF — a designer may reward or
        limit it."""
        if self._last_psf is None:
            return {}
        return {"psf_spread": psf_width_px(self._last_psf).mean()}

    def diagnostics(self, input_shape) -> dict[str, torch.Tensor]:
        _, height, width = input_shape
        with torch.no_grad():
            psf = self.psf(height, width)
            cy, cx = psf.shape[-2] // 2, psf.shape[-1] // 2  # the optical axis
            centre = psf[:, max(0, cy - 16) : cy + 17, max(0, cx - 16) : cx + 17]
            return {
                "psf (R, G, B; central 33 px)": centre,
                "height map (µm)": self.height_map_m() * 1e6,
            }

    def describe(self) -> dict:
        cfg = self.config
        return {
            "optics": "refractive lens, Zernike surface, Fresnel propagation",
            "sensor_distance_m": cfg.sensor_distance_m,
            "aperture_diameter_m": cfg.aperture_diameter_m,
            "f_number": round(
                (cfg.focal_length_m or cfg.sensor_distance_m) / cfg.aperture_diameter_m, 3
            ),
            "pixel_pitch_m": cfg.pixel_pitch_m,
            "wavelengths_nm": list(cfg.wavelengths_nm),
            "noise_std": cfg.noise_std,
        }


@register_encoder("zernike-lens")
class ZernikeLens(RefractiveLens):
    """2PSC's learned lens: q Noll Zernike coefficients (µm of height), focused lens at start."""

    Config = ZernikeLensConfig
    learnable = True

    def __init__(self, **config):
        super().__init__(**config)
        initial = torch.zeros(self.config.num_zernike)
        if self.config.init_coefficients_um:
            initial[: len(self.config.init_coefficients_um)] = torch.tensor(
                self.config.init_coefficients_um
            )
        self.coefficients_um = torch.nn.Parameter(initial)
        frozen = torch.zeros(self.config.num_zernike, dtype=torch.bool)
        if self.config.freeze_piston_tip_tilt:
            frozen[:3] = True
        self.register_buffer("frozen", frozen, persistent=False)

    def coefficient_vector_um(self) -> torch.Tensor:
        # Frozen terms keep their value but pass no gradient.
        return torch.where(self.frozen, self.coefficients_um.detach(), self.coefficients_um)

    def describe(self) -> dict:
        return {
            **super().describe(),
            "zernike_terms": self.config.num_zernike,
            "coefficients_um": [round(float(c), 4) for c in self.coefficients_um.detach()],
        }
