"""Schedules, job runs and the scheduler lock.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the scheduling tables."""
    now = sa.func.now()
    op.create_table(
        "infertune_schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("cron", sa.String(length=128), nullable=True),
        sa.Column("every_s", sa.Float(), nullable=True),
        sa.Column("trials", sa.Integer(), nullable=False),
        sa.Column("auto_promote", sa.String(length=256), nullable=True),
        sa.Column("alias", sa.String(length=256), nullable=False),
        sa.Column("min_gain", sa.Float(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("latest_study", sa.String(length=512), nullable=True),
        sa.Column("seen_model_sha256", sa.String(length=64), nullable=True),
        sa.Column("seen_hardware_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_infertune_schedules")),
        sa.UniqueConstraint("name", name=op.f("uq_infertune_schedules_name")),
    )
    op.create_table(
        "infertune_job_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule", sa.String(length=512), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("study_created", sa.String(length=512), nullable=True),
        sa.Column("decision", sa.String(length=32), nullable=True),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("host", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_infertune_job_runs")),
    )
    op.create_index(op.f("ix_infertune_job_runs_schedule"), "infertune_job_runs", ["schedule"])
    op.create_table(
        "infertune_scheduler_lock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=256), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_infertune_scheduler_lock")),
    )


def downgrade() -> None:
    """Drop the scheduling tables."""
    op.drop_table("infertune_scheduler_lock")
    op.drop_index(op.f("ix_infertune_job_runs_schedule"), table_name="infertune_job_runs")
    op.drop_table("infertune_job_runs")
    op.drop_table("infertune_schedules")
