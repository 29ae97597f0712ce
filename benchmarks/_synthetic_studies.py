"""Synthetic studies of any size, copied from one small real study.

A real study (``infertune tune``) is run once, small; its study attributes are copied as
they are and its trials are drawn from again and again, with their figures, phase times and
timestamps varied (seeded), so that a synthetic study of 10,000 trials carries exactly the
attributes, parameters, distributions, values and states that real trials carry, in the
proportions the real study had them.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy as sa

from infertune.config import load_settings
from infertune.space.schema import Direction, Figure
from infertune.storage.db import normalize_url
from infertune.tuning.front import pareto_front

CLI = [sys.executable, "-m", "infertune"]
#: Trials written per ``add_trials`` call.
BATCH = 500
#: Folders of the default home the template's home links to: the demo models, the built
#: variants and caches are reused (nothing is retrained); MLflow's artifacts stay apart.
SHARED = ("demo", "variants", "cache")
#: Figures that scale with latency (multiplied by the same factor) and against it.
LATENCY = ("latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms")
PER_TIME = ("throughput_sps", "achieved_qps", "max_qps_at_slo", "gflops", "peak_pct")
SCORES = ("accuracy", "agreement", "quality")


@dataclass(frozen=True)
class Template:
    """A small real study to copy: where it is stored and its MLflow store."""

    db_url: str
    study: str
    mlflow_uri: str
    home: Path
    reused: bool = False
    """Found in the folder from an earlier run (not tuned now)."""


def tune_template(
    folder: Path, model: str, space: str, trials: int, name: str = "scale-template"
) -> Template:
    """Run (or reuse from an earlier run in ``folder``) a small real study to copy.

    The study, its MLflow store and artifacts live in ``folder``; the default home's demo
    models and variant cache are linked in, so nothing is trained or built again there.
    """
    folder.mkdir(parents=True, exist_ok=True)
    home = folder / "home"
    home.mkdir(exist_ok=True)
    default_home = load_settings().home
    for part in SHARED:
        link, target = home / part, default_home / part
        if target.is_dir() and not link.exists():
            link.symlink_to(target.resolve(), target_is_directory=True)
    template = Template(
        db_url=f"sqlite:///{folder / 'template.db'}",
        study=name,
        mlflow_uri=f"sqlite:///{folder / 'mlflow.db'}",
        home=home,
    )
    if (folder / "template.db").is_file() and name in optuna.get_all_study_names(
        normalize_url(template.db_url)
    ):
        print(f"template: reusing study {name} in {folder}")
        return dataclasses.replace(template, reused=True)
    print(f"template: infertune tune {model} --space {space} --trials {trials} ...", flush=True)
    start = time.perf_counter()
    command = [
        *CLI, "--home", str(home), "--db-url", template.db_url, "--mlflow-uri",
        template.mlflow_uri, "tune", model, "--space", space, "--trials", str(trials),
        "--study", name, "--json",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"the template study failed: {done.stderr.strip()[-800:]}")
    print(f"template: done in {time.perf_counter() - start:.0f} s")
    return template


def load_template(template: Template) -> optuna.Study:
    """The template study, read back."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=template.study, storage=normalize_url(template.db_url))


def _vary(figures: dict[str, Any] | None, factor: float, rng: random.Random) -> dict[str, Any]:
    """The figures of another measurement of the same configuration (seeded noise)."""
    if not figures:
        return {}
    out = dict(figures)
    for key, value in figures.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if key in LATENCY or key in ("latency_mean_ms", "cost_per_million"):
            out[key] = value * factor
        elif key in PER_TIME:
            out[key] = value / factor
        elif key in SCORES:
            out[key] = min(1.0, max(0.0, value * (1 + rng.gauss(0, 0.002))))
        elif key == "peak_memory_mb":
            out[key] = round(value * (1 + rng.gauss(0, 0.02)), 1)
    return out


def _objective_values(
    base: optuna.trial.FrozenTrial, objectives: list[str], figures: dict[str, Any]
) -> list[float] | None:
    """The trial's values: its objectives' figures (as the lifecycle reports them)."""
    if base.values is None:
        return None
    values = []
    for name, old in zip(objectives, base.values, strict=False):
        value = figures.get(name)
        values.append(float(value) if isinstance(value, int | float) else old)
    return values if len(values) == len(base.values) else list(base.values)


def synthetic_trials(
    template: optuna.Study, count: int, seed: int
) -> Iterator[optuna.trial.FrozenTrial]:
    """``count`` trials drawn from the template's finished trials, with varied figures."""
    rng = random.Random(seed)
    pool = [
        t
        for t in template.get_trials(deepcopy=False)
        if t.state
        in (
            optuna.trial.TrialState.COMPLETE,
            optuna.trial.TrialState.PRUNED,
            optuna.trial.TrialState.FAIL,
        )
    ]
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in pool):
        sys.exit(f"the template study {template.study_name} has no completed trial to copy")
    attrs = template.user_attrs
    objectives = list(attrs.get("infertune.objectives") or {})
    baseline_p95 = (attrs.get("infertune.baseline") or {}).get("latency_p95_ms")
    # The study ran until now, trial after trial (timestamps in UTC, naive, as Optuna's).
    took = [(t.user_attrs.get("phases_s") or {}).get("total") or 1.0 for t in pool]
    clock = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(
        seconds=count * (statistics.fmean(took) + 0.01)
    )
    for _ in range(count):
        base = rng.choice(pool)
        factor = math.exp(rng.gauss(0, 0.12))
        user = copy.deepcopy(base.user_attrs)
        figures = _vary(user.get("figures"), factor, rng)
        if figures:
            user["figures"] = figures
        p95 = figures.get("latency_p95_ms")
        if user.get("speedup_p95") is not None and baseline_p95 and p95:
            user["speedup_p95"] = baseline_p95 / p95
        phases = user.get("phases_s")
        if phases:
            jitter = math.exp(rng.gauss(0, 0.2))
            parts = {k: round(v * jitter, 4) for k, v in phases.items() if k != "total"}
            user["phases_s"] = parts | {"total": round(sum(parts.values()), 4)}
        start = clock
        clock = start + dt.timedelta(seconds=(user.get("phases_s") or {}).get("total") or 1.0)
        clock += dt.timedelta(seconds=0.01)
        yield optuna.trial.FrozenTrial(
            number=0,  # numbered by the storage
            trial_id=0,
            state=base.state,
            value=None,
            values=_objective_values(base, objectives, figures)
            if base.state == optuna.trial.TrialState.COMPLETE
            else None,
            datetime_start=start,
            datetime_complete=clock,
            params=dict(base.params),
            distributions=dict(base.distributions),
            user_attrs=user,
            system_attrs=copy.deepcopy(base.system_attrs),
            intermediate_values=dict(base.intermediate_values),
        )


