"""Tuning studies: Optuna searches the knobs, the engine measures, MLflow records.

The public names load on first use, so ``from infertune.tuning import queries`` stays
cheap for the dashboard and the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infertune._lazy import lazy_getattr

if TYPE_CHECKING:
    from infertune.tuning.lifecycle import StudyOutcome, StudyRun, join_study, study_status
    from infertune.tuning.records import StudySpec, StudyView, TrialRecord
    from infertune.tuning.retime import retime_interleaved
    from infertune.tuning.study import Tuner, open_study, verify_front

__all__ = [
    "StudyOutcome",
    "StudyRun",
    "StudySpec",
    "StudyView",
    "TrialRecord",
    "Tuner",
    "join_study",
    "open_study",
    "retime_interleaved",
    "study_status",
    "verify_front",
]

_MODULE_OF = {
    "StudyOutcome": "lifecycle",
    "StudyRun": "lifecycle",
    "join_study": "lifecycle",
    "study_status": "lifecycle",
    "StudySpec": "records",
    "StudyView": "records",
    "TrialRecord": "records",
    "retime_interleaved": "retime",
    "Tuner": "study",
    "open_study": "study",
    "verify_front": "study",
}


__getattr__ = lazy_getattr(__name__, _MODULE_OF)
