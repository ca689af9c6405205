"""Checks of a spec beyond its schema, before any work: every mapping key a string, every
component name registered (with suggestions), every ``data:`` source one of the dataset's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from privbench.api.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    from privbench.runs.spec import BenchmarkSpec


def check_keys(value: Any, where: str, path: str) -> None:
    """Every mapping key in a spec is a string (YAML reads ``1: 2`` as an integer key)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(
                    f"In {where}: the key {key!r} at {path or 'the top level'} is a "
                    f"{type(key).__name__}; spec keys are field names (strings), e.g. quote it."
                )
            check_keys(item, where, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_keys(item, where, f"{path}[{index}]")


def check_names(spec: BenchmarkSpec, where: str) -> None:
    """Fail early (before any training) on unknown component names, with suggestions."""
    from privbench.api.registry import ATTACKS, DATASETS, ENCODERS, TASKS

    for registry, entries in (
        (ENCODERS, spec.encoders),
        (TASKS, spec.tasks),
        (ATTACKS, spec.attacks),
    ):
        for entry in entries:
            try:
                registry.get(entry.name)
            except UnknownNameError as error:
                raise UnknownNameError(f"In {where}: {error}") from None
    for entry in spec.encoders:
        if entry.designer is not None:
            from privbench.api.registry import DESIGNERS

            try:
                DESIGNERS.get(entry.designer.name)
            except UnknownNameError as error:
                raise UnknownNameError(f"In {where}: {error}") from None
    try:
        builder = DATASETS.get(spec.dataset.name)
    except UnknownNameError as error:
        raise UnknownNameError(f"In {where}: {error}") from None
    check_data_sources(spec, builder, where)


def check_data_sources(spec: BenchmarkSpec, builder, where: str) -> None:
    """``data:`` of an evaluation or designer must name a source of a composite dataset."""
    routed = [(entry.display_name, entry.data) for entry in spec.tasks + spec.attacks if entry.data]
    routed += [
        (f"designer of {e.display_name}", e.designer.data)
        for e in spec.encoders
        if e.designer and e.designer.data
    ]
    if not routed:
        return
    labels = builder.source_labels(spec.dataset.config)
    if labels is None:
        raise ConfigError(
            f"In {where}: {routed[0][0]!r} reads 'data: {routed[0][1]}', but dataset "
            f"{spec.dataset.name!r} has no sources to choose from; 'data' is for the composite "
            "dataset (dataset: {name: composite, config: {sources: ...}})."
        )
    for owner, label in routed:
        if label not in labels:
            raise ConfigError(
                f"In {where}: {owner!r} reads 'data: {label}', but the composite dataset has no "
                f"source {label!r}; its sources are: {', '.join(labels) or 'none'}."
            )
