"""Schema migrations of the results store, with Alembic.

Each file under ``versions/`` is one revision of the store's tables; the revision a store is
at lives in its ``alembic_version`` table. :func:`upgrade` brings a store to the newest revision
when :class:`~privbench.runs.store.ResultStore` opens it. A store written before the schema was
versioned (no ``alembic_version``, JSON as text) has the layout of :data:`UNVERSIONED_REVISION`
and is stamped with it first.

To change the schema, edit :data:`privbench.runs.store.results_table` and add a revision::

    alembic -c privbench/runs/migrations/alembic.ini -x url=sqlite:///some/results.db \\
        revision --autogenerate --rev-id 0004 -m "what changes"

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

#: The PostgreSQL advisory lock (a 64-bit key, per database) that a migration holds.
POSTGRES_MIGRATION_LOCK = 0x70726976_62656E63  # "privbenc"


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

    The migration holds a lock that makes two processes opening one store at once (two drivers
    starting together) migrate it once: an exclusive transaction on a SQLite file, a
    transaction-level advisory lock on PostgreSQL. Alembic reads the revision after taking it,
    so the second process finds the store at the head. A failed migration leaves the store as
    it was (one transaction: SQLite's and PostgreSQL's DDL are transactional)."""
    head = head_revision()
    with engine.connect() as connection:
        revision = current_revision(connection)
    if revision == head:
        return head
    _check_known(revision, engine)
    migration_engine = _exclusive_sqlite_engine(engine) if _sqlite_file(engine) else engine
    try:
        with migration_engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                lock = sa.text("SELECT pg_advisory_xact_lock(:key)")
                connection.execute(lock, {"key": POSTGRES_MIGRATION_LOCK})
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
    Python's sqlite3 driver otherwise commits before every DDL statement. It waits up to 30 s
    for another process's migration (the driver's ``timeout``: SQLite's busy timeout)."""
    exclusive = sa.create_engine(
        engine.url, poolclass=sa.pool.NullPool, connect_args={"timeout": 30}
    )

    @sa.event.listens_for(exclusive, "connect")
    def _no_driver_transactions(dbapi_connection, record) -> None:
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(exclusive, "begin")
    def _begin_exclusive(connection) -> None:
        connection.exec_driver_sql("BEGIN EXCLUSIVE")

    return exclusive
