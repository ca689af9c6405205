"""``privbench run --set KEY=VALUE``: override any field of a resolved spec from the command line.

A KEY is a dotted path. Two prefixes address entries by name, as a preset does:

- ``evaluations.NAME.FIELD...``: the config of the task or attack entry labelled or named NAME
  (``--set evaluations.face-id.training.epochs=3``; every entry of that name when several share
  it, e.g. the four ``face-detection-attack`` protocols);
- ``designers.NAME.FIELD...``: the config of every encoder entry's designer of that name
  (``--set designers.adversarial.cycles=2``).

Any other path walks the spec itself (``seeds=[0,1]``, ``dataset.config.preset=tiny``,
``encoders.1.config.sigma_px=4``: a number indexes a list). The result is validated like a
spec file: a value of the wrong type, an unknown component field or a path that leads nowhere
is a ConfigError naming the KEY.
"""

from __future__ import annotations

from typing import Any

from privbench.api.config import validate_config
from privbench.api.errors import ConfigError
from privbench.runs.spec import BenchmarkSpec, deep_merge


def apply_overrides(spec: BenchmarkSpec, overrides: dict[str, Any]) -> BenchmarkSpec:
    """``spec`` with each ``KEY: value`` of ``overrides`` set (see the module docstring)."""
    if not overrides:
        return spec
    data = spec.model_dump()
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if head == "evaluations":
            _set_in_entries(data["tasks"] + data["attacks"], key, rest, value, "task or attack")
        elif head == "designers":
            designers = [e["designer"] for e in data["encoders"] if e.get("designer")]
            _set_in_entries(designers, key, rest, value, "designer")
        else:
            _set_path(data, key, key.split("."), value)
    return validate_config(BenchmarkSpec, data, what=f"the spec after --set {', '.join(overrides)}")


def _set_in_entries(entries: list[dict], key: str, rest: str, value: Any, kind: str) -> None:
    """``rest`` = ``NAME.FIELD...``: set FIELD... in the config of every entry NAME labels or
    names. The NAME may itself contain dots only as the entries' labels do."""
    names = {entry.get("label") or entry["name"] for entry in entries} | {
        entry["name"] for entry in entries
    }
    for name in sorted(names, key=len, reverse=True):  # the longest label that fits wins
        if rest.startswith(name + "."):
            field_path = rest[len(name) + 1 :].split(".")
            break
    else:
        if rest in names:
            raise ConfigError(
                f"--set {key}: name a field of the {rest} config after it, e.g. "
                f"--set {key}.FIELD=VALUE."
            )
        raise ConfigError(
            f"--set {key}: no {kind} entry of the spec is named by its start; the entries are: "
            f"{', '.join(sorted(names)) or 'none'} (e.g. --set evaluations.NAME.FIELD=VALUE)."
        )
    for entry in entries:
        if name in (entry.get("label"), entry["name"]):
            nested: Any = value
            for field in reversed(field_path):
                nested = {field: nested}
            entry["config"] = deep_merge(entry.get("config") or {}, nested)


def _set_path(node: Any, key: str, path: list[str], value: Any) -> None:
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(
                    f"--set {key}: {'.'.join(path[:depth]) or 'the spec'} is a list of "
                    f"{len(node)}; {part!r} is not an index of it (0 to {len(node) - 1})."
                )
            index: Any = int(part)
        elif isinstance(node, dict):
            if part not in node and "config" not in path[:depth]:  # configs take new keys
                raise ConfigError(
                    f"--set {key}: {'.'.join(path[:depth]) or 'the spec'} has no field {part!r}; "
                    f"its fields are: {', '.join(sorted(map(str, node))) or 'none'}."
                )
            index = part
        else:
            raise ConfigError(
                f"--set {key}: {'.'.join(path[:depth])} is a value ({node!r}), not a mapping or "
                "a list."
            )
        if last:
            node[index] = value
            return
        if isinstance(node, dict) and node.get(index) is None:
            node[index] = {}
        node = node[index]
