"""Parallel trials on PostgreSQL (the server at 127.0.0.1:5432; skipped where it is missing)."""

from __future__ import annotations

import optuna
import pytest

from infertune.config import Settings
from infertune.measure.engine import Engine, Subject
from infertune.tracking.tracker import Tracker
from infertune.tuning.distributed import UNCOUNTED, finished_count
from infertune.tuning.front import pareto_front
from infertune.tuning.records import trial_rows
from infertune.tuning.sampling import make_sampler
from infertune.tuning.study import Tuner, objectives_of, open_study, storage_url, study_spec

from .test_study import tiny_space

pytestmark = pytest.mark.postgres


def test_parallel_trials_share_one_budget(
    engine: Engine, cnn: Subject, tracker: Tracker, settings: Settings, pg_url: str
) -> None:
    url = storage_url(settings, pg_url)
    assert url.startswith("postgresql+psycopg://")
    space = tiny_space()
    study, _ = open_study(
        "parallel", url, study_spec(cnn, space), space, make_sampler("random", 0, 4, space)
    )
    tuner = Tuner(settings, study, cnn, space, tracker, engine)
    tuner.start()
    try:
        tuner.run(n_trials=4, timeout=None, jobs=2)
    finally:
        tuner.close()
        tuner.finish()
    loaded = optuna.load_study(study_name="parallel", storage=url)
    trials = loaded.trials
    # Four trials count; a repeat that was followed by an unmeasured configuration does not.
    repeats = [t for t in trials if t.user_attrs.get(UNCOUNTED)]
    assert finished_count(loaded) == 4 and len(trials) == 4 + len(repeats)
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in trials)
    front = pareto_front(trial_rows(study), objectives_of(study))
    configs = [tuple(sorted(r["config"].items())) for r in front]
    assert len(configs) == len(set(configs))  # a configuration appears once on the front
