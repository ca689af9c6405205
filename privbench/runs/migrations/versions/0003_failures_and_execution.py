"""Failed cells get a table of their own; each result says what ran it.

``failures`` holds one record per cell key that failed and has no result yet (its latest reason
and the number of attempts), so a run can report and retry it; ``results.execution`` (JSON,
NULL for rows written before) records the engine, worker and threads that measured a row.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "failures",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("cell_key", sa.String(64), nullable=False, unique=True),
        sa.Column("cell_name", sa.String(256), nullable=False),
        sa.Column("benchmark", sa.String(128), nullable=False),
        sa.Column("benchmark_version", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    # Adding a nullable column is a plain ALTER TABLE on SQLite too (no table rebuild).
    with op.batch_alter_table("results") as batch:
        batch.add_column(sa.Column("execution", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("results") as batch:
        batch.drop_column("execution")
    op.drop_table("failures")
