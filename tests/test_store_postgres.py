"""The results store on a real PostgreSQL server (started by tests/support/postgres.py): the
migrations build the schema, rows round-trip with their JSON columns, a cell key is stored once
even when two drivers write the same cells at once, and failures are upserted and cleared.

Skipped, with the reason, only where PostgreSQL is not installed or cannot start (.ci/run
installs it)."""

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from support import postgres
from support.postgres import add_rows_worker, record_failure_worker, run_concurrently
from support.postgres import sample_row as _row

from privbench.runs.migrations import alembic_config, current_revision, head_revision
from privbench.runs.store import JSON_COLUMNS, ResultStore, failures_table, metadata

# The server's fixtures (a module's fixtures are the fixture objects bound to its names).
postgres_server, postgres_url, postgres_db = (
    postgres.postgres_server,
    postgres.postgres_url,
    postgres.postgres_db,
)


def test_store_opens_through_psycopg_3_with_pre_ping(postgres_url):
    store = ResultStore(postgres_url)
    assert postgres_url.startswith("postgresql://")
    assert store.engine.url.drivername == "postgresql+psycopg"
    assert store.engine.pool._pre_ping
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT version()").scalar().startswith("PostgreSQL")


def test_migrations_build_the_declared_schema(postgres_db):
    store = ResultStore(postgres_db)
    assert store.schema_revision == head_revision()
    with store.engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        inspector = sa.inspect(connection)
        assert set(inspector.get_table_names()) == {"alembic_version", "results", "failures"}
        types = {c["name"]: c["type"] for c in inspector.get_columns("results")}
        assert all(isinstance(types[column], sa.JSON) for column in JSON_COLUMNS)
        # Nothing left to autogenerate: the migrations made exactly the declared tables.
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    assert ResultStore(postgres_db).schema_revision == head_revision()  # reopen: a no-op


def test_migrations_downgrade_and_upgrade_again_with_the_rows(postgres_db):
    store = ResultStore(postgres_db)
    store.add(_row(1, execution={"engine": "ray"}))
    with store.engine.begin() as connection:
        command.downgrade(alembic_config(connection), "0001")  # JSON back to text
    with store.engine.connect() as connection:
        text = connection.exec_driver_sql("SELECT metrics FROM results").scalar()
        assert "failures" not in sa.inspect(connection).get_table_names()
    assert text == '{"top1": 0.25, "top5": 0.5}'
    reopened = ResultStore(postgres_db)  # upgraded again on open
    assert reopened.dataframe()["metrics"].iloc[0] == {"top1": 0.25, "top5": 0.5}
    assert reopened.dataframe()["execution"].iloc[0] == {}


def test_rows_round_trip_with_json_columns_decoded(postgres_db):
    store = ResultStore(postgres_db)
    execution = {"threads": 1, "worker": "123@node-2", "engine": "ray"}
    assert store.add(_row(1, execution=execution)) and store.add(_row(2))
    assert len(store) == 2 and store.has("cell01") and not store.has("cell09")
    assert store.cell_keys() == {"cell01", "cell02"}
    frame = store.dataframe()
    assert list(frame["cell_key"]) == ["cell01", "cell02"]
    first = frame.iloc[0]
    assert first["metrics"] == {"top1": 0.25, "top5": 0.5}
    assert first["evaluation_config"] == {"epochs": 2, "classifier": {"width": 16}}
    assert first["details"] == {"training": {"epochs": [1, 2]}, "checkpoint": "/tmp/x.pt"}
    assert first["encoder_description"] == {"name": "blur <&>"}
    assert first["encoder_label"] == "gaussian-blur σ=1"
    assert first["execution"] == execution and frame.iloc[1]["execution"] == {}
    assert first["encoder_weights_hash"] is None and first["higher_is_better"]
    assert store.dataframe(benchmark="other").empty


