"""Reads and writes of the platform's records, each in one session scope."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from infertune.storage.db import Database
from infertune.storage.models import Promotion, StudyRecord


def save_study(
    db: Database,
    name: str,
    spec: dict[str, Any],
    fingerprint: dict[str, Any],
    storage_url: str,
    status: str,
    mlflow_experiment_id: str | None = None,
    mlflow_parent_run_id: str | None = None,
) -> None:
    """Create or update the platform's record of a study."""
    space = spec.get("space", {})
    with db.session() as session:
        record = session.scalar(sa.select(StudyRecord).where(StudyRecord.name == name))
        if record is None:
            record = StudyRecord(name=name)
            session.add(record)
        record.model = str(spec.get("model", ""))
        record.model_sha256 = str(spec.get("model_sha256", ""))
        record.data = {
            key: spec.get(key)
            for key in ("data", "data_sha256", "train_data", "train_data_sha256", "x_key", "y_key")
        } | {key: spec[key] for key in ("x_keys", "output") if spec.get(key) is not None}
        record.space = dict(space)
        record.objectives = dict(space.get("objectives") or {})
        record.constraints = dict(space.get("constraints") or {})
        record.hardware_id = str(fingerprint.get("hardware_id", ""))
        record.fingerprint = dict(fingerprint)
        record.storage_url = storage_url
        record.mlflow_experiment_id = mlflow_experiment_id or record.mlflow_experiment_id
        record.mlflow_parent_run_id = mlflow_parent_run_id or record.mlflow_parent_run_id
        record.status = status


def study_id(db: Database, name: str) -> int | None:
    """The id of a recorded study, if any."""
    with db.session() as session:
        return session.scalar(sa.select(StudyRecord.id).where(StudyRecord.name == name))


def promotions(db: Database, registered_model: str) -> list[dict[str, Any]]:
    """The promotion history of a registered model, oldest first."""
    with db.session() as session:
        rows = session.scalars(
            sa.select(Promotion)
            .where(Promotion.registered_model == registered_model)
            .order_by(Promotion.id)
        ).all()
        return [_promotion_dict(row) for row in rows]


def _promotion_dict(row: Promotion) -> dict[str, Any]:
    return {
        "id": row.id,
        "action": row.action,
        "registered_model": row.registered_model,
        "version": row.version,
        "alias": row.alias,
        "previous_version": row.previous_version,
        "study": row.study_name,
        "trial": row.trial_number,
        "config": row.config,
        "figures": row.figures,
        "hardware_id": row.hardware_id,
        "forced": row.forced,
        "actor": row.actor,
        "reason": row.reason,
        "at": row.created_at.isoformat() if row.created_at else None,
    }


def study_status_of(db: Database, name: str) -> str | None:
    """The platform status of a recorded study (``None``: not recorded)."""
    with db.session() as session:
        return session.scalar(sa.select(StudyRecord.status).where(StudyRecord.name == name))


def set_study_status(db: Database, name: str, status: str) -> None:
    """Set the platform status of a recorded study (nothing if it is not recorded)."""
    with db.session() as session:
        session.execute(
            sa.update(StudyRecord).where(StudyRecord.name == name).values(status=status)
        )
