"""Alembic's environment for the results store: run the migrations on the connection that
:func:`privbench.runs.migrations.upgrade` passes, or, from the ``alembic`` command line, on the
database named by ``-x url=...``."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from privbench.runs.store import engine_url, metadata

config = context.config
connection = config.attributes.get("connection")

if connection is not None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if url is None:
        raise SystemExit("Name the results store: alembic -c ... -x url=sqlite:///results.db ...")
    if context.is_offline_mode():
        context.configure(
            url=url, target_metadata=metadata, literal_binds=True, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
    else:
        engine = sa.create_engine(engine_url(url), poolclass=sa.pool.NullPool)
        with engine.connect() as cli_connection:
            context.configure(
                connection=cli_connection, target_metadata=metadata, render_as_batch=True
            )
            with context.begin_transaction():
                context.run_migrations()
