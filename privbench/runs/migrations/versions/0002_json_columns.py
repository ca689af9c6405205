"""JSON columns as the SQL JSON type (native JSON where the database has it).

The stored text does not change: it was already ``json.dumps`` of each value, which is what the
JSON type reads and writes; on SQLite the table is rebuilt (batch mode) with the new types, its
unique cell key kept.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

#: JSON column → nullable.
JSON_COLUMNS = {
    "encoder_config": False,
    "encoder_description": True,
    "evaluation_config": False,
    "metrics": False,
    "details": True,
    "package_versions": True,
}


def upgrade() -> None:
    _retype_json_columns(sa.Text, sa.JSON, "json")


def downgrade() -> None:
    _retype_json_columns(sa.JSON, sa.Text, "text")


def _retype_json_columns(existing_type, type_, postgresql_cast: str) -> None:
    with op.batch_alter_table("results") as batch:
        for column, nullable in JSON_COLUMNS.items():
            batch.alter_column(
                column,
                type_=type_,
                existing_type=existing_type,
                existing_nullable=nullable,
                postgresql_using=f"{column}::{postgresql_cast}",
            )
