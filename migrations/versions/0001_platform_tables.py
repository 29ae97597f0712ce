"""Platform tables: studies and the promotion audit trail.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the studies and promotions tables."""
    op.create_table(
        "infertune_studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("model_sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("space", sa.JSON(), nullable=False),
        sa.Column("objectives", sa.JSON(), nullable=False),
        sa.Column("constraints", sa.JSON(), nullable=False),
        sa.Column("hardware_id", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.JSON(), nullable=False),
        sa.Column("storage_url", sa.Text(), nullable=False),
        sa.Column("mlflow_experiment_id", sa.String(length=64), nullable=True),
        sa.Column("mlflow_parent_run_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_infertune_studies")),
        sa.UniqueConstraint("name", name=op.f("uq_infertune_studies_name")),
    )
    op.create_table(
        "infertune_promotions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("registered_model", sa.String(length=256), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("alias", sa.String(length=256), nullable=False),
        sa.Column("previous_version", sa.String(length=32), nullable=True),
        sa.Column("study_id", sa.Integer(), nullable=True),
        sa.Column("study_name", sa.String(length=512), nullable=True),
        sa.Column("trial_number", sa.Integer(), nullable=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("hardware_id", sa.String(length=64), nullable=True),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(length=256), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["study_id"],
            ["infertune_studies.id"],
            name=op.f("fk_infertune_promotions_study_id_infertune_studies"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_infertune_promotions")),
    )
    op.create_index(
        op.f("ix_infertune_promotions_registered_model"),
        "infertune_promotions",
        ["registered_model"],
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index(
        op.f("ix_infertune_promotions_registered_model"), table_name="infertune_promotions"
    )
    op.drop_table("infertune_promotions")
    op.drop_table("infertune_studies")
