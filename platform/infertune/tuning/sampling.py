"""Turn a search space into Optuna suggestions (define-by-run, conditional knobs)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

import optuna

from infertune.exceptions import ConfigurationError
from infertune.knobs.spec import InferenceConfig
from infertune.measure.fingerprint import usable_cores
from infertune.runtimes import get_backend
from infertune.space.schema import (
    Categorical,
    FloatRange,
    IntRange,
    Pow2Range,
    SearchSpace,
)

KNOB_ORDER = (
    "runtime",
    "precision",
    "prune_ratio",
    "batch_size",
    "threads",
    "instances",
    "max_queue_delay_ms",
)


#: Optuna parameter name of a power-of-two knob: its exponent is searched, so samplers see
#: an ordered integer rather than unordered categories.
def pow2_param(knob: str) -> str:
    """The Optuna parameter that holds the exponent of a power-of-two knob."""
    return f"{knob}_log2"


def precision_param(rng: Categorical, runtime: str) -> tuple[str, list[Any]]:
    """The Optuna parameter and choices of the ``precision`` knob under ``runtime``.

    Each runtime offers its own precisions (OpenVINO has no ``int8_dynamic``, LiteRT no
    ``bf16``): the space's choices are cut to those, and where that leaves fewer choices
    the parameter gets the runtime's name (``precision_openvino``), since an Optuna
    parameter keeps one set of choices for the whole study.
    """
    offered = {str(p) for p in get_backend(runtime).precisions}
    choices = [c for c in rng.choices if str(c) in offered]
    name = "precision" if len(choices) == len(rng.choices) else f"precision_{runtime}"
    return name, choices


def suggest_config(trial: optuna.trial.BaseTrial, space: SearchSpace) -> InferenceConfig:
    """Sample one configuration; a knob whose ``when`` fails keeps its default."""
    values: dict[str, Any] = {}
    for knob in KNOB_ORDER:
        rng = getattr(space.knobs, knob)
        if rng is None:
            continue
        if rng.when and not all(
            values.get(other, _default(other)) in allowed for other, allowed in rng.when.items()
        ):
            continue
        if knob == "precision" and isinstance(rng, Categorical):
            name, choices = precision_param(rng, values.get("runtime", _default("runtime")))
            if choices:  # else the runtime offers none of them: the default stays
                values[knob] = trial.suggest_categorical(name, choices)
        elif isinstance(rng, Categorical):
            values[knob] = trial.suggest_categorical(knob, rng.choices)
        elif isinstance(rng, IntRange):
            high = rng.resolved_high(usable_cores())
            values[knob] = trial.suggest_int(knob, rng.low, high, step=rng.step)
        elif isinstance(rng, FloatRange):
            values[knob] = trial.suggest_float(knob, rng.low, rng.high, step=rng.step)
        elif isinstance(rng, Pow2Range):
            exponent = trial.suggest_int(
                pow2_param(knob), int(math.log2(rng.low)), int(math.log2(rng.high))
            )
            values[knob] = 2**exponent
    return InferenceConfig.parse(**values)


def config_params(config: InferenceConfig, space: SearchSpace) -> dict[str, Any]:
    """The Optuna parameters that :func:`suggest_config` would sample for ``config``.

    Used to enqueue known configurations (warm starts, the baseline).
    """
    params: dict[str, Any] = {}
    # Every knob's value, those left out of the stored form at their defaults included.
    values = {knob: _default(knob) for knob in KNOB_ORDER} | config.model_dump(mode="json")
    for knob in KNOB_ORDER:
        rng = getattr(space.knobs, knob)
        if rng is None:
            continue
        if rng.when and not all(values[other] in allowed for other, allowed in rng.when.items()):
            continue
        if values[knob] is None and not isinstance(rng, Categorical):
            continue  # a default (e.g. all cores) outside the range: the sampler picks
        if isinstance(rng, Pow2Range):
            params[pow2_param(knob)] = int(math.log2(values[knob]))
        elif knob == "precision" and isinstance(rng, Categorical):
            params[precision_param(rng, values["runtime"])[0]] = values[knob]
        else:
            params[knob] = values[knob]
    return params


def _default(knob: str) -> Any:
    value = InferenceConfig.model_fields[knob].default
    return str(value) if isinstance(value, StrEnum) else value


def enumerate_configs(space: SearchSpace) -> list[InferenceConfig]:
    """Every configuration the space holds (conditional knobs counted right)."""
    combos: list[dict[str, Any]] = [{}]
    for knob in KNOB_ORDER:
        rng = getattr(space.knobs, knob)
        if rng is None:
            continue
        options = _options(knob, rng)
        grown = []
        for combo in combos:
            active = not rng.when or all(
                combo.get(other, _default(other)) in allowed for other, allowed in rng.when.items()
            )
            choices = options
            if knob == "precision" and isinstance(rng, Categorical):
                choices = precision_param(rng, combo.get("runtime", _default("runtime")))[1]
            grown += [{**combo, knob: v} for v in choices] if active and choices else [combo]
        combos = grown
    return [InferenceConfig.parse(**combo) for combo in combos]


def space_size(space: SearchSpace) -> int:
    """How many distinct configurations the space holds."""
    return len(enumerate_configs(space))


def _options(knob: str, rng: Any) -> Sequence[Any]:
    if isinstance(rng, Categorical):
        return rng.choices
    if isinstance(rng, IntRange):
        return range(rng.low, rng.resolved_high(usable_cores()) + 1, rng.step)
    if isinstance(rng, Pow2Range):
        return rng.values()
    if rng.step is None:
        raise ConfigurationError(f"Knob {knob} has no step, so the space is not enumerable.")
    count = round((rng.high - rng.low) / rng.step) + 1
    return [round(rng.low + i * rng.step, 10) for i in range(count)]


SAMPLERS = ("auto", "tpe", "nsga2", "random", "grid")


def make_sampler(
    name: str, seed: int | None, n_trials: int, space: SearchSpace
) -> optuna.samplers.BaseSampler:
    """Build a sampler by name.

    ``auto`` measures every configuration (grid) when the space is enumerable and the
    budget covers it, since nothing beats the exhaustive front; otherwise it is TPE.

    TPE is the default (as in Optuna 5 for several objectives): it starts learning after a
    few random trials, which suits the small budgets that measured trials afford; NSGA-II
    needs generations of trials to pay off. It is multivariate and grouped (one model per
    set of knobs that appear together, e.g. precision only with LiteRT): on
    ``benchmarks/search_efficiency.py`` that reached 0.95 of the exhaustive hypervolume at
    20% of the grid's trials against 0.92 for independent TPE, with a worst seed of 0.88
    against 0.58. Constraints reach TPE and NSGA-II through ``trial.set_constraint``.
    """
    if name == "auto":
        try:
            enumerable = space_size(space) <= n_trials
        except ConfigurationError:
            enumerable = False
        name = "grid" if enumerable else "tpe"
    if name == "tpe":
        with warnings.catch_warnings():
            # ``group`` is marked experimental in Optuna 5; its behaviour is what we measured.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=min(10, max(3, n_trials // 3)),
                multivariate=True,
                group=True,
            )
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(
            seed=seed, population_size=max(4, min(50, n_trials // 3))
        )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        space_size(space)  # refuses a space without steps
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.BruteForceSampler(seed=seed)
    raise ConfigurationError(f"Unknown sampler '{name}'; choose one of {', '.join(SAMPLERS)}.")
