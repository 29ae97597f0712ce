"""Study leases: one live owner per study, the workers on it, their heartbeats.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the study leases table."""
    op.create_table(
        "infertune_study_leases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study", sa.String(length=512), nullable=False),
        sa.Column("slot", sa.String(length=300), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("holder", sa.String(length=512), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stale_after_s", sa.Float(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_infertune_study_leases")),
        sa.UniqueConstraint("study", "slot", name=op.f("uq_infertune_study_leases_study")),
    )
    op.create_index(op.f("ix_infertune_study_leases_study"), "infertune_study_leases", ["study"])


def downgrade() -> None:
    """Drop the study leases table."""
    op.drop_index(op.f("ix_infertune_study_leases_study"), table_name="infertune_study_leases")
    op.drop_table("infertune_study_leases")
