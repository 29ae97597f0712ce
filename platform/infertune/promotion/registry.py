"""Promotion of a trial's configuration to the MLflow Model Registry, rollback, history.

A promotion registers the trial's variant as a new version of a registered model: an MLflow
pyfunc model (``infertune.promotion.pyfunc_model``) that carries the variant file and its
runtime settings, tagged with the study, trial, knobs, figures and hardware. Then the alias
(``production`` by default) moves to it. Aliases only: the deprecated stages are never used.

Each alias move writes an audit row (``infertune_promotions``) in the same step: if the
alias cannot move, no row is written; if the row cannot be written, the alias moves back.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from infertune.config import Settings
from infertune.exceptions import InfertuneError, RegistryError
from infertune.knobs.spec import InferenceConfig
from infertune.measure.engine import Engine
from infertune.storage.db import Database
from infertune.storage.models import Promotion
from infertune.storage.repository import promotions, study_id
from infertune.tracking.tracker import Tracker
from infertune.tuning import queries
from infertune.tuning.records import StudyView
from infertune.tuning.study import resolve_study_subject

PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
TAG = "infertune."
SIGNATURE_SAMPLES = 4


@dataclass(frozen=True)
class PromotionResult:
    """What a promotion or rollback did."""

    registered_model: str
    alias: str
    version: str
    previous_version: str | None
    changed: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


def _actor(explicit: str | None = None) -> str:
    """Who acts: the given identity (a dashboard login), else this process's OS user."""
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        raise RegistryError(
            f"Study '{study.study_name}' has no trial {number} (trials 0-{len(trials) - 1})."
        )
    return trials[number]


