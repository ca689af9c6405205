"""Typed, validated configuration models.

Every component declares its options as a pydantic model (subclass of :class:`ComponentConfig`):
unknown fields are rejected, values are validated on construction, and validation failures are
turned into one :class:`~privbench.api.errors.ConfigError` paragraph that names the field, the bad
value and what would be accepted.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from privbench.api.errors import ConfigError

C = TypeVar("C", bound="ComponentConfig")


class ComponentConfig(BaseModel):
    """Base of all component configs: strict about unknown fields, immutable after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


def validate_config(model: type[C], values: dict[str, Any], *, what: str) -> C:
    """Build ``model`` from ``values``; on failure raise a ConfigError naming
    ``what`` and the field."""
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, what=what, model=model)) from None


def format_validation_error(
    error: ValidationError, *, what: str, model: type[BaseModel] | None = None
) -> str:
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(root)"
        if item["type"] == "extra_forbidden":
            accepted = ", ".join(sorted(model.model_fields)) if model is not None else "?"
            problems.append(f"unknown field {field!r} (accepted fields: {accepted or 'none'})")
        else:
            value = item.get("input")
            problems.append(f"field {field!r} = {value!r}: {item['msg']}")
    return f"Invalid configuration for {what}: " + "; ".join(problems) + "."


def stable_hash(payload: Any, length: int = 16) -> str:
    """A short content hash of a JSON-serialisable payload (sorted keys, so order-independent)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path`` (``what`` names the file in errors: "entry", "encoder file")."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{what} {str(path)!r} is not a readable JSON file: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{what} {str(path)!r} must hold a JSON object; got {type(raw).__name__}."
        )
    return raw


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read a MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
