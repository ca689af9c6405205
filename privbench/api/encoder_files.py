"""A fitted encoder as two files: ``NAME.json`` (registered name, config, version, hashes, design
history) and ``NAME.safetensors`` (its weights), to share a camera outside the artifact cache
(``privbench encoder export`` / ``load``, :func:`privbench.load_encoder`).

Loading rebuilds the registered encoder from its config, loads the weights strictly and checks
that they hash to the recorded weights hash: the loaded camera is the one whose results were
published, or an error says why not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from privbench.api.config import file_sha256, read_json_object, validate_config
from privbench.api.encoder import Encoder, state_hash
from privbench.api.errors import ConfigError

ENCODER_FILE_SCHEMA = 1


class EncoderFile(BaseModel):
    """What ``NAME.json`` holds."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    schema_version: Literal[1] = ENCODER_FILE_SCHEMA
    encoder: str = Field(description="the registered encoder name")
    config: dict[str, Any]
    version: str
    config_hash: str
    weights_hash: str | None = None
    weights_file: str | None = Field(None, description="the safetensors file beside this one")
    weights_sha256: str | None = None
    label: str | None = None
    design_history: list[dict[str, Any]] = Field(default_factory=list)


def save_encoder(
    encoder: Encoder,
    out_dir: str | Path,
    *,
    stem: str | None = None,
    label: str | None = None,
    history: list[dict[str, Any]] | None = None,
) -> Path:
    """Write ``encoder`` (a registered one; fitted or not) as ``stem.json`` (+ ``.safetensors``
    when it has weights) under ``out_dir``; returns the JSON file."""
    if not encoder.is_registered():
        raise ConfigError(
            f"Only registered encoders can be exported (their name and config rebuild them); "
            f"{encoder.name!r} is not registered: share its source file instead "
            "(privbench run --encoder-file FILE.py:NAME)."
        )
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stem = stem or encoder.name
    state = {key: value.detach().cpu().contiguous() for key, value in encoder.state_dict().items()}
    weights_file = weights_sha256 = None
    if state:
        from safetensors.torch import save_file

        path = folder / f"{stem}.safetensors"
        save_file(state, str(path))
        weights_file, weights_sha256 = path.name, file_sha256(path)
    record = EncoderFile(
        encoder=encoder.name,
        config=encoder.config_dict(),
        version=encoder.version,
        config_hash=encoder.config_hash(),
        weights_hash=encoder.weights_hash(),
        weights_file=weights_file,
        weights_sha256=weights_sha256,
        label=label,
        design_history=list(history or []),
    )
    json_path = folder / f"{stem}.json"
    json_path.write_text(record.model_dump_json(indent=1) + "\n")
    return json_path


def read_encoder_file(path: str | Path) -> EncoderFile:
    raw = read_json_object(Path(path), "Encoder file")
    return validate_config(EncoderFile, raw, what=f"encoder file {str(path)!r}")


def load_encoder(path: str | Path) -> Encoder:
    """The encoder ``path`` (``NAME.json``) describes, with its weights, checked (see module)."""
    from privbench.api.registry import get_encoder

    path = Path(path)
    record = read_encoder_file(path)
    encoder = get_encoder(record.encoder, **record.config)
    if encoder.version != record.version:
        raise ConfigError(
            f"{path} was exported from {record.encoder!r} version {record.version}; this "
            f"privbench has version {encoder.version}, which measures differently."
        )
    if record.weights_file is not None:
        weights = path.parent / record.weights_file
        if not weights.is_file():
            raise ConfigError(f"{path} names weights {record.weights_file!r}, not found beside it.")
        if file_sha256(weights) != record.weights_sha256:
            raise ConfigError(f"{weights} does not have the SHA-256 {path.name} records: damaged?")
        from safetensors.torch import load_file

        state = load_file(str(weights))
        try:
            encoder.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ConfigError(f"{weights} does not fit {record.encoder!r}: {error}") from None
        if record.weights_hash is not None and state_hash(state) != record.weights_hash:
            raise ConfigError(f"The weights in {weights} do not hash to {record.weights_hash}.")
    if encoder.config_hash() != record.config_hash:
        raise ConfigError(
            f"{path}: {record.encoder!r} with its config hashes to {encoder.config_hash()} here, "
            f"not {record.config_hash}: exported by a privbench whose encoder differs."
        )
    return encoder.eval()