def promotion_problems(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> list[str]:
    """Why promoting ``trial`` needs ``--force`` (empty: it may be promoted)."""
    problems = []
    if trial.state is not optuna.trial.TrialState.COMPLETE:
        why = trial.user_attrs.get("fail_reason") or trial.user_attrs.get("pruned_reason")
        problems.append(f"it is {trial.state.name}" + (f" ({why})" if why else ""))
    if trial.user_attrs.get("feasible") is False:
        problems.append("it violates the constraints: " + "; ".join(trial.user_attrs["violations"]))
    on_front = {p["number"] for p in queries.front(study)["points"]}
    original = trial.user_attrs.get("duplicate_of", trial.number)
    if trial.state is optuna.trial.TrialState.COMPLETE and not {trial.number, original} & on_front:
        shown = ", ".join(f"#{n}" for n in sorted(on_front)) or "none"
        problems.append(f"it is not on the study's front (front: {shown})")
    return problems


def _promoted_figures(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The trial's figures: the verified ones (medians of the repeats) where it was verified."""
    verified = StudyView(study).verified or {}
    for candidate in verified.get("candidates", []):
        if candidate["number"] == trial.number:
            return dict(candidate["figures"])
    return dict(trial.user_attrs.get("figures") or {})


class Registry:
    """The MLflow Model Registry of the tracking URI, with the platform's audit trail."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.tracker = Tracker(settings)
        # The registry adapter is the one place outside tracking/ that calls MLflow's
        # model-registry API directly; everything else goes through the methods here.
        self._client = self.tracker.client

    # -- reads ---------------------------------------------------------------------------

    def registered_models(self) -> list[str]:
        """Names of every registered model in the MLflow registry, sorted.

        Raises:
            RegistryError: The registry cannot be read.
        """
        from mlflow.exceptions import MlflowException

        try:
            return sorted(str(m.name) for m in self._client.search_registered_models())
        except MlflowException as exc:
            raise RegistryError(f"Cannot read the MLflow registry: {exc}") from exc

    def aliases(self, name: str) -> dict[str, str]:
        """Alias -> version of registered model ``name`` (empty if it does not exist).

        Raises:
            RegistryError: The registry cannot be read.
        """
        from mlflow.exceptions import MlflowException

        try:
            model = self._client.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return {}
            raise RegistryError(f"Cannot read '{name}' from the MLflow registry: {exc}") from exc
        return {str(k): str(v) for k, v in (model.aliases or {}).items()}

    def version_config(self, name: str, version: str) -> dict[str, Any] | None:
        """The knob values promoted as ``version`` of ``name`` (its ``infertune.config`` tag).

        ``None`` for a version registered by hand, which carries no configuration.

        Raises:
            RegistryError: The version does not exist or the registry cannot be read.
        """
        from mlflow.exceptions import MlflowException

        try:
            found = self._client.get_model_version(name, version)
        except MlflowException as exc:
            raise RegistryError(
                f"Cannot read version {version} of '{name}' from the MLflow registry: {exc}"
            ) from exc
        tag = found.tags.get(TAG + "config")
        if not tag:
            return None
        config: dict[str, Any] = json.loads(tag)
        return config

    def _versions(self, name: str) -> list[Any]:
        from mlflow.exceptions import MlflowException

        try:
            found = self._client.search_model_versions(f"name = '{name}'")
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return []
            raise RegistryError(f"Cannot read '{name}' from the MLflow registry: {exc}") from exc
        return sorted(found, key=lambda v: int(v.version))

    def view(self, name: str) -> dict[str, Any]:
        """Versions, aliases and the promotion history of a registered model."""
        versions = self._versions(name)
        history = promotions(self.db, name)
        if not versions and not history:
            raise RegistryError(
                f"No registered model named '{name}'; promote a trial first: "
                f"infertune promote STUDY --trial N --name {name}."
            )
        aliases = self.aliases(name)
        return {
            "registered_model": name,
            "aliases": aliases,
            "versions": [
                {
                    "version": str(v.version),
                    "aliases": sorted(a for a, n in aliases.items() if n == str(v.version)),
                    "created_at": v.creation_timestamp,
                    "study": v.tags.get(TAG + "study"),
                    "trial": v.tags.get(TAG + "trial"),
                    "config": json.loads(v.tags.get(TAG + "config", "{}")),
                    "latency_p95_ms": v.tags.get(TAG + "latency_p95_ms"),
                    "accuracy": v.tags.get(TAG + "accuracy"),
                    "quality": v.tags.get(TAG + "quality"),
                    "mae": v.tags.get(TAG + "mae"),
                    "hardware_id": v.tags.get(TAG + "hardware_id"),
                    "scenario": v.tags.get(TAG + "scenario"),
                }
                for v in versions
            ],
            "history": history,
        }

    # -- promotion -----------------------------------------------------------------------

    def promote(
        self,
        study: optuna.Study,
        number: int,
        name: str,
        alias: str = "production",
        reason: str = "",
        force: bool = False,
        actor: str | None = None,
    ) -> PromotionResult:
        """Register trial ``number`` of ``study`` as a version of ``name``; move ``alias``.

        ``actor`` is who promotes, for the audit row (the dashboard's signed-in user); the
        OS user of this process when not given (the CLI).

        Raises:
            RegistryError: The trial needs ``force`` (the message says why), or it cannot
                be registered; nothing changed then.
        """
        trial = _trial(study, number)
        problems = promotion_problems(study, trial)
        if problems and not force:
            raise RegistryError(
                f"Trial {number} of study '{study.study_name}' is not a safe promotion: "
                f"{'; and '.join(problems)}. Pass --force to promote it anyway."
            )
        version = self._existing_version(name, study.study_name, number) or self._register(
            study, trial, name
        )
        return self._move_alias(
            name,
            alias,
            version,
            action="promote",
            reason=reason,
            forced=bool(problems),
            study=study,
            trial=trial,
            actor=actor,
        )

    def _existing_version(self, name: str, study: str, number: int) -> str | None:
        for v in self._versions(name):
            if v.tags.get(TAG + "study") == study and v.tags.get(TAG + "trial") == str(number):
                return str(v.version)
        return None

    def _register(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, name: str) -> str:
        """Build the pyfunc model of the trial and register it as a new version."""
        import mlflow.pyfunc
        from mlflow.exceptions import MlflowException
        from mlflow.models import infer_signature

        from infertune.runtimes import get_backend

        for logger in ("mlflow", "alembic"):
            logging.getLogger(logger).setLevel(logging.ERROR)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        raw_config = trial.user_attrs.get("config")
        if raw_config is None:
            raise RegistryError(f"Trial {trial.number} has no configuration to promote.")
        config = InferenceConfig.parse(**raw_config)
        spec = StudyView(study).spec
        if spec is None:
            raise RegistryError(f"Study '{study.study_name}' was not created by infertune.")
        space = spec.search_space()
        with Engine(self.settings) as engine:
            subject = resolve_study_subject(engine, study)
            variant = engine.variant(subject, config, space.finetune_epochs)
        expected = trial.user_attrs.get("variant_key")
        if expected is not None and variant.key != expected:
            raise RegistryError(
                f"The variant of trial {trial.number} cannot be reproduced (key {variant.key} "
                f"!= {expected}); the libraries that build it changed. Re-run the study."
            )
        # An array, or (several inputs) a dict of arrays by input name: the signature names them.
        sample = subject.serving_sample(SIGNATURE_SAMPLES)
        example = {k: v[:1] for k, v in sample.items()} if isinstance(sample, dict) else sample[:1]
        # The runtime's backend says how its model serves: settings, loader code, pins.
        options = get_backend(config.runtime).pyfunc_options(
            config.precision, config.threads, config.batch_size
        )
        model_config = options["model_config"]
        # How it was measured to serve: the scenario and the dynamic batcher's settings
        # (batch_size above is its largest batch). The pyfunc runs each request as given;
        # a serving layer in front of it (Triton, a queue) reads these to batch as measured.
        scenario = space.measurement.scenario
        model_config |= {
            "scenario": str(scenario.name),
            "instances": config.instances,
            "max_queue_delay_ms": config.max_queue_delay_ms,
        }
        if scenario.slo_p99_ms is not None:
            model_config["slo_p99_ms"] = scenario.slo_p99_ms
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id is None:
            raise RegistryError(f"Trial {trial.number} has no MLflow run to attach the model to.")
        figures = _promoted_figures(study, trial)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                probe, final = Path(tmp) / "probe", Path(tmp) / "model"
                common: dict[str, Any] = {
                    "python_model": str(PYFUNC_FILE),
                    "artifacts": {"variant": str(variant.path)},
                    **options,
                }
                # Save, load back and predict: the model is checked before it is registered,
                # and its outputs give the signature.
                mlflow.pyfunc.save_model(str(probe), **common)
                outputs = mlflow.pyfunc.load_model(str(probe)).predict(sample)
                mlflow.pyfunc.save_model(
                    str(final),
                    signature=infer_signature(sample, np.asarray(outputs)),
                    input_example=example,
                    metadata={"infertune": {"study": study.study_name, "trial": trial.number}},
                    **common,
                )
                artifact_path = f"registered-model/{name}"
                self.tracker.log_file(run_id, final, artifact_path)
            source = f"{self._client.get_run(run_id).info.artifact_uri}/{artifact_path}"
            try:
                self._client.create_registered_model(
                    name, description="Inference configurations promoted by infertune."
                )
            except MlflowException as exc:
                if "already exists" not in str(exc).lower():
                    raise
            tags = {
                TAG + "study": study.study_name,
                TAG + "trial": str(trial.number),
                TAG + "config": json.dumps(raw_config, sort_keys=True),
                TAG + "variant_key": variant.key,
                TAG + "hardware_id": str(StudyView(study).hardware_id or ""),
                **{TAG + k: str(v) for k, v in model_config.items() if k != "loader"},
                **{TAG + k: str(v) for k, v in figures.items() if v is not None},
            }
            version = self._client.create_model_version(
                name, source, run_id=run_id, tags=tags, description=f"{config.label()}"
            )
        except InfertuneError:
            raise
        except Exception as exc:
            raise RegistryError(
                f"Registering trial {trial.number} as a version of '{name}' failed: {exc}"
            ) from exc
        return str(version.version)

    def _move_alias(
        self,
        name: str,
        alias: str,
        version: str,
        action: str,
        reason: str,
        forced: bool = False,
        study: optuna.Study | None = None,
        trial: optuna.trial.FrozenTrial | None = None,
        actor: str | None = None,
    ) -> PromotionResult:
        previous = self.aliases(name).get(alias)
        if previous == version:
            return PromotionResult(
                name,
                alias,
                version,
                previous,
                changed=False,
                message=f"{name}@{alias} already points to version {version}; nothing changed.",
            )
        row = Promotion(
            action=action,
            registered_model=name,
            version=version,
            alias=alias,
            previous_version=previous,
            study_id=study_id(self.db, study.study_name) if study is not None else None,
            study_name=study.study_name if study is not None else None,
            trial_number=trial.number if trial is not None else None,
            config=(trial.user_attrs.get("config") or {}) if trial is not None else {},
            figures=_promoted_figures(study, trial) if study and trial else {},
            hardware_id=(StudyView(study).hardware_id if study is not None else None),
            forced=forced,
            actor=_actor(actor),
            reason=reason,
        )
        from mlflow.exceptions import MlflowException

        moved = False
        try:
            with self.db.session() as session:
                session.add(row)
                session.flush()  # the row is valid before the alias moves
                try:
                    self._client.set_registered_model_alias(name, alias, version)
                except MlflowException as exc:
                    raise RegistryError(
                        f"Moving {name}@{alias} to version {version} failed: {exc}"
                    ) from exc
                moved = True
        except BaseException:
            if moved:  # the audit row failed to commit: undo the alias move
                if previous is None:
                    self._client.delete_registered_model_alias(name, alias)
                else:
                    self._client.set_registered_model_alias(name, alias, previous)
            raise
        verb = "Promoted" if action == "promote" else "Rolled back"
        return PromotionResult(
            name,
            alias,
            version,
            previous,
            changed=True,
            message=f"{verb}: {name}@{alias} -> version {version}"
            + (f" (was {previous})." if previous else "."),
        )

    # -- rollback ------------------------------------------------------------------------

    def rollback(
        self, name: str, alias: str = "production", reason: str = "", actor: str | None = None
    ) -> PromotionResult:
        """Move ``alias`` back to the version promoted before the current one.

        ``actor`` is who rolls back, as for :meth:`promote`.
        """
        current = self.aliases(name).get(alias)
        if current is None:
            raise RegistryError(f"{name}@{alias} points to no version; nothing to roll back.")
        history = [h for h in promotions(self.db, name) if h["alias"] == alias]
        setters = [h for h in history if h["action"] == "promote" and h["version"] == current]
        if not setters:
            raise RegistryError(
                f"{name}@{alias} (version {current}) was not set by an infertune promotion, so "
                "there is no recorded earlier version; move the alias in MLflow instead."
            )
        target = setters[-1]["previous_version"]
        if target is None:
            raise RegistryError(
                f"Version {current} was the first promotion of {name}@{alias}; there is no "
                "earlier version to roll back to."
            )
        return self._move_alias(name, alias, target, action="rollback", reason=reason, actor=actor)
