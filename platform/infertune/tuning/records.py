"""Typed views of what infertune stores on Optuna studies and trials.

A study stays a plain Optuna study (``optuna.load_study`` and optuna-dashboard read it);
infertune keeps its own facts in user attributes: ``infertune.<name>`` on the study, plain
names on each trial. Every read and write of those attributes goes through this module, so
their names and types are written down once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import optuna
from pydantic import BaseModel, ConfigDict

from infertune.space.schema import Direction, Figure, SearchSpace

__all__ = [
    "ATTR",
    "StudySpec",
    "StudyView",
    "TrialRecord",
    "TrialWriter",
    "trial_row",
    "trial_rows",
]

#: Prefix of infertune's study attributes.
ATTR = "infertune."


class StudySpec(BaseModel):
    """What defines a study's problem: the model and data (by content) and the space.

    Stored as a JSON object; its hash decides whether a study may be resumed.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    model: str
    model_path: str
    model_sha256: str
    data: str
    data_sha256: str
    train_data: str | None = None
    train_data_sha256: str | None = None
    x_key: str = "x"
    y_key: str = "y"
    x_keys: list[str] | None = None
    """The input arrays of a model with several inputs (model order); absent for one input."""
    output: str | None = None
    """The scored output of a model with several outputs; part of the study's identity."""
    trust_saved_model: bool = False
    """The user trusted this SavedModel when creating the study: resumes, workers and
    re-tunes load it without asking again."""
    space: dict[str, Any]

    def search_space(self) -> SearchSpace:
        """The search space the study was created with."""
        return SearchSpace.model_validate(self.space)

    def as_json(self) -> dict[str, Any]:
        """The stored form (the same keys a study has always stored)."""
        unset = {k for k in ("x_keys", "output") if getattr(self, k) is None}
        if not self.trust_saved_model:
            unset.add("trust_saved_model")
        return self.model_dump(mode="json", exclude=unset)


#: Why a failed trial failed when it stored no reason: its process died while it ran.
DIED_REASON = "its process died while it ran (killed, or its machine was lost)"


