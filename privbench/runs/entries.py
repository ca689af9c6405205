"""Leaderboard entries as data: one JSON file per encoder configuration and benchmark.

A store is one group's private record; an entry is what a researcher publishes (RobustBench's
one JSON per model): the benchmark, its version and the dataset fingerprint, the encoder's
config and card, its fitted weights as a ``safetensors`` file beside the JSON with the file's
SHA-256, every cell's raw result row with its provenance, and the utility/privacy scores with
their intervals as computed at export. ``privbench export`` writes entries from a store,
``privbench validate`` checks one, and ``privbench leaderboard --entries DIR`` ranks a folder of
entries from many people exactly as it ranks a store (the scores are recomputed from the cells:
a folder needs the benchmark's ``identity`` entry, the clean reference). The schema is
:class:`LeaderboardEntry`, published as ``leaderboard/entry.schema.json``.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field

from privbench.api.cache import load_verified
from privbench.api.config import file_sha256, read_json_object, validate_config
from privbench.api.encoder import state_hash
from privbench.api.errors import ConfigError, DataError
from privbench.runs.rows import JSON_COLUMNS, ResultRow, git_commit, package_versions
from privbench.runs.scores import is_missing, leaderboard_table, split_groups

SCHEMA_VERSION = 1
#: Where the JSON Schema of :class:`LeaderboardEntry` is published (a test keeps it current).
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "leaderboard" / "entry.schema.json"
ENTRY_COLUMNS = ("encoder_label", "encoder_config_hash", "encoder_weights_hash")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class EntryBenchmark(_Strict):
    name: str
    version: str
    dataset: str
    dataset_fingerprint: str
    preset: str | None = None


class EntryEncoder(_Strict):
    label: str
    name: str
    config: dict[str, Any]
    config_hash: str
    weights_hash: str | None = None
    alpha: float | None = None
    designer: str | None = None
    card: dict[str, Any] = Field(
        default_factory=dict, description="the encoder's physical description (units in keys)"
    )
    design_history: list[dict[str, Any]] = Field(
        default_factory=list, description="the designer's per-cycle records (learned encoders)"
    )


class EntryWeights(_Strict):
    file: str = Field(description="the safetensors file beside the entry, by name")
    sha256: str
    format: Literal["safetensors"] = "safetensors"


class EntryScores(_Strict):
    utility: float | None = None
    privacy: float | None = None
    worst_attack: str | None = None
    utility_lo: float | None = None
    utility_hi: float | None = None
    privacy_lo: float | None = None
    privacy_hi: float | None = None
    interval: str | None = None


class LeaderboardEntry(_Strict):
    """One encoder configuration's results on one benchmark (see the module docstring)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    benchmark: EntryBenchmark
    encoder: EntryEncoder
    weights: EntryWeights | None = None
    scores: EntryScores = Field(
        default_factory=EntryScores,
        description="as computed at export, for reading; leaderboards recompute them from cells",
    )
    cells: list[ResultRow] = Field(min_length=1)
    provenance: dict[str, Any] = Field(default_factory=dict)


def entry_schema() -> dict[str, Any]:
    return LeaderboardEntry.model_json_schema()


# -- export ------------------------------------------------------------------------------
def export_entries(
    rows: pd.DataFrame, out_dir: str | Path, *, cache_root: str | Path | None = None
) -> list[Path]:
    """One entry file per encoder configuration of each (benchmark, version, dataset) group of
    ``rows`` (measured rows of runs, not tuning trials), under ``out_dir/<benchmark>-v<version>/``;
    a learned encoder's fitted weights are looked up in the artifact cache at ``cache_root``
    (the run's ``--cache-dir``) and written beside it."""
    rows = rows[rows["study"].isna() & (rows["source"].fillna("measured") == "measured")]
    if rows.empty:
        raise DataError("There are no measured rows to export (tuning trials are not exported).")
    fits = _fitted(cache_root)
    written = []
    for (benchmark, version, fingerprint), group in split_groups(rows):
        folder = Path(out_dir) / _slug(f"{benchmark}-v{version}-{fingerprint[:8]}")
        folder.mkdir(parents=True, exist_ok=True)
        table = leaderboard_table(group).set_index(["encoder", "config_hash"], drop=False)
        for (label, config_hash, weights_hash), cells in group.groupby(
            list(ENTRY_COLUMNS), dropna=False, sort=False
        ):
            stem = _slug(f"{label}-{config_hash[:8]}")
            weights_hash = None if is_missing(weights_hash) else weights_hash
            weights, fitted = None, fits.get(weights_hash) if weights_hash is not None else None
            if fitted is not None:
                weights = _write_weights(fitted["state"], folder / f"{stem}.safetensors")
            entry = _entry(cells, table.loc[(label, config_hash)], weights)
            if fitted is not None:
                entry.encoder.design_history = list(fitted.get("history") or [])
            path = folder / f"{stem}.json"
            path.write_text(entry.model_dump_json(indent=1) + "\n")
            written.append(path)
    return written


