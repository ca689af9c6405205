"""Schema migrations of the results store, with Alembic.

Each file under ``versions/`` is one revision of the ``results`` table; the revision a store is
at lives in its ``alembic_version`` table. :func:`upgrade` brings a store to the newest revision
when :class:`~privbench.runs.store.ResultStore` opens it. A store written before the schema was
versioned (no ``alembic_version``, JSON as text) has the layout of :data:`UNVERSIONED_REVISION`
and is stamped with it first.

To change the schema, edit :data:`privbench.runs.store.results_table` and add a revision::

    alembic -c privbench/runs/migrations/alembic.ini -x url=sqlite:///some/results.db \\
        revision --autogenerate --rev-id 0003 -m "what changes"

(review the generated file: on SQLite a column change needs the batch mode the template uses).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from privbench.api.errors import StoreError

MIGRATIONS_DIR = Path(__file__).parent

#: The layout of every store an unversioned privbench (≤ 0.1) wrote.
UNVERSIONED_REVISION = "0001"


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """Alembic's configuration for the shipped migrations, run on ``connection``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision this version of privbench knows (the layout it writes)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, f"no migrations under {MIGRATIONS_DIR}"
    return head


def current_revision(connection: sa.Connection) -> str | None:
    """The revision of the store behind ``connection`` (None: unversioned or empty)."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: sa.Engine) -> str:
    """Bring the store to the newest revision and return it; a no-op when it is there already.

    On a SQLite file the migration holds an exclusive lock, so two processes opening one file at
    once migrate it once, and a failed migration leaves the file as it was."""
    head = head_revision()
    with engine.connect() as connection:
        revision = current_revision(connection)
    if revision == head:
        return head
    _check_known(revision, engine)
    migration_engine = _exclusive_sqlite_engine(engine) if _sqlite_file(engine) else engine
    try:
        with migration_engine.begin() as connection:
            config = alembic_config(connection)
            if current_revision(connection) is None and sa.inspect(connection).has_table("results"):
                command.stamp(config, UNVERSIONED_REVISION)
            command.upgrade(config, "head")
    finally:
        if migration_engine is not engine:
            migration_engine.dispose()
    return head


def _check_known(revision: str | None, engine: sa.Engine) -> None:
    """A revision this version does not ship was written by a newer privbench: say so."""
    if revision is None:
        return
    known = {
        script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()
    }
    if revision not in known:
        raise StoreError(
            f"The results store {engine.url.render_as_string(hide_password=True)!r} has schema "
            f"revision {revision!r}, which this privbench does not know (it knows "
            f"{', '.join(sorted(known))}): a newer privbench wrote it. Upgrade privbench to "
            f"read it."
        )


def _sqlite_file(engine: sa.Engine) -> bool:
    """A SQLite database in a file (an in-memory one lives only in the engine's connection)."""
    database = engine.url.database
    return engine.dialect.name == "sqlite" and bool(database) and database != ":memory:"


def _exclusive_sqlite_engine(engine: sa.Engine) -> sa.Engine:
    """An engine on the same SQLite file whose transactions are real ones (``BEGIN EXCLUSIVE``):
    Python's sqlite3 driver otherwise commits before every DDL statement."""
    exclusive = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)

    @sa.event.listens_for(exclusive, "connect")
    def _no_driver_transactions(dbapi_connection, record) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(exclusive, "begin")
    def _begin_exclusive(connection) -> None:
        connection.exec_driver_sql("BEGIN EXCLUSIVE")

    return exclusive
