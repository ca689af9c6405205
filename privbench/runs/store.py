"""The results store: one SQL row per benchmark cell, through SQLAlchemy.

SQLite file by default, in WAL mode so that ``privbench leaderboard`` reads while a run writes;
any SQLAlchemy URL (e.g. PostgreSQL through psycopg 3, ``privbench[postgres]``: the same URL
Optuna uses for its RDB storage) to share one store between machines and drivers. A row is
written in one transaction when its cell finishes, keyed by the cell's content hash (unique), so
an interrupted run loses at most the cell in flight, and neither a rerun nor a second driver on
the same store ever doubles a row. A cell that failed has a record in ``failures`` (its latest
reason, how often it failed) until a later run stores its result.

The schema carries a version (Alembic's ``alembic_version`` table): opening a store upgrades it to
the layout below with the migrations of :mod:`privbench.runs.migrations`, including a store that
an earlier privbench wrote before the schema was versioned.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from privbench.api.errors import StoreError
from privbench.runs.rows import JSON_COLUMNS, ResultRow

metadata = sa.MetaData()

results_table = sa.Table(
    "results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("cell_key", sa.String(64), nullable=False, unique=True),
    sa.Column("benchmark", sa.String(128), nullable=False),
    sa.Column("benchmark_version", sa.String(32), nullable=False),
    sa.Column("preset", sa.String(64)),
    sa.Column("dataset", sa.String(128), nullable=False),
    sa.Column("dataset_fingerprint", sa.String(64), nullable=False),
    sa.Column("encoder", sa.String(128), nullable=False),
    sa.Column("encoder_label", sa.String(128), nullable=False),
    sa.Column("encoder_config", sa.JSON, nullable=False),
    sa.Column("encoder_config_hash", sa.String(32), nullable=False),
    sa.Column("encoder_weights_hash", sa.String(32)),
    sa.Column("encoder_description", sa.JSON),
    sa.Column("alpha", sa.Float),
    sa.Column("evaluation", sa.String(128), nullable=False),
    sa.Column("evaluation_version", sa.String(32), nullable=False),
    sa.Column("evaluation_config", sa.JSON, nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("protocol", sa.String(32)),
    sa.Column("seed", sa.Integer, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("headline_metric", sa.String(64), nullable=False),
    sa.Column("headline_value", sa.Float),
    sa.Column("higher_is_better", sa.Boolean, nullable=False, default=True),
    sa.Column("chance", sa.Float),
    sa.Column("details", sa.JSON),
    sa.Column("wall_time_s", sa.Float),
    sa.Column("device", sa.String(64)),
    sa.Column("package_versions", sa.JSON),
    sa.Column("git_commit", sa.String(64)),
    sa.Column("study", sa.String(128)),
    sa.Column("trial", sa.Integer),
    sa.Column("source", sa.String(16), nullable=False, default="measured"),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("execution", sa.JSON),
)

#: Cells that raised (or measured NaN) and have no result yet: one row per cell key, the latest
#: reason and how often it failed. A rerun retries them (they are not in :meth:`cell_keys`).
failures_table = sa.Table(
    "failures",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("cell_key", sa.String(64), nullable=False, unique=True),
    sa.Column("cell_name", sa.String(256), nullable=False),
    sa.Column("benchmark", sa.String(128), nullable=False),
    sa.Column("benchmark_version", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)

#: How JSON columns are written: sorted keys (a row's text does not depend on dict order) and
#: anything JSON does not know (paths, numpy scalars) as its string, as the store always did.
json_serializer = functools.partial(json.dumps, sort_keys=True, default=str)


#: How long a SQLite connection waits for another connection's write lock before it fails.
SQLITE_BUSY_TIMEOUT_MS = 30_000

#: What installs the PostgreSQL driver (psycopg 3).
POSTGRES_INSTALL = 'pip install "privbench[postgres]"'


def default_store_url(out_dir: str | Path) -> str:
    return f"sqlite:///{Path(out_dir).resolve() / 'results.db'}"


def engine_url(url: str) -> sa.URL:
    """The URL the engine is made from: a bare ``postgresql://`` names psycopg 3, the driver
    that ``privbench[postgres]`` installs (SQLAlchemy's own default would be psycopg2)."""
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


class ResultStore:
    """Reads and writes result rows in a SQL database, upgrading its schema when opened.

    Several processes may share one store: each write is one short transaction, a cell key
    already stored makes :meth:`add` a no-op that says so, and failure records are upserts."""

    def __init__(self, url: str):
        from privbench.runs.migrations import upgrade

        self.url = url
        self.engine = _create_engine(url)
        _check_sqlite_folder(self.engine, url)
        try:
            #: The schema revision the store is at after opening (the newest this version knows).
            self.schema_revision = upgrade(self.engine)
        except SQLAlchemyError as error:
            if _damaged_sqlite(url, error):
                raise StoreError(_read_failure(url, error)) from None
            raise StoreError(
                f"Cannot open the results store {_shown(url)!r}: {_first_line(error)}. Check the "
                f"URL, that the database server is reachable and that the file or database is "
                f"writable."
            ) from None

    # -- writing ------------------------------------------------------------------------
    def add(self, row: ResultRow) -> bool:
        """Insert one row in its own transaction; returns False if the cell was already stored
        (earlier, or by another driver on a shared store), and then changes nothing.

        The insert also deletes the cell's failure record, in the same transaction: a cell that
        failed once and then succeeded is no longer listed by :meth:`failures`."""
        try:
            with self.engine.begin() as connection:
                inserted = self._insert_new(connection, row.to_record())
                if inserted:
                    cell = failures_table.c.cell_key == row.cell_key
                    connection.execute(failures_table.delete().where(cell))
            return inserted
        except SQLAlchemyError as error:
            # Without ON CONFLICT the duplicate key surfaces as the unique constraint's error;
            # with it, an IntegrityError is something else (a missing value) and is reported.
            if isinstance(error, IntegrityError) and _upsert_insert(self.engine) is None:
                return False
            raise StoreError(
                f"Could not write the result of cell {row.cell_key} to {_shown(self.url)!r}: "
                f"{_first_line(error)}."
            ) from None

    def _insert_new(self, connection: sa.Connection, record: dict[str, Any]) -> bool:
        """INSERT ... ON CONFLICT DO NOTHING where the dialect has it, so that the loser of two
        concurrent inserts gets a no-op rather than a failed statement in the server's log."""
        insert = _upsert_insert(self.engine)
        if insert is None:
            connection.execute(results_table.insert().values(**record))
            return True
        statement = insert(results_table).values(**record)
        statement = statement.on_conflict_do_nothing(index_elements=["cell_key"])
        # RETURNING rather than rowcount, which psycopg does not report for this statement.
        returning = statement.returning(results_table.c.id)
        return connection.execute(returning).first() is not None

    def record_failure(
        self, cell_key: str, cell_name: str, benchmark: str, benchmark_version: str, reason: str
    ) -> None:
        """Record that a cell failed (why, in ``reason``): the first failure inserts its record,
        each later one replaces the reason and counts one more attempt. One upsert statement,
        so that two drivers recording the same cell at once never collide on its key."""
        values = {
            "cell_key": cell_key,
            "cell_name": cell_name,
            "benchmark": benchmark,
            "benchmark_version": benchmark_version,
            "reason": reason,
        }
        table, insert = failures_table, _upsert_insert(self.engine)
        first = {**values, "attempts": 1, "created_at": _now()}
        again = {name: value for name, value in values.items() if name != "cell_key"}
        try:
            with self.engine.begin() as connection:
                if insert is None:  # a dialect without ON CONFLICT: update, else insert
                    update = table.update().where(table.c.cell_key == cell_key)
                    update = update.values(**again, attempts=table.c.attempts + 1)
                    if connection.execute(update).rowcount == 0:
                        connection.execute(table.insert().values(**first))
                    return
                statement = insert(table).values(**first)
                changed = {name: statement.excluded[name] for name in again}
                statement = statement.on_conflict_do_update(
                    index_elements=["cell_key"], set_={**changed, "attempts": table.c.attempts + 1}
                )
                connection.execute(statement)
        except SQLAlchemyError as error:
            raise StoreError(
                f"Could not record the failure of cell {cell_key} in {_shown(self.url)!r}: "
                f"{_first_line(error)}."
            ) from None

    # -- reading ------------------------------------------------------------------------
    @contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        """A read connection; a database error (a damaged file, a lost server) becomes a
        StoreError that says what to do instead of a driver's traceback."""
        try:
            with self.engine.connect() as connection:
                yield connection
        except (SQLAlchemyError, pd.errors.DatabaseError) as error:  # pandas wraps its reads
            raise StoreError(_read_failure(self.url, error)) from None

    def has(self, cell_key: str) -> bool:
        with self._reading() as connection:
            query = sa.select(results_table.c.id).where(results_table.c.cell_key == cell_key)
            return connection.execute(query).first() is not None

    def cell_keys(self) -> set[str]:
        """The keys of the stored results (a failed cell is not among them: a rerun retries it)."""
        with self._reading() as connection:
            return {r[0] for r in connection.execute(sa.select(results_table.c.cell_key))}

    def dataframe(self, *, benchmark: str | None = None, study: str | None = None) -> pd.DataFrame:
        """All rows (optionally of one benchmark/study) in insertion order, JSON columns decoded
        (an SQL NULL in a JSON column reads as an empty mapping)."""
        query = sa.select(results_table)
        if benchmark is not None:
            query = query.where(results_table.c.benchmark == benchmark)
        if study is not None:
            query = query.where(results_table.c.study == study)
        with self._reading() as connection:
            frame = pd.read_sql(query.order_by(results_table.c.id), connection)
        for column in JSON_COLUMNS:
            frame[column] = frame[column].map(lambda value: {} if value is None else value)
        return frame

    def failures(self, benchmark: str | None = None) -> pd.DataFrame:
        """The failed cells that have no result (optionally of one benchmark), oldest first:
        ``created_at`` is the first failure, ``reason`` the latest. A failure that one driver
        recorded while another stored the cell's result is not listed."""
        stored = sa.exists().where(results_table.c.cell_key == failures_table.c.cell_key)
        query = sa.select(failures_table).where(~stored)
        if benchmark is not None:
            query = query.where(failures_table.c.benchmark == benchmark)
        with self._reading() as connection:
            return pd.read_sql(query.order_by(failures_table.c.id), connection)

    def __len__(self) -> int:
        query = sa.select(sa.func.count()).select_from(results_table)
        with self._reading() as connection:
            return int(connection.execute(query).scalar_one())

    def close(self) -> None:
        self.engine.dispose()


def _create_engine(url: str) -> sa.Engine:
    """The engine of ``url``: PostgreSQL through psycopg 3 with its connections checked before
    use (a server restart or an idle timeout does not fail a run's next write); SQLite in WAL
    mode with a busy timeout (see :func:`_sqlite_pragmas`)."""
    postgres = False
    try:
        parsed = engine_url(url)
        postgres = parsed.get_backend_name() == "postgresql"
        options: dict[str, Any] = {"pool_pre_ping": True} if postgres else {}
        engine = sa.create_engine(parsed, json_serializer=json_serializer, **options)
    except ImportError as error:
        if postgres:
            raise StoreError(
                f"Cannot open the results store {_shown(url)!r}: its driver psycopg is not "
                f"installed ({error}). Install it with: {POSTGRES_INSTALL}"
            ) from None
        raise StoreError(_bad_url(url, error)) from None
    except (SQLAlchemyError, ValueError, TypeError) as error:
        raise StoreError(_bad_url(url, error)) from None
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Every SQLite connection: WAL, so that readers (``privbench leaderboard``) read while a run
    writes instead of waiting for it, and a busy timeout, so that a writer waits for another
    writer's transaction (one short insert) instead of failing at once. WAL is a property of
    the file (an in-memory database stays in its own mode)."""
    import sqlite3
    import time

    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    # Switching the journal mode needs the file's exclusive lock, and SQLite may answer
    # "database is locked" at once instead of waiting while another process migrates the store
    # (seen with two processes opening a new store on a loaded machine): retry for as long as
    # the busy timeout.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            break
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cursor.close()


def _upsert_insert(engine: sa.Engine) -> Any:
    """The dialect's ``insert`` with ``ON CONFLICT`` (PostgreSQL, SQLite), or None."""
    if engine.dialect.name == "postgresql":
        return postgresql.insert
    if engine.dialect.name == "sqlite":
        return sqlite.insert
    return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _shown(url: str) -> str:
    """``url`` for a message: its password hidden."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        return url


def _read_failure(url: str, error: Exception) -> str:
    """What to say when a store cannot be read: for a damaged SQLite file, how to recover the
    rows that are still readable into a new file."""
    text = f"Cannot read the results store {_shown(url)!r}: {_first_line(error)}."
    database = engine_url(url).database if url.startswith("sqlite") else None
    if database and _damaged_sqlite(url, error):
        text += (
            f" The file looks damaged: copy what is still readable into a new store with "
            f"`sqlite3 {database} .recover | sqlite3 recovered.db` (Debian: apt-get install "
            "sqlite3), then point --store at sqlite:///recovered.db; a run into a fresh store "
            "recomputes the rest."
        )
    return text


def _damaged_sqlite(url: str, error: Exception) -> bool:
    """SQLite's own words for a file whose pages are not a database any more."""
    text = str(error)
    return url.startswith("sqlite") and ("malformed" in text or "not a database" in text)


def _first_line(error: Exception) -> str:
    """``Class: first line`` of a driver's error (the rest is SQL and parameters)."""
    lines = str(error).splitlines()
    return f"{error.__class__.__name__}: {lines[0] if lines else ''}"


def _bad_url(url: str, error: Exception) -> str:
    return (
        f"Cannot open the results store {_shown(url)!r}: {error}. Use a SQLAlchemy URL such as "
        f"'sqlite:///results.db' or 'postgresql://user@host/db' (PostgreSQL needs "
        f"{POSTGRES_INSTALL})."
    )


def require_existing_store(url: str) -> None:
    """For commands that only read a store (``privbench leaderboard``): a SQLite file that does
    not exist is an error naming it, instead of a new, empty store created by opening it."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return  # ResultStore reports a malformed URL
    database = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if database and database != ":memory:" and not Path(database).expanduser().is_file():
        raise StoreError(
            f"There is no results store at {str(Path(database).expanduser())!r} (from --store "
            f"{_shown(url)!r}). Run `privbench run --out DIR` first, or point --store at an "
            "existing one, e.g. sqlite:///privbench-out/results.db."
        )


def _check_sqlite_folder(engine: sa.Engine, url: str) -> None:
    """A SQLite file in a missing folder: say so, rather than SQLite's 'unable to open'."""
    if engine.dialect.name != "sqlite":
        return
    database = engine.url.database
    if database and database != ":memory:":
        folder = Path(database).expanduser().resolve().parent
        if not folder.is_dir():
            raise StoreError(
                f"Cannot open the results store {url!r}: folder {str(folder)!r} does not exist. "
                f"Create it or point --store at an existing folder."
            )