def _entry(cells: pd.DataFrame, scores: pd.Series, weights: EntryWeights | None):
    first = cells.iloc[0]
    if isinstance(scores, pd.DataFrame):  # two entries with one label and config: first wins
        scores = scores.iloc[0]
    return LeaderboardEntry(
        benchmark=EntryBenchmark(
            name=first["benchmark"],
            version=first["benchmark_version"],
            dataset=first["dataset"],
            dataset_fingerprint=first["dataset_fingerprint"],
            preset=None if is_missing(first["preset"]) else first["preset"],
        ),
        encoder=EntryEncoder(
            label=first["encoder_label"],
            name=first["encoder"],
            config=first["encoder_config"],
            config_hash=first["encoder_config_hash"],
            weights_hash=None
            if is_missing(first["encoder_weights_hash"])
            else first["encoder_weights_hash"],
            alpha=None if is_missing(first["alpha"]) else float(first["alpha"]),
            designer=first["details"].get("designer"),
            card=first["encoder_description"],
        ),
        weights=weights,
        scores=EntryScores(
            **{
                name: None if is_missing(scores.get(name)) else scores.get(name)
                for name in EntryScores.model_fields
            }
        ),
        cells=[_row(record) for record in cells.to_dict("records")],
        provenance={
            "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "exported_by": {"git_commit": git_commit(), **package_versions()},
        },
    )


def _row(record: dict[str, Any]) -> ResultRow:
    fields = ResultRow.__dataclass_fields__
    values = {k: (None if is_missing(v) else v) for k, v in record.items() if k in fields}
    return ResultRow(**values)


def _fitted(cache_root: str | Path | None) -> dict[str, dict[str, Any]]:
    """Every designer fit in the cache's ``fitted`` artifacts (its state and history), by the
    weights hash of its state."""
    if cache_root is None:
        return {}
    fits = {}
    for path in sorted((Path(cache_root) / "fitted").glob("*.pt")):
        fitted = load_verified(path)  # a damaged artifact cannot be the source of weights
        if isinstance(fitted, dict) and "state" in fitted:
            fits[state_hash(fitted["state"])] = fitted
    return fits


def _write_weights(state: dict[str, torch.Tensor], path: Path) -> EntryWeights:
    from safetensors.torch import save_file

    save_file({key: value.contiguous() for key, value in state.items()}, str(path))
    return EntryWeights(file=path.name, sha256=file_sha256(path))


# -- reading and checking -------------------------------------------------------------------
def read_entry(path: str | Path) -> LeaderboardEntry:
    """The entry in ``path``, validated against the schema (a ConfigError names what is wrong)."""
    path = Path(path)
    raw = read_json_object(path, "Entry")
    if raw.get("schema_version") not in (None, SCHEMA_VERSION):
        raise ConfigError(
            f"Entry {str(path)!r} has schema_version {raw.get('schema_version')!r}; this "
            f"privbench reads schema_version {SCHEMA_VERSION} (upgrade privbench to read it)."
        )
    return validate_config(LeaderboardEntry, raw, what=f"entry {str(path)!r}")


def validate_entry(path: str | Path) -> list[str]:
    """Every problem of the entry in ``path`` (empty: it is valid): the schema, its cells
    belonging to its benchmark and encoder, the weights file's hash and the weights' own hash,
    and its benchmark version against the installed benchmark of that name."""
    path = Path(path)
    return entry_problems(read_entry(path), path.parent)


