"""A benchmark spec around an unregistered camera (:func:`privbench.evaluate`).

The camera becomes one encoder entry named ``camera:LABEL`` (no registry holds that name: the
runner takes the encoder from the ``cameras`` mapping instead, :meth:`Runner.construct_encoder`)
beside the benchmark entries it is compared with. ``identity`` is always among them: every
utility and privacy score is measured against its clean rows.
"""

from __future__ import annotations

from collections.abc import Sequence

from privbench.api.config import validate_config
from privbench.api.encoder import Encoder
from privbench.api.errors import ConfigError
from privbench.runs.scores import CLEAN_ENCODER
from privbench.runs.spec import BenchmarkSpec, ComponentSpec

CAMERA_PREFIX = "camera:"


def camera_spec(
    spec: BenchmarkSpec,
    encoder: Encoder,
    *,
    label: str | None = None,
    compare: Sequence[str] | str | None = None,
    designer: str | dict | None = None,
    alphas: list[float] | None = None,
) -> tuple[BenchmarkSpec, dict[str, Encoder]]:
    """``spec`` (resolved) with ``encoder`` as an entry and only the compared entries kept (see
    :func:`privbench.evaluate`), and the ``cameras`` mapping :func:`privbench.run` takes."""
    label = label or encoder.name
    compared = _compared_entries(spec, compare)
    if any(entry.display_name == label for entry in compared):
        raise ConfigError(
            f"The camera's label {label!r} is already an encoder entry of benchmark "
            f"{spec.name!r}; pass another label= (--label)."
        )
    if designer is not None and not encoder.learnable:
        raise ConfigError(
            f"Camera {label!r} has no learnable parameters for designer {designer!r}: a plain "
            "nn.Module is a fixed camera; subclass privbench.Encoder (learnable = True) to fit one."
        )
    name = CAMERA_PREFIX + label
    entry = {"name": name, "label": label}
    if designer is not None:
        entry["designer"] = designer
    if alphas is not None:
        entry["alphas"] = list(alphas)
    data = spec.model_dump()
    data["encoders"] = [e.model_dump() for e in compared] + [entry]
    camera_run = validate_config(BenchmarkSpec, data, what=f"the run of camera {label!r}")
    return camera_run, {name: encoder}


def _compared_entries(spec: BenchmarkSpec, compare: Sequence[str] | str | None) -> list:
    if compare == "all":
        entries = list(spec.encoders)
    elif compare is None:
        entries = []
    elif isinstance(compare, str):
        raise ConfigError(
            f"compare must be None, 'all' or a list of encoder labels; got {compare!r}."
        )
    else:
        entries = list(spec.with_encoders(list(compare)).encoders) if compare else []
    if not any(entry.name == CLEAN_ENCODER for entry in entries):
        clean = [entry for entry in spec.encoders if entry.name == CLEAN_ENCODER]
        entries.insert(0, clean[0] if clean else ComponentSpec(name=CLEAN_ENCODER))
    return entries
