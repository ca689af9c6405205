"""The results store: one SQL row per benchmark cell, through SQLAlchemy.

SQLite file by default; any SQLAlchemy URL (e.g. PostgreSQL, the same URL Optuna uses for its
RDB storage) to share one store between machines. A row is written in one transaction when its
cell finishes, keyed by the cell's content hash (unique), so an interrupted run loses at most the
cell in flight and a rerun never doubles a row.

The schema carries a version (Alembic's ``alembic_version`` table): opening a store upgrades it to
the layout below with the migrations of :mod:`privbench.runs.migrations`, including a store that
an earlier privbench wrote before the schema was versioned.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
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
)

#: How JSON columns are written: sorted keys (a row's text does not depend on dict order) and
#: anything JSON does not know (paths, numpy scalars) as its string, as the store always did.
json_serializer = functools.partial(json.dumps, sort_keys=True, default=str)


def default_store_url(out_dir: str | Path) -> str:
    return f"sqlite:///{Path(out_dir).resolve() / 'results.db'}"


class ResultStore:
    """Reads and writes result rows in a SQL database, upgrading its schema when opened."""

    def __init__(self, url: str):
        from privbench.runs.migrations import upgrade

        self.url = url
        try:
            self.engine = sa.create_engine(url, future=True, json_serializer=json_serializer)
        except (SQLAlchemyError, ValueError, ImportError, TypeError) as error:
            raise StoreError(
                f"Cannot open the results store {url!r}: {error}. Use a SQLAlchemy URL such as "
                f"'sqlite:///results.db' or 'postgresql://user@host/db' (with its driver "
                f"installed)."
            ) from None
        _check_sqlite_folder(self.engine, url)
        try:
            #: The schema revision the store is at after opening (the newest this version knows).
            self.schema_revision = upgrade(self.engine)
        except SQLAlchemyError as error:
            raise StoreError(
                f"Cannot open the results store {url!r}: {error.__class__.__name__}: "
                f"{str(error).splitlines()[0]}. Check the URL, that the database server is "
                f"reachable and that the file or database is writable."
            ) from None

    # -- writing ------------------------------------------------------------------------
    def add(self, row: ResultRow) -> bool:
        """Insert one row in its own transaction; returns False if the cell was already stored."""
        try:
            with self.engine.begin() as connection:
                connection.execute(results_table.insert().values(**row.to_record()))
            return True
        except IntegrityError:
            return False
        except SQLAlchemyError as error:
            raise StoreError(
                f"Could not write the result of cell {row.cell_key} to {self.url!r}: "
                f"{error.__class__.__name__}: {str(error).splitlines()[0]}."
            ) from None

    # -- reading ------------------------------------------------------------------------
    def has(self, cell_key: str) -> bool:
        with self.engine.connect() as connection:
            query = sa.select(results_table.c.id).where(results_table.c.cell_key == cell_key)
            return connection.execute(query).first() is not None

    def cell_keys(self) -> set[str]:
        with self.engine.connect() as connection:
            return {r[0] for r in connection.execute(sa.select(results_table.c.cell_key))}

    def dataframe(self, *, benchmark: str | None = None, study: str | None = None) -> pd.DataFrame:
        """All rows (optionally of one benchmark/study) in insertion order, JSON columns decoded
        (an SQL NULL in a JSON column reads as an empty mapping)."""
        query = sa.select(results_table)
        if benchmark is not None:
            query = query.where(results_table.c.benchmark == benchmark)
        if study is not None:
            query = query.where(results_table.c.study == study)
        with self.engine.connect() as connection:
            frame = pd.read_sql(query.order_by(results_table.c.id), connection)
        for column in JSON_COLUMNS:
            frame[column] = frame[column].map(lambda value: {} if value is None else value)
        return frame

    def __len__(self) -> int:
        query = sa.select(sa.func.count()).select_from(results_table)
        with self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    def close(self) -> None:
        self.engine.dispose()


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