def _scaled(span: Any, ratio: float) -> Any:
    """An interval ``[low, high]`` moved with its figure."""
    if (
        isinstance(span, list | tuple)
        and len(span) == 2
        and all(isinstance(v, int | float) for v in span)
    ):
        return [span[0] * ratio, span[1] * ratio]
    return span


def verification_of(
    attrs: dict[str, Any], trials: list[optuna.trial.FrozenTrial]
) -> dict[str, Any] | None:
    """The template's verification, redone for these trials' front (so that it is current).

    A real study is verified after its search: its front is shown with intervals. Each
    candidate keeps the shape of one of the template's, with its intervals moved to the
    new trial's figures. ``trials`` are numbered by position.
    """
    verified = attrs.get("infertune.verified")
    if not verified or not verified.get("candidates"):
        return None
    objectives = {
        Figure(k): Direction(v) for k, v in (attrs.get("infertune.objectives") or {}).items()
    }
    rows = [
        {
            "number": number,
            "state": t.state.name,
            "feasible": t.user_attrs.get("feasible"),
            "figures": t.user_attrs.get("figures"),
            "config": t.user_attrs.get("config"),
            "speedup_p95": t.user_attrs.get("speedup_p95"),
        }
        for number, t in enumerate(trials)
    ]
    shapes = verified["candidates"]
    candidates = []
    for i, row in enumerate(pareto_front(rows, objectives)):
        shape = copy.deepcopy(shapes[i % len(shapes)])
        old = shape.get("figures") or {}
        ratios = {
            k: v / old[k]
            for k, v in row["figures"].items()
            if isinstance(v, int | float) and isinstance(old.get(k), int | float) and old[k]
        }
        for part in ("intervals", "spread"):
            if isinstance(shape.get(part), dict):
                shape[part] = {k: _scaled(v, ratios.get(k, 1.0)) for k, v in shape[part].items()}
        speedup = row["speedup_p95"]
        if speedup and shape.get("speedup_p95"):
            shape["speedup_p95_interval"] = _scaled(
                shape.get("speedup_p95_interval"), speedup / shape["speedup_p95"]
            )
        shape.update(
            number=row["number"],
            config=row["config"],
            figures=row["figures"],
            search_figures=row["figures"],
            speedup_p95=speedup,
            kept=True,
            ties_with=[],
            dominated_by=[],
        )
        candidates.append(shape)
    last = max((t.datetime_complete for t in trials if t.datetime_complete), default=None)
    at = last.strftime("%Y-%m-%dT%H:%M:%SZ") if last else verified.get("verified_at")
    return {**verified, "verified_at": at, "candidates": candidates}


def _fast_storage(url: str) -> optuna.storages.RDBStorage:
    """An Optuna storage whose commits skip the disk flush: setting up, not measuring."""
    normalized = normalize_url(url)
    if normalized.startswith("postgresql"):
        return optuna.storages.RDBStorage(
            normalized, engine_kwargs={"connect_args": {"options": "-c synchronous_commit=off"}}
        )
    storage = optuna.storages.RDBStorage(normalized)
    if normalized.startswith("sqlite"):

        def _no_sync(connection: Any, _record: Any) -> None:
            connection.execute("PRAGMA synchronous=OFF")

        sa.event.listen(storage.engine, "connect", _no_sync)
        storage.engine.dispose()  # connections opened before the listener
    return storage


def make_study(url: str, name: str, template: optuna.Study, count: int, seed: int) -> float:
    """Write a synthetic study of ``count`` trials into ``url``; the seconds it took."""
    start = time.perf_counter()
    storage = _fast_storage(url)
    try:
        study = optuna.create_study(
            study_name=name, storage=storage, directions=template.directions
        )
        trials = list(synthetic_trials(template, count, seed))
        first_start = trials[0].datetime_start if trials else None
        for key, value in template.user_attrs.items():
            if key == "infertune.created_at" and first_start is not None:
                value = first_start.strftime("%Y-%m-%dT%H:%M:%SZ")
            study.set_user_attr(key, value)
        for first in range(0, len(trials), BATCH):
            study.add_trials(trials[first : first + BATCH])
        verified = verification_of(template.user_attrs, trials)
        if verified is not None:
            study.set_user_attr("infertune.verified", verified)
    finally:
        storage.remove_session()
        storage.engine.dispose()
    return time.perf_counter() - start


def child_env(home: Path) -> dict[str, str]:
    """The environment of the CLI and dashboard processes: no login, the given home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERTUNE_")}
    env["INFERTUNE_HOME"] = str(home)
    return env
