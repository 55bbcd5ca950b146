"""Model registry aliases (staging, production, challenger) and the history of every move.

Revision ID: 0003
Revises: 0002
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
        "aliases",
        sa.Column("model", sa.String(255), primary_key=True),
        sa.Column("alias", sa.String(32), primary_key=True),
        sa.Column("artifact_id", sa.String(32), sa.ForeignKey("artifacts.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "alias_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("alias", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("previous_version", sa.Integer),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("forced", sa.Boolean, nullable=False),
        sa.Column("details", sa.JSON),
    )
    op.create_index("ix_alias_events_model_at", "alias_events", ["model", "at"])


def downgrade() -> None:
    op.drop_index("ix_alias_events_model_at", "alias_events")
    op.drop_table("alias_events")
    op.drop_table("aliases")