def test_a_duplicate_cell_key_is_a_no_op_that_says_so(postgres_db):
    store = ResultStore(postgres_db)
    assert store.add(_row(1))
    assert not store.add(_row(1, seed=99))
    assert len(store) == 1 and int(store.dataframe()["seed"].iloc[0]) == 1
    assert store.add(_row(2))  # the connection is still usable after the no-op


def test_a_result_clears_the_failure_of_its_cell(postgres_db):
    store = ResultStore(postgres_db)
    store.record_failure("cell01", "blur × face-id", "b", "1", "RuntimeError: NaN loss")
    store.record_failure("cell01", "blur × face-id", "b", "1", "RuntimeError: out of memory")
    store.record_failure("cell02", "blur × detection", "other", "3", "ValueError: bad box")
    failures = store.failures()
    assert list(failures["cell_key"]) == ["cell01", "cell02"]
    assert (failures["attempts"].iloc[0], failures["reason"].iloc[0]) == (
        2,
        "RuntimeError: out of memory",
    )
    assert list(store.failures(benchmark="other")["cell_key"]) == ["cell02"]
    assert store.cell_keys() == set()  # a rerun retries the failed cells

    assert store.add(_row(1))
    with store.engine.connect() as connection:
        keys = connection.execute(sa.select(failures_table.c.cell_key)).scalars().all()
    assert keys == ["cell02"] and list(store.failures()["cell_key"]) == ["cell02"]


def test_two_drivers_adding_the_same_rows_store_each_once(postgres_db):
    # Both open the fresh database at once (one migrates, the other waits for it), then add the
    # same 50 rows: every row is stored once, and exactly one driver was told it inserted it.
    inserted = run_concurrently(add_rows_worker, postgres_db, list(range(50)))
    assert sum(inserted) == 50
    store = ResultStore(postgres_db)
    assert len(store) == 50 and store.cell_keys() == {f"cell{i:02d}" for i in range(50)}
    assert store.schema_revision == head_revision()


def test_two_drivers_recording_the_same_failure_count_every_attempt(postgres_db):
    assert run_concurrently(record_failure_worker, postgres_db, 25) == [25, 25]
    failures = ResultStore(postgres_db).failures()
    assert len(failures) == 1 and int(failures["attempts"].iloc[0]) == 50


TWO_DRIVERS = """
import json, sys
sys.path.insert(0, {tests!r})
from support import toy_components as toy
import privbench
spec = toy.toy_spec(tasks=[{{"name": "toy-utility", "config": {{"sleep_s": 0.5}}}}])
report = privbench.run(spec, out_dir={out!r}, store={url!r}, cache_dir={cache!r}, workers=1,
                       render=False, report=True)
print(json.dumps({{"ran": report.ran, "skipped": report.skipped,
                   "duplicates": report.duplicates, "failures": report.failures}}))
"""


def test_two_concurrent_drivers_on_one_store_leave_one_row_per_cell(postgres_db, tmp_path):
    """Two real driver processes run the same benchmark against one PostgreSQL store at once:
    every cell ends up stored exactly once, and each driver accounts for every cell (run, found
    stored at its start, or stored first by the other driver: its insert was a no-op)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = str(Path(__file__).parent)
    drivers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                TWO_DRIVERS.format(
                    tests=tests,
                    out=str(tmp_path / f"out{index}"),
                    url=postgres_db,
                    cache=str(tmp_path / f"cache{index}"),
                ),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PRIVBENCH_WORKERS": "1"},
        )
        for index in range(2)
    ]
    reports = []
    for driver in drivers:
        output, _ = driver.communicate(timeout=300)
        assert driver.returncode == 0
        reports.append(json.loads(output.strip().splitlines()[-1]))
    cells = 6
    for report in reports:
        assert report["failures"] == []
        assert report["ran"] + report["skipped"] + report["duplicates"] == cells
    assert sum(report["ran"] for report in reports) == cells
    store = ResultStore(postgres_db)
    keys = list(store.dataframe()["cell_key"])
    assert len(keys) == len(set(keys)) == cells
    assert sum(r["duplicates"] for r in reports) > 0 or any(r["skipped"] for r in reports)
    store.close()
