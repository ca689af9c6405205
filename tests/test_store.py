"""The results store: rows round-trip, the cell key stays unique, the schema is versioned, and a
store written before the schema was versioned is upgraded on open with its rows unchanged."""

import json
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from privbench.api.errors import StoreError
from privbench.runs.migrations import UNVERSIONED_REVISION, alembic_config, head_revision
from privbench.runs.store import JSON_COLUMNS, ResultRow, ResultStore, metadata, results_table

#: The table exactly as the unversioned privbench (≤ 0.1) created it: copied from the
#: ``sqlite_master`` of a results.db that version wrote.
UNVERSIONED_DDL = """CREATE TABLE results (
    id INTEGER NOT NULL, cell_key VARCHAR(64) NOT NULL, benchmark VARCHAR(128) NOT NULL,
    benchmark_version VARCHAR(32) NOT NULL, preset VARCHAR(64), dataset VARCHAR(128) NOT NULL,
    dataset_fingerprint VARCHAR(64) NOT NULL, encoder VARCHAR(128) NOT NULL,
    encoder_label VARCHAR(128) NOT NULL, encoder_config TEXT NOT NULL,
    encoder_config_hash VARCHAR(32) NOT NULL, encoder_weights_hash VARCHAR(32),
    encoder_description TEXT, alpha FLOAT, evaluation VARCHAR(128) NOT NULL,
    evaluation_version VARCHAR(32) NOT NULL, evaluation_config TEXT NOT NULL,
    role VARCHAR(16) NOT NULL, protocol VARCHAR(32), seed INTEGER NOT NULL, metrics TEXT NOT NULL,
    headline_metric VARCHAR(64) NOT NULL, headline_value FLOAT, higher_is_better BOOLEAN NOT NULL,
    chance FLOAT, details TEXT, wall_time_s FLOAT, device VARCHAR(64), package_versions TEXT,
    git_commit VARCHAR(64), study VARCHAR(128), trial INTEGER, source VARCHAR(16) NOT NULL,
    created_at VARCHAR(40) NOT NULL, PRIMARY KEY (id), UNIQUE (cell_key)
)"""


def _row(index: int, **overrides) -> ResultRow:
    values = {
        "cell_key": f"cell{index:02d}",
        "benchmark": "b",
        "benchmark_version": "1",
        "dataset": "d",
        "dataset_fingerprint": "f" * 16,
        "encoder": "gaussian-blur",
        "encoder_label": f"gaussian-blur σ={index}",
        "encoder_config": {"sigma_px": float(index), "kernel": [3, 5]},
        "encoder_config_hash": "h" * 16,
        "evaluation": "face-id",
        "evaluation_version": "2",
        "evaluation_config": {"epochs": 2, "classifier": {"width": 16}},
        "role": "privacy",
        "protocol": "retrained",
        "seed": index,
        "metrics": {"top1": 0.25 * index, "top5": 0.5},
        "headline_metric": "top1",
        "headline_value": 0.25 * index,
        "chance": 0.025,
        "encoder_weights_hash": None,
        "encoder_description": {"name": "blur <&>"},
        "details": {"training": {"epochs": [1, 2]}, "checkpoint": Path("/tmp/x.pt")},
        "wall_time_s": 1.5,
        "device": "cpu",
        "package_versions": {"torch": "2.1"},
        "created_at": "2026-12-01T00:00:00+00:00",
    }
    return ResultRow(**{**values, **overrides})


def _legacy_record(row: ResultRow) -> dict:
    """``row`` as the unversioned store wrote it: JSON columns as sorted ``json.dumps`` text."""
    record = dict(row.__dict__)
    for column in JSON_COLUMNS:
        record[column] = json.dumps(record[column], sort_keys=True, default=str)
    return record


def _write_unversioned_store(path: Path, rows: list[ResultRow]) -> None:
    connection = sqlite3.connect(path)
    connection.execute(UNVERSIONED_DDL)
    for row in rows:
        record = _legacy_record(row)
        names = ", ".join(record)
        marks = ", ".join(f":{name}" for name in record)
        connection.execute(f"INSERT INTO results ({names}) VALUES ({marks})", record)
    connection.commit()
    connection.close()


def _column_types(path: Path) -> dict[str, str]:
    return {row[1]: row[2] for row in sqlite3.connect(path).execute("PRAGMA table_info(results)")}


def test_rows_round_trip_with_json_columns_decoded(tmp_path):
    store = ResultStore(f"sqlite:///{tmp_path / 'results.db'}")
    assert store.add(_row(1)) and store.add(_row(2))
    assert len(store) == 2 and store.has("cell01") and not store.has("cell09")
    assert store.cell_keys() == {"cell01", "cell02"}
    frame = store.dataframe()
    assert list(frame["cell_key"]) == ["cell01", "cell02"]
    first = frame.iloc[0]
    assert first["metrics"] == {"top1": 0.25, "top5": 0.5}
    assert first["evaluation_config"] == {"epochs": 2, "classifier": {"width": 16}}
    # A value JSON does not know is stored as its string, as the store always did.
    assert first["details"] == {"training": {"epochs": [1, 2]}, "checkpoint": "/tmp/x.pt"}
    assert first["encoder_weights_hash"] is None and first["higher_is_better"]
    assert store.dataframe(benchmark="other").empty
    assert list(store.dataframe(study=None)["cell_key"]) == ["cell01", "cell02"]


