"""The results store on SQLite: rows round-trip, the cell key stays unique (also between two
processes writing at once), failures are recorded and cleared, readers read while a writer
writes (WAL), the schema is versioned, and a store written before the schema was versioned is
upgraded on open with its rows unchanged. tests/test_store_postgres.py runs the same on a real
PostgreSQL server."""

import json
import sqlite3
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from support.postgres import add_rows_worker, record_failure_worker, run_concurrently
from support.postgres import sample_row as _row

from privbench.api.errors import StoreError
from privbench.runs.migrations import UNVERSIONED_REVISION, alembic_config, head_revision
from privbench.runs.store import (
    JSON_COLUMNS,
    ResultStore,
    engine_url,
    failures_table,
    metadata,
    results_table,
)

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


#: Columns that later revisions added (absent from the unversioned layout).
ADDED_COLUMNS = ("execution",)


def _legacy_record(row) -> dict:
    """``row`` as the unversioned store wrote it: JSON columns as sorted ``json.dumps`` text."""
    record = {k: v for k, v in row.__dict__.items() if k not in ADDED_COLUMNS}
    for column in JSON_COLUMNS:
        if column in record:
            record[column] = json.dumps(record[column], sort_keys=True, default=str)
    return record


def _write_unversioned_store(path: Path, rows: list) -> None:
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
    assert first["execution"] == {}  # a row that does not say what ran it
    assert store.dataframe(benchmark="other").empty
    assert list(store.dataframe(study=None)["cell_key"]) == ["cell01", "cell02"]


def test_execution_says_what_ran_the_cell(tmp_path):
    store = ResultStore(f"sqlite:///{tmp_path / 'results.db'}")
    execution = {"threads": 1, "worker": "123@node-2", "engine": "ray"}
    store.add(_row(1, execution=execution))
    assert store.dataframe()["execution"].iloc[0] == execution


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
    # The migrations build exactly the tables the store declares: nothing left to autogenerate.
    with store.engine.connect() as connection:
        assert set(sa.inspect(connection).get_table_names()) == {
            "alembic_version",
            "results",
            "failures",
        }
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


def test_downgrade_from_the_head_drops_the_failures_table_and_keeps_the_rows(tmp_path):
    path = tmp_path / "results.db"
    store = ResultStore(f"sqlite:///{path}")
    store.add(_row(1, execution={"engine": "ray"}))
    with store.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0002")
    with store.engine.connect() as connection:
        assert "failures" not in sa.inspect(connection).get_table_names()
    assert "execution" not in _column_types(path) and "metrics" in _column_types(path)
    reopened = ResultStore(f"sqlite:///{path}")  # upgraded again on open
    assert reopened.dataframe()["execution"].iloc[0] == {} and len(reopened) == 1


def test_bad_store_urls_name_the_problem(tmp_path):
    with pytest.raises(StoreError, match="SQLAlchemy URL"):
        ResultStore("nosuchdb://x")
    with pytest.raises(StoreError, match="SQLAlchemy URL"):
        ResultStore("not a url")
    with pytest.raises(StoreError, match="does not exist"):
        ResultStore(f"sqlite:///{tmp_path / 'missing' / 'results.db'}")


def test_failed_migration_leaves_the_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    _write_unversioned_store(path, [_row(1), _row(2)])
    before = list(sqlite3.connect(path).iterdump())  # every table and row (not the WAL header)
    real_upgrade = command.upgrade

    def upgrade_then_fail(config, revision):
        real_upgrade(config, revision)  # every revision applied, then the process dies
        raise sa.exc.OperationalError("upgrade", {}, Exception("disk I/O error"))

    monkeypatch.setattr(command, "upgrade", upgrade_then_fail)
    with pytest.raises(StoreError, match="Cannot open the results store"):
        ResultStore(f"sqlite:///{path}")
    assert list(sqlite3.connect(path).iterdump()) == before
    monkeypatch.setattr(command, "upgrade", real_upgrade)
    assert len(ResultStore(f"sqlite:///{path}")) == 2


def test_in_memory_store(tmp_path):
    store = ResultStore("sqlite://")
    assert store.schema_revision == head_revision()
    assert store.add(_row(1)) and len(store) == 1


