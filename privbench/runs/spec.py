"""Benchmark specs: which dataset, which encoders, which tasks and attacks, which seeds.

A spec is YAML validated into :class:`BenchmarkSpec`. Presets (``quick``, ``standard``, ...)
override the dataset config and evaluation configs (training budgets, model sizes) without
repeating the rest, so one spec describes a benchmark at every scale.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from privbench.api.config import format_validation_error, stable_hash
from privbench.api.errors import ConfigError
from privbench.engine.config import TaskResources

#: Seeds are 32-bit: every random generator a cell seeds (torch, numpy, Python) accepts them.
MAX_SEED = 2**32


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ComponentSpec(_Strict):
    """One encoder, task or attack: registered name, config overrides, optional display label.

    Encoder entries may name a ``designer`` that fits the encoder's parameters before the cells
    run, and ``alphas``: a sweep of the designer's privacy weight, expanded into one entry per α.
    """

    name: str
    config: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None
    designer: ComponentSpec | None = None
    alphas: list[float] | None = None
    data: str | None = Field(
        None,
        description="composite datasets only: the source whose data this evaluation (or designer) "
        "reads instead of the composite's assembled parts",
    )
    resources: TaskResources | None = Field(
        None,
        description="what this evaluation's cells (or this designer's fit) reserve on a worker, "
        "e.g. {gpus: 1} for a paper-scale fit (default: --cpus-per-cell, --gpus-per-cell)",
    )

    @model_validator(mode="before")
    @classmethod
    def _accept_bare_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @property
    def display_name(self) -> str:
        return self.label or self.name


class DatasetSpec(_Strict):
    name: str = "synthfaces"
    config: dict[str, Any] = Field(default_factory=dict)


class PresetSpec(_Strict):
    """Overrides applied by a preset: dataset config and per-evaluation config, merged in."""

    description: str = ""
    dataset: dict[str, Any] = Field(default_factory=dict)
    evaluations: dict[str, dict[str, Any]] = Field(default_factory=dict)
    designers: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="config merged into every entry's designer of that name"
    )


class BenchmarkSpec(_Strict):
    name: str
    version: str = "1"
    description: str = ""
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    encoders: list[ComponentSpec]
    tasks: list[ComponentSpec] = Field(default_factory=list)
    attacks: list[ComponentSpec] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=lambda: [0])
    presets: dict[str, PresetSpec] = Field(default_factory=dict)
    default_preset: str | None = None
    sample_encoder_inputs: int = Field(
        4, ge=0, le=64, description="face crops shown per encoder on the HTML page"
    )
    paths: dict[str, str] = Field(
        default_factory=dict,
        description="what each ${NAME} placeholder of the spec "
        "stands for (given at run time with --data NAME=PATH)",
    )
    preset: str | None = Field(
        None,
        description="the preset this spec was resolved with (set by resolve(); rows record it)",
    )

    @field_validator("encoders")
    @classmethod
    def _non_empty(cls, value: list[ComponentSpec]) -> list[ComponentSpec]:
        if not value:
            raise ValueError("a benchmark needs at least one encoder")
        return value

    @field_validator("encoders")
    @classmethod
    def _expand_alpha_sweeps(cls, value: list[ComponentSpec]) -> list[ComponentSpec]:
        expanded = []
        for entry in value:
            if entry.alphas is None:
                expanded.append(entry)
                continue
            if entry.designer is None:
                raise ValueError(
                    f"encoder entry {entry.name!r} lists alphas but no designer to fit it with"
                )
            if not entry.alphas:
                raise ValueError(f"encoder entry {entry.name!r} has an empty alphas list")
            for alpha in entry.alphas:
                designer = entry.designer.model_copy(
                    update={"config": {**entry.designer.config, "alpha": alpha}}
                )
                expanded.append(
                    entry.model_copy(
                        update={
                            "alphas": None,
                            "designer": designer,
                            "label": f"{entry.display_name} α={alpha:g}",
                        }
                    )
                )
        return expanded

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("a benchmark needs at least one seed")
        out_of_range = [seed for seed in value if not 0 <= seed < MAX_SEED]
        if out_of_range:
            raise ValueError(
                f"seeds must be integers from 0 to {MAX_SEED - 1} (numpy's and Python's random "
                f"generators take 32 bits); got {out_of_range}"
            )
        if len(set(value)) != len(value):
            raise ValueError(f"seeds must be distinct, got {value}")
        return value

    @model_validator(mode="after")
    def _evaluations_present(self) -> BenchmarkSpec:
        if not self.tasks and not self.attacks:
            raise ValueError("a benchmark needs at least one task or attack")
        labels = [e.display_name for e in self.encoders]
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ValueError(
                f"encoder entries {duplicates} appear more than once; give each a distinct 'label'"
            )
        return self

    # -- presets ------------------------------------------------------------------------
    def resolve(self, preset: str | None) -> BenchmarkSpec:
        """This spec with ``preset``'s overrides merged into dataset and evaluation configs."""
        preset = preset or self.default_preset
        if preset is None:
            return self
        if preset not in self.presets:
            raise ConfigError(
                f"Benchmark {self.name!r} has no preset {preset!r}; its presets are: "
                f"{', '.join(sorted(self.presets)) or 'none'}."
            )
        override = self.presets[preset]
        data = self.model_dump()
        data["dataset"]["config"] = deep_merge(data["dataset"]["config"], override.dataset)
        for group in ("tasks", "attacks"):
            for entry in data[group]:
                extra = override.evaluations.get(
                    entry["label"] or entry["name"]
                ) or override.evaluations.get(entry["name"])
                if extra:
                    entry["config"] = deep_merge(entry["config"], extra)
        for entry in data["encoders"]:
            designer = entry.get("designer")
            if designer and override.designers.get(designer["name"]):
                # The entry's own settings (its α above all) win over the preset's budget.
                designer["config"] = deep_merge(
                    override.designers[designer["name"]], designer["config"]
                )
        data["presets"] = {}
        data["default_preset"] = None
        data["preset"] = preset
        return BenchmarkSpec(**data)

    def fingerprint(self) -> str:
        return stable_hash(self.model_dump(mode="json"))

    def with_encoders(self, names: list[str]) -> BenchmarkSpec:
        """Keep only the encoder entries named (by label or registered name), in the given order."""
        chosen = []
        for wanted in names:
            matches = [e for e in self.encoders if wanted in (e.display_name, e.name)]
            if not matches:
                from privbench.api.registry import ENCODERS

                if wanted in ENCODERS:
                    matches = [ComponentSpec(name=wanted)]
                else:
                    ENCODERS.get(wanted)  # raises UnknownNameError with suggestions
            chosen.extend(m for m in matches if m not in chosen)
        data = self.model_dump()
        data["encoders"] = [m.model_dump() for m in chosen]
        return BenchmarkSpec(**data)


