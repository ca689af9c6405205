"""The results table as privbench wrote it before the schema was versioned (JSON as text).

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("cell_key", sa.String(64), nullable=False, unique=True),
        sa.Column("benchmark", sa.String(128), nullable=False),
        sa.Column("benchmark_version", sa.String(32), nullable=False),
        sa.Column("preset", sa.String(64)),
        sa.Column("dataset", sa.String(128), nullable=False),
        sa.Column("dataset_fingerprint", sa.String(64), nullable=False),
        sa.Column("encoder", sa.String(128), nullable=False),
        sa.Column("encoder_label", sa.String(128), nullable=False),
        sa.Column("encoder_config", sa.Text, nullable=False),
        sa.Column("encoder_config_hash", sa.String(32), nullable=False),
        sa.Column("encoder_weights_hash", sa.String(32)),
        sa.Column("encoder_description", sa.Text),
        sa.Column("alpha", sa.Float),
        sa.Column("evaluation", sa.String(128), nullable=False),
        sa.Column("evaluation_version", sa.String(32), nullable=False),
        sa.Column("evaluation_config", sa.Text, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("protocol", sa.String(32)),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("headline_metric", sa.String(64), nullable=False),
        sa.Column("headline_value", sa.Float),
        sa.Column("higher_is_better", sa.Boolean, nullable=False),
        sa.Column("chance", sa.Float),
        sa.Column("details", sa.Text),
        sa.Column("wall_time_s", sa.Float),
        sa.Column("device", sa.String(64)),
        sa.Column("package_versions", sa.Text),
        sa.Column("git_commit", sa.String(64)),
        sa.Column("study", sa.String(128)),
        sa.Column("trial", sa.Integer),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("results")
