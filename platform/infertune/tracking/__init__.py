"""MLflow tracking: a parent run per study, a child run per trial (a leaf: imports no layer)."""

from infertune.tracking.tracker import PARENT_TAG, STUDY_TAG, Tracker

__all__ = ["PARENT_TAG", "STUDY_TAG", "Tracker"]
