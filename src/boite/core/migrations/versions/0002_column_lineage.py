"""Column-level lineage of SQL transforms.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "column_lineage",
        sa.Column("artifact_id", sa.String(32), sa.ForeignKey("artifacts.id"), primary_key=True),
        sa.Column("column", sa.String(255), primary_key=True),
        sa.Column("source_table", sa.String(255), primary_key=True),
        sa.Column("source_column", sa.String(255), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("column_lineage")