def read_valid_entry(path: str | Path) -> LeaderboardEntry:
    """The entry in ``path``, read once; a ConfigError listing its problems if it has any."""
    path = Path(path)
    entry = read_entry(path)
    problems = entry_problems(entry, path.parent)
    if problems:
        raise ConfigError(f"Entry {str(path)!r} is not valid: {'; '.join(problems)}.")
    return entry


def entry_problems(entry: LeaderboardEntry, folder: Path) -> list[str]:
    """What :func:`validate_entry` checks, of an entry already read from ``folder``."""
    problems = []
    bench, encoder = entry.benchmark, entry.encoder
    for index, cell in enumerate(entry.cells):
        expected = {
            "benchmark": bench.name,
            "benchmark_version": bench.version,
            "dataset_fingerprint": bench.dataset_fingerprint,
            "encoder_label": encoder.label,
            "encoder_config_hash": encoder.config_hash,
            "encoder_weights_hash": encoder.weights_hash,
        }
        for field, value in expected.items():
            if getattr(cell, field) != value:
                problems.append(
                    f"cell {index} ({cell.evaluation}) has {field} {getattr(cell, field)!r}, "
                    f"the entry {value!r}"
                )
    problems += _weights_problems(entry, folder)
    problems += _benchmark_problems(entry)
    return problems


def _weights_problems(entry: LeaderboardEntry, folder: Path) -> list[str]:
    if entry.weights is None:
        return []
    weights = folder / entry.weights.file
    if not weights.is_file():
        return [f"the weights file {entry.weights.file!r} is not beside the entry"]
    digest = file_sha256(weights)
    if digest != entry.weights.sha256:
        return [f"{entry.weights.file} has SHA-256 {digest}, the entry says {entry.weights.sha256}"]
    from safetensors.torch import load_file

    state = load_file(str(weights))
    if state_hash(state) != entry.encoder.weights_hash:
        return [
            f"the weights in {entry.weights.file} hash to {state_hash(state)}, but the entry's "
            f"cells were measured with {entry.encoder.weights_hash}"
        ]
    return []


def _benchmark_problems(entry: LeaderboardEntry) -> list[str]:
    from privbench.api.errors import UnknownNameError
    from privbench.runs.spec import builtin_benchmark

    try:
        installed = builtin_benchmark(entry.benchmark.name)
    except UnknownNameError:
        return []  # a user's own benchmark: nothing installed to compare with
    if installed.version != entry.benchmark.version:
        return [
            f"benchmark {entry.benchmark.name!r} is version {entry.benchmark.version} in the entry "
            f"but version {installed.version} in this privbench: its cells are not comparable"
        ]
    return []


def entries_dataframe(folder: str | Path) -> pd.DataFrame:
    """The cells of every entry under ``folder`` (searched recursively) as the rows a store
    returns (:meth:`ResultStore.dataframe`), so that a folder ranks exactly like a store. A
    folder with an invalid entry is an error naming it."""
    paths = sorted(Path(folder).rglob("*.json"))
    if not paths:
        raise DataError(f"There are no entry files (*.json) under {str(folder)!r}.")
    records = []
    for path in paths:
        records += [cell.to_record() for cell in read_valid_entry(path).cells]
    frame = pd.DataFrame.from_records(records)
    for column in JSON_COLUMNS:
        frame[column] = frame[column].map(lambda value: {} if value is None else value)
    return frame


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+=-]+", "_", text.replace("α", "alpha")).strip("_")


def entry_encoder(path: str | Path):
    """The encoder an entry measured, rebuilt from its config with its weights file (checked
    against the entry's weights hash); returns ``(encoder, entry)``."""
    from privbench.api.registry import get_encoder

    path = Path(path)
    entry = read_valid_entry(path)
    encoder = get_encoder(entry.encoder.name, **entry.encoder.config)
    if entry.weights is not None:
        from safetensors.torch import load_file

        encoder.load_state_dict(load_file(str(path.parent / entry.weights.file)), strict=True)
    elif encoder.learnable:
        raise ConfigError(
            f"Entry {str(path)!r} is a learned encoder but carries no weights file (export it "
            "with the run's --cache-dir so its fitted weights are found)."
        )
    if encoder.weights_hash() != entry.encoder.weights_hash:
        raise ConfigError(
            f"Entry {str(path)!r}: the rebuilt encoder's weights hash {encoder.weights_hash()} is "
            f"not the entry's {entry.encoder.weights_hash}."
        )
    return encoder.eval(), entry