class StudyView:
    """Typed reads and writes of infertune's attributes on one Optuna study."""

    def __init__(self, study: optuna.Study) -> None:
        self.study = study

    @property
    def name(self) -> str:
        """The study's name."""
        return self.study.study_name

    def _get(self, name: str, default: Any = None) -> Any:
        return self.study.user_attrs.get(ATTR + name, default)

    def _set(self, name: str, value: Any) -> None:
        self.study.set_user_attr(ATTR + name, value)

    # -- the problem ---------------------------------------------------------------------

    @property
    def created_by_infertune(self) -> bool:
        """Whether infertune created this study (it carries a spec)."""
        return self._get("spec") is not None

    @property
    def spec(self) -> StudySpec | None:
        """The spec the study was created with (``None``: not an infertune study)."""
        raw = self._get("spec")
        return StudySpec.model_validate(raw) if raw is not None else None

    @property
    def raw_spec(self) -> dict[str, Any] | None:
        """The spec exactly as stored (for hashing and the platform database)."""
        raw: dict[str, Any] | None = self._get("spec")
        return raw

    @property
    def spec_hash(self) -> str | None:
        """The hash of the stored spec."""
        value: str | None = self._get("spec_hash")
        return value

    def set_spec(self, spec: dict[str, Any], spec_hash: str) -> None:
        """Store the spec and its hash."""
        self._set("spec", spec)
        self._set("spec_hash", spec_hash)

    @property
    def objectives(self) -> dict[Figure, Direction]:
        """The study's objectives, in order."""
        return {Figure(k): Direction(v) for k, v in self._get("objectives", {}).items()}

    def set_objectives(self, objectives: dict[Figure, Direction]) -> None:
        """Store the objectives (once, at creation)."""
        self._set("objectives", {str(k): str(v) for k, v in objectives.items()})

    # -- where and when it ran -----------------------------------------------------------

    @property
    def fingerprint(self) -> dict[str, Any]:
        """The hardware and software fingerprint of the machine that created the study."""
        value: dict[str, Any] = self._get("fingerprint") or {}
        return value

    @property
    def hardware_id(self) -> str | None:
        """The creating machine's hardware id."""
        value = self.fingerprint.get("hardware_id")
        return str(value) if value is not None else None

    @property
    def created_at(self) -> str | None:
        """UTC creation time, ISO 8601."""
        value: str | None = self._get("created_at")
        return value

    def set_created(self, fingerprint: dict[str, Any]) -> None:
        """Record the creating machine and the creation time."""
        self._set("fingerprint", fingerprint)
        self._set("created_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    @property
    def retune_of(self) -> str | None:
        """The study this one re-tunes (scheduled re-tuning), if any."""
        value: str | None = self._get("retune_of")
        return value

    def set_retune_of(self, previous: str) -> None:
        """Record which study this one re-tunes."""
        self._set("retune_of", previous)

    # -- MLflow --------------------------------------------------------------------------

    @property
    def experiment_id(self) -> str | None:
        """The MLflow experiment of the study."""
        value: str | None = self._get("mlflow_experiment_id")
        return value

    @property
    def parent_run_id(self) -> str | None:
        """The study's parent MLflow run."""
        value: str | None = self._get("mlflow_parent_run_id")
        return value

    def set_mlflow(self, experiment_id: str, parent_run_id: str) -> None:
        """Record the study's MLflow experiment and parent run."""
        self._set("mlflow_experiment_id", experiment_id)
        self._set("mlflow_parent_run_id", parent_run_id)

    @property
    def variant_runs(self) -> dict[str, str]:
        """Variant key -> the MLflow run that holds the variant file (logged once)."""
        return dict(self._get("variant_runs") or {})

    def set_variant_runs(self, runs: dict[str, str]) -> None:
        """Store the variant -> run map."""
        self._set("variant_runs", runs)

    # -- results -------------------------------------------------------------------------

    @property
    def baseline(self) -> dict[str, Any] | None:
        """The baseline's figures (tf, fp32, batch 1, default threads), once measured."""
        value: dict[str, Any] | None = self._get("baseline")
        return value

    def set_baseline(self, figures: dict[str, Any]) -> None:
        """Store the baseline's figures."""
        self._set("baseline", figures)

    @property
    def verified(self) -> dict[str, Any] | None:
        """The last verification of the front (candidates, medians, spreads), if any."""
        value: dict[str, Any] | None = self._get("verified")
        return value

    def set_verified(self, payload: dict[str, Any]) -> None:
        """Store a verification of the front."""
        self._set("verified", payload)


@dataclass(frozen=True)
class TrialRecord:
    """What infertune stores on one trial, read back typed."""

    number: int
    state: str
    config: dict[str, Any] | None
    figures: dict[str, Any] | None
    feasible: bool | None
    violations: list[str] = field(default_factory=list)
    speedup_p95: float | None = None
    fail_reason: str | None = None
    pruned_reason: str | None = None
    mlflow_run_id: str | None = None
    variant_key: str | None = None
    variant_cache_hit: bool | None = None
    duplicate_of: int | None = None
    worker: str | None = None
    phases_s: dict[str, float] | None = None
    duration_s: float | None = None

    @classmethod
    def from_trial(cls, trial: optuna.trial.FrozenTrial) -> TrialRecord:
        """Read a trial's attributes."""
        attrs = trial.user_attrs
        return cls(
            number=trial.number,
            state=trial.state.name,
            config=attrs.get("config"),
            figures=attrs.get("figures"),
            feasible=attrs.get("feasible"),
            violations=list(attrs.get("violations") or []),
            speedup_p95=attrs.get("speedup_p95"),
            fail_reason=attrs.get("fail_reason")
            or (DIED_REASON if trial.state == optuna.trial.TrialState.FAIL else None),
            pruned_reason=attrs.get("pruned_reason"),
            mlflow_run_id=attrs.get("mlflow_run_id"),
            variant_key=attrs.get("variant_key"),
            variant_cache_hit=attrs.get("variant_cache_hit"),
            duplicate_of=attrs.get("duplicate_of"),
            worker=attrs.get("worker"),
            phases_s=attrs.get("phases_s"),
            duration_s=trial.duration.total_seconds() if trial.duration else None,
        )

    def row(self) -> dict[str, Any]:
        """The flat, JSON-ready row the CLI's ``--json`` and the dashboard show."""
        return {
            "number": self.number,
            "state": self.state,
            "config": self.config,
            "figures": self.figures,
            "feasible": self.feasible,
            "violations": self.violations,
            "speedup_p95": self.speedup_p95,
            "fail_reason": self.fail_reason,
            "pruned_reason": self.pruned_reason,
            "mlflow_run_id": self.mlflow_run_id,
            "variant_key": self.variant_key,
            "duration_s": self.duration_s,
        }


class TrialWriter:
    """Typed writes of infertune's attributes on a running trial."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def started(self, config: dict[str, Any], worker: str) -> None:
        """The configuration the trial measures and the process that runs it."""
        self.trial.set_user_attr("config", config)
        self.trial.set_user_attr("worker", worker)

    def mlflow_run(self, run_id: str) -> None:
        """The trial's MLflow run."""
        self.trial.set_user_attr("mlflow_run_id", run_id)

    def variant(self, key: str, cache_hit: bool | None) -> None:
        """The variant measured, and whether it came from the cache (None: the source)."""
        self.trial.set_user_attr("variant_key", key)
        if cache_hit is not None:
            self.trial.set_user_attr("variant_cache_hit", cache_hit)

    def pruned(self, reason: str, figures: dict[str, Any]) -> None:
        """Stopped before timing: the figures known so far and why."""
        self.trial.set_user_attr("pruned_reason", reason)
        self.trial.set_user_attr("figures", figures)

    def failed(self, reason: str) -> None:
        """Why the trial failed."""
        self.trial.set_user_attr("fail_reason", reason)

    def measured(
        self, figures: dict[str, Any], violations: list[str], speedup_p95: float | None
    ) -> None:
        """The trial's figures and how they stand against the constraints."""
        self.trial.set_user_attr("figures", figures)
        self.trial.set_user_attr("violations", violations)
        self.trial.set_user_attr("feasible", not violations)
        self.trial.set_user_attr("speedup_p95", speedup_p95)

    def duplicate(self, earlier: TrialRecord) -> None:
        """The configuration was measured by ``earlier``: reuse its facts."""
        self.trial.set_user_attr("figures", earlier.figures)
        self.trial.set_user_attr("feasible", earlier.feasible)
        self.trial.set_user_attr("violations", earlier.violations)
        self.trial.set_user_attr("speedup_p95", earlier.speedup_p95)
        self.trial.set_user_attr("variant_key", earlier.variant_key)
        self.trial.set_user_attr("duplicate_of", earlier.number)

    def phases(self, phases_s: dict[str, float]) -> None:
        """Where the trial's wall time went."""
        self.trial.set_user_attr("phases_s", phases_s)


def trial_row(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One trial as a flat, JSON-ready row."""
    return TrialRecord.from_trial(trial).row()


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """Every trial of the study, oldest first."""
    return [trial_row(t) for t in study.get_trials(deepcopy=False)]
