"""Your own camera, unregistered: any :class:`~privbench.api.encoder.Encoder` instance or a plain
``nn.Module`` mapping ``(B, 3, H, W)`` in [0, 1] to a measurement, run like a registered encoder
(:func:`privbench.evaluate`, ``privbench run --encoder-file FILE.py:NAME``).

A registered encoder is identified by its name, config and declared version; an unregistered
camera has no declared version, so what identifies it (the cache keys of its measurements and
cells) is its **source code** (:func:`source_fingerprint`: the files defining its classes) and
its **weights** (every parameter and buffer): edit the file or change a weight and nothing
computed from the old camera is reused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

import torch
from pydantic import Field
from torch import nn

from privbench.api.encoder import MIN_INPUT_SIZE, Encoder, EncoderConfig
from privbench.api.errors import ConfigError, InputError

#: Files inside these packages are versioned by the package, not hashed.
_VERSIONED_PACKAGES = ("torch", "torchvision", "privbench")


def _package_roots() -> list[Path]:
    roots = []
    for name in _VERSIONED_PACKAGES:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            roots.append(Path(module.__file__).resolve().parent)
    return roots


def _defining_classes(module: nn.Module) -> list[type]:
    """The classes whose code runs in ``module``: its own, its submodules', and their bases."""
    classes: list[type] = []
    for sub in module.modules():
        for cls in type(sub).__mro__:
            if cls not in classes and cls.__module__ not in ("builtins",):
                classes.append(cls)
    return classes