def test_cell_key_is_unique(tmp_path):
    store = ResultStore(f"sqlite:///{tmp_path / 'results.db'}")
    assert store.add(_row(1))
    assert not store.add(_row(1, seed=99))
    assert len(store) == 1 and int(store.dataframe()["seed"].iloc[0]) == 1


def test_stored_json_text_is_sorted_and_stable(tmp_path):
    path = tmp_path / "results.db"
    ResultStore(f"sqlite:///{path}").add(_row(3, metrics={"top5": 0.5, "top1": 0.75}))
    raw = sqlite3.connect(path).execute("SELECT metrics, details FROM results").fetchone()
    assert raw[0] == '{"top1": 0.75, "top5": 0.5}'
    assert raw[1] == json.dumps(_row(3).details, sort_keys=True, default=str)


def test_json_columns_of_the_row_are_the_json_columns_of_the_table():
    declared = tuple(c.name for c in results_table.columns if isinstance(c.type, sa.JSON))
    assert declared == JSON_COLUMNS


def test_new_store_is_at_the_newest_revision_and_matches_the_table(tmp_path):
    path = tmp_path / "results.db"
    store = ResultStore(f"sqlite:///{path}")
    assert store.schema_revision == head_revision() != UNVERSIONED_REVISION
    connection = sqlite3.connect(path)
    assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [
        (head_revision(),)
    ]
    assert {column: _column_types(path)[column] for column in JSON_COLUMNS} == dict.fromkeys(
        JSON_COLUMNS, "JSON"
    )
    # The migrations build exactly the table the store declares: nothing left to autogenerate.
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    assert ResultStore(f"sqlite:///{path}").schema_revision == head_revision()  # reopen: no-op


def test_unversioned_store_is_upgraded_on_open_with_the_same_rows(tmp_path):
    rows = [_row(index) for index in range(1, 6)]
    old_path, new_path = tmp_path / "old.db", tmp_path / "new.db"
    _write_unversioned_store(old_path, rows)
    assert _column_types(old_path)["metrics"] == "TEXT"

    upgraded = ResultStore(f"sqlite:///{old_path}")
    assert upgraded.schema_revision == head_revision()
    assert _column_types(old_path)["metrics"] == "JSON"
    written = ResultStore(f"sqlite:///{new_path}")
    for row in rows:
        written.add(row)
    assert upgraded.dataframe().equals(written.dataframe())
    assert upgraded.dataframe()["metrics"].iloc[2] == {"top1": 0.75, "top5": 0.5}
    # The stored text itself is untouched, and the cell key is still unique after the rebuild.
    old_text = sqlite3.connect(old_path).execute("SELECT metrics FROM results").fetchall()
    assert old_text == [(_legacy_record(row)["metrics"],) for row in rows]
    assert not upgraded.add(_row(1, seed=7)) and upgraded.add(_row(6))
    assert len(upgraded) == 6


def test_downgrade_returns_the_unversioned_layout(tmp_path):
    path = tmp_path / "results.db"
    store = ResultStore(f"sqlite:///{path}")
    store.add(_row(1))
    with store.engine.begin() as connection:
        command.downgrade(alembic_config(connection), UNVERSIONED_REVISION)
    assert _column_types(path)["metrics"] == "TEXT"
    raw = sqlite3.connect(path).execute("SELECT metrics FROM results").fetchone()[0]
    assert json.loads(raw) == {"top1": 0.25, "top5": 0.5}
    assert ResultStore(f"sqlite:///{path}").dataframe()["metrics"].iloc[0] == json.loads(raw)


def test_store_from_a_newer_privbench_is_refused_by_name(tmp_path):
    path = tmp_path / "results.db"
    ResultStore(f"sqlite:///{path}")
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StoreError, match="revision '9999'.*newer privbench"):
        ResultStore(f"sqlite:///{path}")


def test_bad_store_urls_name_the_problem(tmp_path):
    with pytest.raises(StoreError, match="SQLAlchemy URL"):
        ResultStore("nosuchdb://x")
    with pytest.raises(StoreError, match="does not exist"):
        ResultStore(f"sqlite:///{tmp_path / 'missing' / 'results.db'}")


def test_failed_migration_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    _write_unversioned_store(path, [_row(1), _row(2)])
    before = path.read_bytes()
    real_upgrade = command.upgrade

    def upgrade_then_fail(config, revision):
        real_upgrade(config, revision)  # every revision applied, then the process dies
        raise sa.exc.OperationalError("upgrade", {}, Exception("disk I/O error"))

    monkeypatch.setattr(command, "upgrade", upgrade_then_fail)
    with pytest.raises(StoreError, match="Cannot open the results store"):
        ResultStore(f"sqlite:///{path}")
    assert path.read_bytes() == before
    monkeypatch.setattr(command, "upgrade", real_upgrade)
    assert len(ResultStore(f"sqlite:///{path}")) == 2


def test_in_memory_store(tmp_path):
    store = ResultStore("sqlite://")
    assert store.schema_revision == head_revision()
    assert store.add(_row(1)) and len(store) == 1
