"""The platform's own database: SQLAlchemy models, session scope, Alembic migrations.

A leaf: it imports no other layer of infertune, and any layer above may use it.
"""

from infertune.storage.db import Database, normalize_url, safe_url
from infertune.storage.models import JobRun, Promotion, Schedule, SchedulerLock, StudyRecord
from infertune.storage.repository import promotions, save_study, study_id

__all__ = [
    "Database",
    "JobRun",
    "Promotion",
    "Schedule",
    "SchedulerLock",
    "StudyRecord",
    "normalize_url",
    "promotions",
    "safe_url",
    "save_study",
    "study_id",
]
