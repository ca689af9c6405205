"""Data paths given at run time: ``${NAME}`` placeholders in a spec, filled by ``--data NAME=PATH``.

A built-in spec cannot know where a user keeps VGGFace2 or COCO, so the paper presets write
``path: ${vggface2}`` (and ``${imagenet}``, ``${widerface}``, ...) wherever a dataset folder or a
local weights file goes. ``privbench run --data vggface2=/data/vggface2,imagenet=/data/ilsvrc``
(or ``privbench.run(..., data_paths={...})``) fills them in. Before any work the runner checks that
every placeholder has a path and that the path exists; otherwise one error lists exactly what is
still needed: each name, where the spec uses it, the option to pass, and (for a dataset adapter)
the folder layout it expects, the one ``privbench data layout NAME`` prints.

A placeholder is a whole string value ``${NAME}`` (NAME: letters, digits, ``-`` and ``_``). A name
that is a registered dataset must point at a folder; any other name (e.g. a weights file) at an
existing file or folder.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privbench.api.errors import DataError

PLACEHOLDER = re.compile(r"^\$\{([A-Za-z0-9_-]+)\}$")


class MissingDataError(DataError):
    """Placeholders of a spec still lack a path (or their path does not exist)."""


@dataclass
class PathNeed:
    name: str
    uses: list[str]  # where in the spec, e.g. "dataset.config.sources.faces.config.path"
    given: str | None = None
    problem: str = "not given"


def iter_placeholders(value: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """``(name, location)`` of every ``${NAME}`` string in a nested dict / list."""
    if isinstance(value, str):
        match = PLACEHOLDER.match(value.strip())
        if match:
            yield match.group(1), where
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_placeholders(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from iter_placeholders(item, f"{where}[{index}]")


def fill_placeholders(value: Any, paths: dict[str, str]) -> Any:
    """A copy of ``value`` with every ``${NAME}`` whose NAME is in ``paths`` replaced by its
    path."""
    if isinstance(value, str):
        match = PLACEHOLDER.match(value.strip())
        return str(paths[match.group(1)]) if match and match.group(1) in paths else value
    if isinstance(value, dict):
        return {key: fill_placeholders(item, paths) for key, item in value.items()}
    if isinstance(value, list):
        return [fill_placeholders(item, paths) for item in value]
    if isinstance(value, tuple):
        return tuple(fill_placeholders(item, paths) for item in value)
    return value


def spec_locations(spec_data: dict) -> Iterator[tuple[str, str]]:
    """Placeholders of a dumped BenchmarkSpec, with readable locations
    (``tasks[captioning].config...``)."""
    yield from iter_placeholders(spec_data.get("dataset", {}).get("config", {}), "dataset.config")
    for group in ("encoders", "tasks", "attacks"):
        for entry in spec_data.get(group, []):
            label = entry.get("label") or entry.get("name")
            yield from iter_placeholders(entry.get("config", {}), f"{group}[{label}].config")
            designer = entry.get("designer") or {}
            yield from iter_placeholders(
                designer.get("config", {}), f"{group}[{label}].designer.config"
            )


def is_dataset(name: str) -> bool:
    """Whether ``name`` is a registered dataset read from a folder (a folder adapter)."""
    from privbench.api.registry import DATASETS

    return name in DATASETS and DATASETS.get(name).layout is not None


def expected_layout(name: str) -> str | None:
    """The folder layout a dataset adapter declares (None for other names)."""
    if not is_dataset(name):
        return None
    from privbench.api.registry import DATASETS

    return DATASETS.get(name).layout.strip("\n") or None


def needs(spec_data: dict, paths: dict[str, str]) -> tuple[list[PathNeed], list[str]]:
    """The placeholders still lacking a usable path, and the names in ``paths`` the spec never
    uses."""
    uses: dict[str, list[str]] = {}
    for name, where in spec_locations(spec_data):
        uses.setdefault(name, []).append(where)
    missing = []
    for name, locations in uses.items():
        given = paths.get(name)
        if given is None:
            missing.append(PathNeed(name, locations))
            continue
        path = Path(given).expanduser()
        if is_dataset(name) and not path.is_dir():
            missing.append(
                PathNeed(
                    name, locations, given, "is not a folder" if path.exists() else "does not exist"
                )
            )
        elif not path.exists():
            missing.append(PathNeed(name, locations, given, "does not exist"))
    unused = sorted(set(paths) - set(uses))
    return missing, unused


def missing_paths_message(
    benchmark: str,
    missing: list[PathNeed],
    descriptions: dict[str, str],
    all_names: list[str],
    preset: str | None = None,
) -> str:
    lines = [
        f"Benchmark {benchmark!r} reads data you keep on disk; it still needs "
        + f"{len(missing)} path(s):"
    ]
    for need in missing:
        state = "not given" if need.given is None else f"{need.given!r} {need.problem}"
        what = descriptions.get(need.name) or (
            f"the {need.name} dataset's root folder"
            if is_dataset(need.name)
            else "a local file or folder"
        )
        lines.append(
            f"  {need.name} — {what}: {state}; pass --data {need.name}=PATH (used at "
            f"{', '.join(need.uses)})."
        )
        layout = expected_layout(need.name)
        if layout:
            lines.append(
                f"    expected layout (`privbench data layout {need.name}`, check with `privbench "
                f"data check {need.name} PATH`):"
            )
            lines.extend(f"    {line}" for line in layout.splitlines())
    example = ",".join(f"{name}=/path/to/{name}" for name in all_names)
    preset_option = f" --preset {preset}" if preset else ""
    lines.append(
        f"Run: privbench run --benchmark {benchmark}{preset_option} --data {example}  (in Python: "
        f"privbench.run(..., data_paths={{...}}))."
    )
    return "\n".join(lines)


def resolve_paths(
    spec_data: dict,
    paths: dict[str, str] | None,
    benchmark: str,
    descriptions: dict[str, str] | None = None,
    preset: str | None = None,
) -> dict:
    """``spec_data`` with its placeholders filled from ``paths``; a MissingDataError lists what is
    still needed.

    Names in ``paths`` that the spec does not use are ignored (one command line can serve several
    presets: the ``smoke`` presets need no weights file); :func:`unused_paths` lists them.
    """
    paths = {name: str(path) for name, path in (paths or {}).items()}
    missing, _ = needs(spec_data, paths)
    names = list(dict.fromkeys(name for name, _ in spec_locations(spec_data)))
    if missing:
        raise MissingDataError(
            missing_paths_message(benchmark, missing, descriptions or {}, names, preset)
        )
    return fill_placeholders(spec_data, paths)


def unused_paths(spec_data: dict, paths: dict[str, str] | None) -> list[str]:
    """Names in ``paths`` that no placeholder of ``spec_data`` uses."""
    return sorted(set(paths or {}) - {name for name, _ in spec_locations(spec_data)})


def parse_data_option(values: list[str]) -> dict[str, str]:
    """``["vggface2=/a,imagenet=/b", "fddb=/c"]`` → ``{"vggface2": "/a", "imagenet": "/b",
    "fddb": "/c"}``."""
    paths: dict[str, str] = {}
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            name, sep, path = item.partition("=")
            name, path = name.strip(), path.strip()
            if not sep or not name or not path or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
                raise DataError(
                    f"--data expects NAME=PATH pairs separated by commas (e.g. "
                    f"vggface2=/data/vggface2,imagenet=/data/ilsvrc); got {item!r}."
                )
            if name in paths and paths[name] != path:
                raise DataError(
                    f"--data gives two paths for {name!r}: {paths[name]!r} and {path!r}."
                )
            paths[name] = path
    return paths