# -- WAL: readers read while a writer writes -----------------------------------------------------
def test_sqlite_store_is_in_wal_mode_with_a_busy_timeout(tmp_path):
    store = ResultStore(f"sqlite:///{tmp_path / 'results.db'}")
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    # WAL belongs to the file: a plain connection (another program) finds it too.
    mode = sqlite3.connect(tmp_path / "results.db").execute("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)


def test_a_reader_reads_while_another_connection_holds_a_write_transaction(tmp_path):
    path = tmp_path / "results.db"
    ResultStore(f"sqlite:///{path}").add(_row(1))
    # The writer (a run) holds an exclusive write transaction: in the rollback-journal mode this
    # locks readers out; in WAL they read the last committed state.
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("UPDATE results SET seed = 99")
    writer.execute("DELETE FROM results WHERE cell_key = 'nothing'")
    reader = ResultStore(f"sqlite:///{path}")  # privbench leaderboard, opened meanwhile
    assert len(reader) == 1 and int(reader.dataframe()["seed"].iloc[0]) == 1
    assert reader.failures().empty
    writer.execute("COMMIT")
    assert int(reader.dataframe()["seed"].iloc[0]) == 99
    writer.close()


# -- failures -----------------------------------------------------------------------------------
def test_failures_are_upserted_counted_and_cleared_by_the_result(tmp_path):
    store = ResultStore(f"sqlite:///{tmp_path / 'results.db'}")
    assert store.failures().empty
    store.record_failure("cell01", "blur × face-id", "b", "1", "RuntimeError: NaN loss")
    store.record_failure("cell01", "blur × face-id", "b", "1", "RuntimeError: out of memory")
    store.record_failure("cell02", "blur × detection", "other", "3", "ValueError: bad box")
    failures = store.failures()
    assert list(failures["cell_key"]) == ["cell01", "cell02"]
    first = failures.iloc[0]
    assert (first["attempts"], first["reason"]) == (2, "RuntimeError: out of memory")
    assert (first["cell_name"], first["benchmark"], first["benchmark_version"]) == (
        "blur × face-id",
        "b",
        "1",
    )
    assert list(store.failures(benchmark="other")["cell_key"]) == ["cell02"]
    # A failed cell is not a stored one: a rerun retries it.
    assert store.cell_keys() == set() and not store.has("cell01")

    assert store.add(_row(1))
    assert list(store.failures()["cell_key"]) == ["cell02"]
    with store.engine.connect() as connection:
        keys = connection.execute(sa.select(failures_table.c.cell_key)).scalars().all()
    assert keys == ["cell02"]  # deleted, not only hidden
    # A duplicate add changes nothing, and a failure of a stored cell is not listed as one.
    store.record_failure("cell01", "blur × face-id", "b", "1", "late report of another driver")
    assert not store.add(_row(1)) and list(store.failures()["cell_key"]) == ["cell02"]
    assert store.cell_keys() == {"cell01"}


# -- two processes on one store -----------------------------------------------------------------
def test_two_processes_adding_the_same_rows_store_each_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'results.db'}"
    inserted = run_concurrently(add_rows_worker, url, list(range(50)))
    assert sum(inserted) == 50
    store = ResultStore(url)
    assert len(store) == 50 and store.cell_keys() == {f"cell{i:02d}" for i in range(50)}


def test_two_processes_recording_the_same_failure_count_every_attempt(tmp_path):
    url = f"sqlite:///{tmp_path / 'results.db'}"
    assert run_concurrently(record_failure_worker, url, 25) == [25, 25]
    failures = ResultStore(url).failures()
    assert len(failures) == 1 and int(failures["attempts"].iloc[0]) == 50


# -- PostgreSQL URLs (the server itself: tests/test_store_postgres.py) --------------------------
def test_postgresql_urls_name_psycopg_3():
    assert engine_url("postgresql://u:pw@db.example/results").drivername == "postgresql+psycopg"
    assert engine_url("postgres://u@db.example/results").drivername == "postgresql+psycopg"
    assert engine_url("postgresql+psycopg2://u@h/r").drivername == "postgresql+psycopg2"
    assert engine_url("sqlite:///results.db").drivername == "sqlite"


def test_a_missing_postgresql_driver_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what Python does when it is not installed
    with pytest.raises(StoreError, match=r'pip install "privbench\[postgres\]"') as error:
        ResultStore("postgresql://someone:secret@127.0.0.1:1/results")
    assert "secret" not in str(error.value)


def test_a_row_the_table_refuses_is_an_error_not_a_duplicate(tmp_path):
    store = ResultStore(f"sqlite:///{tmp_path / 'results.db'}")
    with pytest.raises(StoreError, match="Could not write the result of cell cell01.*NOT NULL"):
        store.add(_row(1, dataset=None))
    assert len(store) == 0


def test_a_damaged_sqlite_store_is_a_store_error_with_a_way_forward(toy, tmp_path, capsys):
    from privbench.api.errors import StoreError
    from privbench.cli import main
    from privbench.pipeline import run

    run(toy.toy_spec(), out_dir=tmp_path / "out", cache_dir=tmp_path / "cache")
    database = tmp_path / "out" / "results.db"
    ResultStore(f"sqlite:///{database}").close()
    size = database.stat().st_size
    with open(database, "r+b") as handle:  # random bytes over the middle of the file
        handle.seek(size // 3)
        handle.write(bytes(range(256)) * (size // 3 // 256 + 1))
    with pytest.raises(StoreError, match=r"\.recover \| sqlite3 recovered\.db"):
        ResultStore(f"sqlite:///{database}").dataframe()
    with pytest.raises(SystemExit) as info:
        main(["leaderboard", "--store", f"sqlite:///{database}", "--out", str(tmp_path / "lb")])
    output = capsys.readouterr()
    assert info.value.code != 0 and "Traceback" not in output.err and ".recover" in output.err
