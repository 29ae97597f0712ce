"""SQLAlchemy models of the platform's own records.

They live in the same database as Optuna's tables (the platform database, ``--db-url``),
prefixed ``infertune_`` so that no name clashes, and are created and upgraded by the
Alembic migrations in ``migrations/`` (version table ``infertune_alembic_version``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: Stable constraint names, so migrations can refer to them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    """Now, in UTC with its time zone."""
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    """Base of the platform's tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, dt.datetime: DateTime(timezone=True)}


class StudyRecord(Base):
    """A tuning study as the platform knows it (the trials themselves are Optuna's)."""

    __tablename__ = "infertune_studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(512), unique=True)
    model: Mapped[str] = mapped_column(Text)
    model_sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    space: Mapped[dict[str, Any]] = mapped_column(JSON)
    objectives: Mapped[dict[str, Any]] = mapped_column(JSON)
    constraints: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    hardware_id: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    storage_url: Mapped[str] = mapped_column(Text, default="")
    mlflow_experiment_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mlflow_parent_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(32), default="created")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )

    promotions: Mapped[list[Promotion]] = relationship(back_populates="study")


class Promotion(Base):
    """One move of a registry alias: a promotion or a rollback (the audit trail)."""

    __tablename__ = "infertune_promotions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(16))  # "promote" | "rollback"
    registered_model: Mapped[str] = mapped_column(String(256), index=True)
    version: Mapped[str] = mapped_column(String(32))
    alias: Mapped[str] = mapped_column(String(256))
    previous_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    study_id: Mapped[int | None] = mapped_column(
        ForeignKey("infertune_studies.id", ondelete="SET NULL"), nullable=True
    )
    study_name: Mapped[str | None] = mapped_column(String(512), nullable=True)
    trial_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    hardware_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    forced: Mapped[bool] = mapped_column(default=False)
    actor: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())

    study: Mapped[StudyRecord | None] = relationship(back_populates="promotions")


class Schedule(Base):
    """A re-tuning schedule of a study (one per study)."""

    __tablename__ = "infertune_schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(512), unique=True)  # the study it re-tunes
    cron: Mapped[str | None] = mapped_column(String(128), nullable=True)
    every_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    trials: Mapped[int] = mapped_column(Integer)
    auto_promote: Mapped[str | None] = mapped_column(String(256), nullable=True)
    alias: Mapped[str] = mapped_column(String(256), default="production")
    min_gain: Mapped[float] = mapped_column(Float, default=0.05)
    paused: Mapped[bool] = mapped_column(default=False)
    latest_study: Mapped[str | None] = mapped_column(String(512), nullable=True)
    seen_model_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seen_hardware_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class JobRun(Base):
    """One run (or skipped/missed run) of a schedule's re-tune job, with its decision."""

    __tablename__ = "infertune_job_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    schedule: Mapped[str] = mapped_column(String(512), index=True)
    trigger: Mapped[str] = mapped_column(String(32))  # schedule | run-now | model | hardware
    status: Mapped[str] = mapped_column(String(16))  # running | finished | failed | skipped
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    study_created: Mapped[str | None] = mapped_column(String(512), nullable=True)
    decision: Mapped[str | None] = mapped_column(String(32), nullable=True)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    detail: Mapped[str] = mapped_column(Text, default="")
    host: Mapped[str] = mapped_column(String(256), default="")


class SchedulerLock(Base):
    """The one row that says which scheduler process runs the jobs of this database."""

    __tablename__ = "infertune_scheduler_lock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(256), nullable=True)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    started_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class StudyLease(Base):
    """A process working on a study, with its heartbeat: its owner or one of its workers.

    A study has at most one ``owner`` row that a live process holds (``tune``, a re-tune):
    a second owner is refused, a dead one's row is taken over. Each ``worker`` has a row of
    its own. The rows tell :func:`~infertune.tuning.distributed.reconcile` whether any live
    process still works on a study (else it ends the study's MLflow parent run).
    """

    __tablename__ = "infertune_study_leases"
    __table_args__ = (UniqueConstraint("study", "slot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study: Mapped[str] = mapped_column(String(512), index=True)
    slot: Mapped[str] = mapped_column(String(300))
    """``owner``, or ``worker:`` and the holder's token."""
    role: Mapped[str] = mapped_column(String(16))  # owner | worker
    holder: Mapped[str | None] = mapped_column(String(512), nullable=True)
    """The holding process (:meth:`~infertune.locks.ProcessId.token`); none: free."""
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    stale_after_s: Mapped[float] = mapped_column(Float, default=30.0)
    started_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class TrialSummary(Base):
    """One trial as lists and pages show it, kept beside Optuna's trial (its source).

    Written when the trial ends (and by any reader that finds it behind Optuna), so that
    tables, filters and plots read indexed rows instead of replaying Optuna's trials. Optuna
    stays the source of truth: a row can always be rebuilt from the trial.
    """

    __tablename__ = "infertune_trial_summaries"
    __table_args__ = (
        UniqueConstraint("study", "number"),
        Index("ix_infertune_trial_summaries_study_state", "study", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study: Mapped[str] = mapped_column(String(512))
    number: Mapped[int] = mapped_column(Integer)
    trial_id: Mapped[int] = mapped_column(Integer)
    """Optuna's id of the trial (a study deleted and made again gets new ids)."""
    state: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    """Optuna's start time of the trial, as text (SQLite reuses the ids of deleted trials)."""
    runtime: Mapped[str | None] = mapped_column(String(64), nullable=True)
    precision: Mapped[str | None] = mapped_column(String(64), nullable=True)
    feasible: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    on_front: Mapped[bool] = mapped_column(Boolean, default=False)
    speedup_p95: Mapped[float | None] = mapped_column(Float, nullable=True)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    row: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The whole row (:meth:`~infertune.tuning.records.TrialRecord.row`, and ``values``)."""


class StudySummary(Base):
    """One study as lists show it: counts, front, best speed-up; its shown front whole."""

    __tablename__ = "infertune_study_summaries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study: Mapped[str] = mapped_column(String(512), unique=True)
    optuna_study_id: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(128))
    """What the summary was made from (the study's attributes that change its front)."""
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    front: Mapped[dict[str, Any]] = mapped_column(JSON)
    importance: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    importance_trials: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """Completed trials the stored importance was computed on."""
    updated_at: Mapped[dt.datetime] = mapped_column(
        default=utcnow, onupdate=utcnow, server_default=func.now()
    )
