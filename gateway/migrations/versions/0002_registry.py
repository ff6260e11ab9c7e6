"""The adapter registry: adapter versions per team, canaries, and the routing generation (one row)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "adapter_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("team", sa.String(32), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("adapter_id", sa.String(64), nullable=False, unique=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("data_sha256", sa.String(64), nullable=True),
        sa.Column("base_model", sa.String(512), nullable=True),
        sa.Column("profile_json", sa.Text, nullable=True),
        sa.Column("git_sha", sa.String(64), nullable=True),
        sa.Column("report_json", sa.Text, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("previous_id", sa.Integer, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("changed_at", sa.Float, nullable=False),
        sa.UniqueConstraint("team", "name", "version", name="uq_adapter_versions_team_name_version"),
    )
    op.create_index("ix_adapter_versions_team_state", "adapter_versions", ["team", "state"])
    op.create_table(
        "canaries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("team", sa.String(64), nullable=False),
        sa.Column("candidate_id", sa.Integer, sa.ForeignKey("adapter_versions.id"), nullable=False),
        sa.Column("current_id", sa.Integer, sa.ForeignKey("adapter_versions.id"), nullable=True),
        sa.Column("share", sa.Float, nullable=False),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("min_shown", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("ends_at", sa.Float, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("ended_at", sa.Float, nullable=True),
        sa.Column("result_json", sa.Text, nullable=True),
    )
    op.create_index("ix_canaries_team", "canaries", ["team"])
    op.create_table(
        "routing_generation",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("generation", sa.Integer, nullable=False),
    )
    op.bulk_insert(sa.table("routing_generation", sa.column("id", sa.Integer), sa.column("generation", sa.Integer)),
                   [{"id": 1, "generation": 0}])


def downgrade() -> None:
    for name in ("routing_generation", "canaries", "adapter_versions"):
        op.drop_table(name)
