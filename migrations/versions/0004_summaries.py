"""Trial and study summaries: lists and pages read indexed rows, not Optuna's trials.

The rows of existing studies are written by ``infertune db upgrade`` after this migration
(and by any reader that finds a study's rows behind its trials).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the trial and study summary tables."""
    op.create_table(
        "infertune_trial_summaries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study", sa.String(length=512), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.String(length=40), nullable=True),
        sa.Column("runtime", sa.String(length=64), nullable=True),
        sa.Column("precision", sa.String(length=64), nullable=True),
        sa.Column("feasible", sa.Boolean(), nullable=True),
        sa.Column("on_front", sa.Boolean(), nullable=False),
        sa.Column("speedup_p95", sa.Float(), nullable=True),
        sa.Column("mlflow_run_id", sa.String(length=64), nullable=True),
        sa.Column("row", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_infertune_trial_summaries")),
        sa.UniqueConstraint("study", "number", name=op.f("uq_infertune_trial_summaries_study")),
    )
    op.create_index(
        "ix_infertune_trial_summaries_study_state",
        "infertune_trial_summaries",
        ["study", "state"],
    )
    op.create_table(
        "infertune_study_summaries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study", sa.String(length=512), nullable=False),
        sa.Column("optuna_study_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("front", sa.JSON(), nullable=False),
        sa.Column("importance", sa.JSON(), nullable=True),
        sa.Column("importance_trials", sa.Integer(), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_infertune_study_summaries")),
        sa.UniqueConstraint("study", name=op.f("uq_infertune_study_summaries_study")),
    )


def downgrade() -> None:
    """Drop the summary tables (rebuilt from Optuna's trials on the next upgrade)."""
    op.drop_table("infertune_study_summaries")
    op.drop_index(
        "ix_infertune_trial_summaries_study_state", table_name="infertune_trial_summaries"
    )
    op.drop_table("infertune_trial_summaries")
