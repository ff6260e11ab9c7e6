"""Stored suggestions (opt-in, `[gateway] store_suggestions`): prompt, generation and the user's outcome."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
# After the registry (0002); this one depends on nothing of it.
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suggestions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("suggestion", sa.String(64), nullable=False, unique=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("team", sa.String(64), nullable=True),
        sa.Column("adapter", sa.String(64), nullable=True),
        sa.Column("route", sa.String(32), nullable=False),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("generated", sa.Text, nullable=False),
        sa.Column("shown", sa.Text, nullable=True),
        sa.Column("final", sa.Text, nullable=True),
        sa.Column("outcome_ts", sa.Float, nullable=True),
    )
    op.create_index("ix_suggestions_ts", "suggestions", ["ts"])
    op.create_index("ix_suggestions_team_ts", "suggestions", ["team", "ts"])


def downgrade() -> None:
    op.drop_table("suggestions")