def source_fingerprint(module: nn.Module) -> str:
    """Hash of the source files that define ``module``'s classes (and its submodules'), outside
    the packages that version themselves (torch, privbench). A class with no source file (typed
    into an interactive interpreter) contributes its source text when ``inspect`` finds it, else
    its qualified name: then an edit of it is not noticed, which is why a camera belongs in a
    file."""
    roots = _package_roots()
    parts: dict[str, str] = {}
    for cls in _defining_classes(module):
        try:
            file = inspect.getsourcefile(cls)
        except TypeError:
            file = None
        if file is not None:
            path = Path(file).resolve()
            if any(path.is_relative_to(root) for root in roots):
                continue
            if path.is_file():
                parts[str(path.name)] = hashlib.sha256(path.read_bytes()).hexdigest()
                continue
        name = f"{cls.__module__}.{cls.__qualname__}"
        try:
            parts[name] = hashlib.sha256(inspect.getsource(cls).encode()).hexdigest()
        except (OSError, TypeError):
            parts[name] = "no source"
    text = "\n".join(f"{key}:{value}" for key, value in sorted(parts.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ModuleEncoderConfig(EncoderConfig):
    module: str = Field(description="the wrapped module's class, as module.QualifiedName")
    measurement_range: tuple[float, float] = Field(
        (0.0, 1.0),
        description="the values a measurement of images in [0, 1] spans (maps it onto the "
        "scene's grid for PSNR/SSIM and the off-the-shelf attack)",
    )


class ModuleEncoder(Encoder):
    """A plain ``nn.Module`` as an encoder: ``measure(x) = module(x)``, the output shape found by
    running it once on a blank image. Its weights are fixed (no designer fits it: subclass
    :class:`Encoder` for a learnable camera) and identify it with its source code."""

    Config = ModuleEncoderConfig

    def __init__(self, module: nn.Module, measurement_range: tuple[float, float] = (0.0, 1.0)):
        cls = type(module)
        super().__init__(
            module=f"{cls.__module__}.{cls.__qualname__}", measurement_range=measurement_range
        )
        self.module = module
        self._shapes: dict[tuple[int, int, int], tuple[int, int, int]] = {}

    @property
    def name(self) -> str:
        # (asked while the base class validates the config, before ``module`` is set)
        module = self.__dict__.get("_modules", {}).get("module")
        return type(module).__name__ if module is not None else "camera"

    def measure(self, images: torch.Tensor) -> torch.Tensor:
        output = self.module(images)
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            got = (
                f"shape {tuple(output.shape)}"
                if isinstance(output, torch.Tensor)
                else type(output).__name__
            )
            raise InputError(
                f"Camera {self.name!r} must map (B, 3, H, W) images to a (B, C, H', W') "
                f"measurement tensor; for input {tuple(images.shape)} it returned {got}."
            )
        if output.shape[0] != images.shape[0]:
            raise InputError(
                f"Camera {self.name!r} returned {output.shape[0]} measurements for a batch of "
                f"{images.shape[0]} images; it must keep the batch dimension."
            )
        return output

    def output_shape(self, input_shape: tuple[int, int, int]) -> tuple[int, int, int]:
        key = tuple(int(v) for v in input_shape)
        if key not in self._shapes:
            try:
                device = next(self.module.parameters()).device
            except StopIteration:
                device = torch.device("cpu")
            with torch.no_grad():
                probe = torch.zeros(1, *key, device=device)
                self._shapes[key] = tuple(int(v) for v in self(probe).shape[1:])
        return self._shapes[key]

    def measurement_range(self) -> tuple[float, float]:
        low, high = self.config.measurement_range
        return (float(low), float(high))

    def describe(self) -> dict[str, Any]:
        return {
            **self.config_dict(),
            "parameters": sum(p.numel() for p in self.module.parameters()),
        }

    def code_fingerprint(self) -> str:
        return source_fingerprint(self.module)


def as_encoder(camera: Any, *, measurement_range: tuple[float, float] | None = None) -> Encoder:
    """``camera`` as an encoder: an :class:`Encoder` as it is, a plain ``nn.Module`` wrapped in a
    :class:`ModuleEncoder` (``measurement_range`` only applies to a plain module: an encoder
    declares its own)."""
    if isinstance(camera, Encoder):
        if measurement_range is not None:
            raise ConfigError(
                f"measurement_range is for a plain nn.Module; encoder {camera.name!r} declares "
                "its own (Encoder.measurement_range)."
            )
        return camera
    if isinstance(camera, nn.Module):
        encoder = ModuleEncoder(camera, measurement_range or (0.0, 1.0))
        encoder.output_shape((3, MIN_INPUT_SIZE, MIN_INPUT_SIZE))  # a bad module fails here
        return encoder
    raise ConfigError(
        f"A camera must be a privbench Encoder or a torch nn.Module mapping (B, 3, H, W) images "
        f"in [0, 1] to a measurement; got {type(camera).__name__}."
    )


def load_encoder_file(reference: str) -> Encoder:
    """The camera ``FILE.py:NAME`` names (``--encoder-file``): NAME is a class (constructed
    without arguments), a function returning a camera, or a module-level instance."""
    path_text, sep, attribute = reference.rpartition(":")
    if not sep or not path_text or not attribute:
        raise ConfigError(
            f"--encoder-file must be FILE.py:NAME (e.g. my_camera.py:MyCamera); got {reference!r}."
        )
    path = Path(path_text)
    if not path.is_file() or path.suffix != ".py":
        raise ConfigError(f"--encoder-file {reference!r}: {path_text!r} is not a Python file.")
    module_name = f"privbench_camera_{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the user's file: say which one failed, and how
        raise ConfigError(
            f"--encoder-file {reference!r}: importing {path_text} failed: "
            f"{type(error).__name__}: {error}"
        ) from error
    _pickle_by_value(module)
    if not hasattr(module, attribute):
        public = sorted(name for name in vars(module) if not name.startswith("_"))
        raise ConfigError(
            f"--encoder-file {reference!r}: {path_text} defines no {attribute!r}; it defines: "
            f"{', '.join(public) or 'nothing public'}."
        )
    target = getattr(module, attribute)
    if callable(target) and not isinstance(target, nn.Module):
        try:
            target = target()
        except Exception as error:
            raise ConfigError(
                f"--encoder-file {reference!r}: {attribute}() failed: {type(error).__name__}: "
                f"{error} (a class is built without arguments; give a function that builds it "
                "with yours)"
            ) from error
    encoder = as_encoder(target)
    encoder.config_hash()  # fingerprints the file as it is now, the code just imported
    return encoder


def _pickle_by_value(module) -> None:
    """Ray workers cannot import a file loaded by path: ship its code with the cells instead."""
    try:
        import cloudpickle
    except ImportError:  # without Ray nothing leaves this process
        return
    cloudpickle.register_pickle_by_value(module)