def deep_merge(base: dict, override: dict) -> dict:
    """``base`` with ``override`` merged in: nested mappings are merged key by key, anything else
    (numbers, strings, lists) is replaced. Neither argument is modified."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_spec(source: str | Path | dict | BenchmarkSpec) -> BenchmarkSpec:
    """A spec from a BenchmarkSpec, a dict, a YAML file path, or a registered benchmark name."""
    if isinstance(source, BenchmarkSpec):
        return source
    if isinstance(source, dict):
        return _validate(source, where="the spec dictionary")
    if not isinstance(source, (str, Path)):
        raise ConfigError(
            f"A benchmark spec is a BenchmarkSpec, a mapping, a YAML file path or a benchmark "
            f"name (see `privbench list benchmarks`); got {type(source).__name__}."
        )
    path = Path(source)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(
                f"Spec file {str(path)!r} does not exist (expected a YAML benchmark spec)."
            )
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise ConfigError(f"Spec file {str(path)!r} is not valid YAML: {error}") from None
        if not isinstance(raw, dict):
            raise ConfigError(
                f"Spec file {str(path)!r} must contain a YAML mapping with at least 'name' and "
                f"'encoders'; got {type(raw).__name__}."
            )
        return _validate(raw, where=f"spec file {str(path)!r}")
    return builtin_benchmark(str(source))


def _validate(raw: dict, *, where: str) -> BenchmarkSpec:
    from privbench.runs.spec_checks import check_keys, check_names

    check_keys(raw, where, "")
    try:
        spec = BenchmarkSpec.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, what=where, model=BenchmarkSpec)) from None
    check_names(spec, where)
    return spec


#: What ``privbench run`` runs without arguments.
DEFAULT_BENCHMARK = "synthfaces"
DEFAULT_PRESET = "quick"


def require_data_paths(spec: BenchmarkSpec, data_paths: dict[str, str]) -> BenchmarkSpec:
    """``spec`` with its ``${NAME}`` data paths filled from ``data_paths`` (see
    :mod:`privbench.data.paths`).

    Raises a MissingDataError naming every path still needed (and the layout each dataset
    expects), or naming ``data_paths`` entries the spec does not use.
    """
    from privbench.data.paths import resolve_paths

    dumped = spec.model_dump()
    preset = spec.preset if spec.preset not in (None, spec.default_preset, "paper") else None
    filled = resolve_paths(dumped, data_paths, spec.name, spec.paths, preset)
    if filled == dumped:
        return spec
    return BenchmarkSpec(**filled)


def resolve_spec(
    spec: Any = None,
    *,
    preset: str | None = None,
    encoders: list[str] | None = None,
    seed: int | None = None,
    data_paths: dict[str, str] | None = None,
    log: Callable[[str], None] | None = None,
    overrides: dict[str, Any] | None = None,
) -> BenchmarkSpec:
    """The spec a run executes: loaded, preset applied (the spec's default when None; the
    resolved spec's ``preset`` names it), data paths filled, ``overrides`` set
    (:func:`privbench.runs.overrides.apply_overrides`), restricted to ``encoders`` and to
    ``seed`` when given."""
    spec = load_spec(spec if spec is not None else DEFAULT_BENCHMARK)
    if preset is None and spec.presets:
        preset = spec.default_preset or (DEFAULT_PRESET if DEFAULT_PRESET in spec.presets else None)
    spec = spec.resolve(preset)
    from privbench.data.paths import unused_paths

    for name in unused_paths(spec.model_dump(), data_paths):
        (log or (lambda message: None))(
            f"--data {name}: not used by {spec.name} ({preset or 'default'} preset); ignored."
        )
    spec = require_data_paths(spec, data_paths or {})
    if overrides:
        from privbench.runs.overrides import apply_overrides

        spec = apply_overrides(spec, overrides)
    if encoders:
        spec = spec.with_encoders(encoders)
    if seed is not None:
        if not 0 <= seed < MAX_SEED:
            raise ConfigError(f"--seed must be an integer from 0 to {MAX_SEED - 1}; got {seed}.")
        spec = spec.model_copy(update={"seeds": [seed]})
    return spec


BUILTIN_DIR = Path(__file__).resolve().parent.parent / "specs"


def builtin_benchmark(name: str) -> BenchmarkSpec:
    from privbench.api.registry import BENCHMARKS

    factory = BENCHMARKS.get(name)
    return factory()


def _register_builtin_specs() -> None:
    from privbench.api.registry import BENCHMARKS

    for path in sorted(BUILTIN_DIR.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())

        def factory(raw=raw, path=path) -> BenchmarkSpec:
            return _validate(copy.deepcopy(raw), where=f"built-in benchmark {path.name}")

        factory.__doc__ = raw.get("description", "")
        BENCHMARKS.register(raw["name"])(factory)
