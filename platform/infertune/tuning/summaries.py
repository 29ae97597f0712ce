"""Trial and study summaries: what lists and pages read instead of replaying Optuna's trials.

Reading every trial of a study through Optuna takes seconds at thousands of trials (each
trial's attributes, parameters and values are separate rows). So a summary row per trial
(``infertune_trial_summaries``) and per study (``infertune_study_summaries``, with the
shown front whole) live beside Optuna's tables, in the same database.

:func:`sync` brings them up to date: it compares each trial's id and state with Optuna's
(one indexed query of two columns), re-reads only the trials that changed, and recomputes
the front only when a finished trial or the study's verification changed. A study's own
processes call it when a trial or a verification ends; readers call it too, so rows that a
killed process, an older infertune or another Optuna client left behind are caught up on
the next read. Optuna stays the source of truth: every row can be rebuilt from it.

A study whose storage has no summary tables (an Optuna storage apart from the platform
database, an in-memory study) is read from Optuna as before.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import optuna
import orjson
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from infertune.space.schema import Direction, Figure
from infertune.storage.models import StudySummary, TrialSummary
from infertune.tuning.front import (
    VERIFY_CONFIDENCE,
    coverage_warning,
    interval_coverage,
    pareto_front,
    tied,
    verify_method,
)
from infertune.tuning.records import ATTR, TrialRecord, trial_rows

__all__ = [
    "STATES",
    "Summary",
    "backfill",
    "compute_front",
    "count_trials",
    "knob_values",
    "on_trial_end",
    "rows",
    "run_ids",
    "store_importance",
    "stored_importance",
    "sync",
]

log = logging.getLogger(__name__)

#: Trial states counted in a study's summary (a WAITING trial has not started).
STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING")
#: Above this many trials to catch up, all trials are read in one go rather than one by one.
BULK_READ = 200
#: Rows deleted or looked up per statement (PostgreSQL and SQLite cap bound parameters).
CHUNK = 500

_OPTUNA_TRIALS = sa.table(
    "trials",
    sa.column("trial_id", sa.Integer),
    sa.column("number", sa.Integer),
    sa.column("study_id", sa.Integer),
    sa.column("state", sa.String),
    sa.column("datetime_start", sa.DateTime),
)
_TRIALS = cast(sa.Table, TrialSummary.__table__)
_STUDIES = cast(sa.Table, StudySummary.__table__)

_has_tables: dict[str, bool] = {}
_has_tables_lock = threading.Lock()


@dataclass(frozen=True)
class Summary:
    """A study's summary as stored (or computed, where it could not be stored).

    Attributes:
        summary: The one-line facts (``queries.summary``'s shape).
        front: The shown front (``queries.front``'s shape).
        version: Changes whenever a trial starts or ends or the verification changes: a
            cache key for anything drawn from the study.
        stored: Whether the rows are in the database (else computed from Optuna).
    """

    summary: dict[str, Any]
    front: dict[str, Any]
    version: str
    stored: bool = True


def _backend(study: optuna.Study) -> Any:
    storage = study._storage  # Optuna keeps no public handle on a study's storage
    return getattr(storage, "_backend", storage)


def _engine(study: optuna.Study) -> sa.Engine | None:
    """The SQLAlchemy engine of the study's storage, if it holds the summary tables."""
    engine = getattr(_backend(study), "engine", None)
    if not isinstance(engine, sa.Engine):
        return None
    url = str(engine.url)
    with _has_tables_lock:
        known = _has_tables.get(url)
    if known is None:
        try:
            with engine.connect() as conn:
                inspector = sa.inspect(conn)
                known = inspector.has_table(_TRIALS.name) and inspector.has_table(_STUDIES.name)
        except SQLAlchemyError:
            return None
        if known:  # a missing table may be created later by an upgrade: ask again then
            with _has_tables_lock:
                _has_tables[url] = True
    return engine if known else None


def _key(attrs: dict[str, Any]) -> str:
    """What, beside the trials, decides the shown front: the verification, baseline, spec."""
    verified = attrs.get(ATTR + "verified") or {}
    parts = [
        attrs.get(ATTR + "spec_hash"),
        attrs.get(ATTR + "objectives"),
        attrs.get(ATTR + "baseline"),
        verified.get("verified_at"),
        [c.get("number") for c in verified.get("candidates") or []],
    ]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _objectives(attrs: dict[str, Any]) -> dict[Figure, Direction]:
    return {Figure(k): Direction(v) for k, v in (attrs.get(ATTR + "objectives") or {}).items()}


def _row_of(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    row = TrialRecord.from_trial(trial).row()
    row["values"] = list(trial.values) if trial.values is not None else None
    return row


def _record(
    study: str, identity: tuple[int, str, str | None], row: dict[str, Any]
) -> dict[str, Any]:
    config = row.get("config") or {}
    trial_id, state, started_at = identity
    return {
        "study": study,
        "number": row["number"],
        "trial_id": trial_id,
        "state": state,
        "started_at": started_at,
        "runtime": config.get("runtime"),
        "precision": config.get("precision"),
        "feasible": row.get("feasible"),
        "on_front": False,
        "speedup_p95": row.get("speedup_p95"),
        "mlflow_run_id": row.get("mlflow_run_id"),
        "row": row,
    }


def _chunks(items: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def sync(study: optuna.Study) -> Summary:
    """Bring the study's summary rows up to date with Optuna and return its summary.

    Cheap when nothing changed (two indexed queries); reads only the trials whose state
    changed otherwise. Never fails because the rows cannot be written (a read-only
    database, another process writing the same rows): the summary is then computed and
    returned unstored.
    """
    attrs = study.user_attrs
    engine = _engine(study)
    if engine is None:
        return _unstored(study, attrs)
    name = study.study_name
    study_id = study._study_id  # Optuna's id; no public accessor
    key = _key(attrs)
    try:
        with engine.connect() as conn:
            stored = conn.execute(sa.select(_STUDIES).where(_STUDIES.c.study == name)).first()
            if stored is not None and stored.optuna_study_id == study_id and stored.key == key:
                tally = _tally_optuna(conn, study_id)
                if tally == _tally_ours(conn, name):  # nothing changed: no trial is read
                    return Summary(
                        summary=dict(stored.summary),
                        front=dict(stored.front),
                        version=_version(
                            key,
                            collections.Counter({s: t[0] for s, t in tally.items()}),
                            max((t[1] for t in tally.values()), default=-1),
                        ),
                    )
            optuna_states = _optuna_states(conn, study_id)
            ours = _ours(conn, name)
    except SQLAlchemyError as exc:
        log.debug("summaries of %s unreadable (%s): computed from Optuna", name, exc)
        return _unstored(study, attrs)

    started = {n: v for n, v in optuna_states.items() if v[1] != "WAITING"}
    changed = sorted(n for n, v in started.items() if ours.get(n) != v)
    removed = sorted(n for n in ours if n not in started)
    counts = collections.Counter(state for _, state, _ in started.values())
    version = _version(key, counts, max(started, default=-1))
    if (
        stored is not None
        and stored.optuna_study_id == study_id
        and stored.key == key
        and not changed
        and not removed
    ):
        return Summary(summary=dict(stored.summary), front=dict(stored.front), version=version)
    # A trial that started changes no front; one that ended (or went) may.
    front_may_change = bool(removed) or any(started[n][1] != "RUNNING" for n in changed)
    for attempt in (1, 2):
        try:
            summary, front = _write(
                study, engine, stored, key, counts, started, changed, removed, front_may_change
            )
            return Summary(summary=summary, front=front, version=version)
        except SQLAlchemyError as exc:
            # Another process wrote the same rows at once (a unique key), or the database
            # is read-only: look again once, then compute without storing.
            log.debug("summaries of %s not written (%s), attempt %d", name, exc, attempt)
            if attempt == 1:
                try:
                    with engine.connect() as conn:
                        stored = conn.execute(
                            sa.select(_STUDIES).where(_STUDIES.c.study == name)
                        ).first()
                        ours = _ours(conn, name)
                except SQLAlchemyError:
                    break
                changed = sorted(n for n, v in started.items() if ours.get(n) != v)
                removed = sorted(n for n in ours if n not in started)
                front_may_change = True
    return _unstored(study, attrs)


def _write(
    study: optuna.Study,
    engine: sa.Engine,
    stored: Any,
    key: str,
    counts: collections.Counter[str],
    started: dict[int, tuple[int, str, str | None]],
    changed: list[int],
    removed: list[int],
    front_may_change: bool,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write the changed trial rows and the study's summary; the summary and front."""
    name = study.study_name
    study_id = study._study_id
    attrs = study.user_attrs
    anew = stored is not None and stored.optuna_study_id != study_id
    if anew:  # a study deleted and made again under the same name: start afresh
        changed, removed = sorted(started), []
    fetched = _fetch(study, [(n, started[n][0]) for n in changed])
    with engine.begin() as conn:
        if anew:
            conn.execute(sa.delete(_TRIALS).where(_TRIALS.c.study == name))
        for part in _chunks(sorted({*removed, *fetched})):
            conn.execute(
                sa.delete(_TRIALS).where(_TRIALS.c.study == name, _TRIALS.c.number.in_(part))
            )
        if fetched:
            conn.execute(
                sa.insert(_TRIALS),
                [_record(name, started[n], row) for n, row in fetched.items()],
            )
        if stored is None or anew or stored.key != key or front_may_change:
            complete = _read_rows(conn, name, states=("COMPLETE",))
            front = compute_front(name, attrs, complete)
            _mark_front(conn, name, {p["number"] for p in front["points"]})
        else:
            front = dict(stored.front)
        summary = _summary(name, attrs, counts, front)
        values: dict[str, Any] = {
            "optuna_study_id": study_id,
            "key": key,
            "summary": summary,
            "front": front,
        }
        if stored is None:
            conn.execute(sa.insert(_STUDIES).values(study=name, **values))
        else:
            if anew:
                values.update(importance=None, importance_trials=None)
            conn.execute(sa.update(_STUDIES).where(_STUDIES.c.study == name).values(**values))
    return summary, front


def _optuna_states(conn: sa.Connection, study_id: int) -> dict[int, tuple[int, str, str | None]]:
    """Each trial's number -> (Optuna id, state, start time) from Optuna's own table."""
    trials = _OPTUNA_TRIALS.c
    query = sa.select(trials.number, trials.trial_id, trials.state, trials.datetime_start).where(
        trials.study_id == study_id
    )
    return {
        number: (trial_id, getattr(state, "name", str(state)), _when(started))
        for number, trial_id, state, started in conn.execute(query)
    }


def _ours(conn: sa.Connection, name: str) -> dict[int, tuple[int, str, str | None]]:
    """Each summarised trial's number -> (Optuna id, state, start time)."""
    query = sa.select(
        _TRIALS.c.number, _TRIALS.c.trial_id, _TRIALS.c.state, _TRIALS.c.started_at
    ).where(_TRIALS.c.study == name)
    return {
        number: (trial_id, state, started)
        for number, trial_id, state, started in conn.execute(query)
    }


#: Per state: how many trials, and the highest number, Optuna id and start time among them.
_Tally = dict[str, tuple[int, int, int, str | None]]


def _tally_optuna(conn: sa.Connection, study_id: int) -> _Tally:
    """Optuna's trials of a study, tallied per state (started ones: WAITING left out).

    Equal to :func:`_tally_ours` exactly when every trial's summary row is up to date: a
    trial only moves forward (WAITING, RUNNING, then finished), so a row behind its trial
    leaves some count short, and a study deleted and made again (SQLite reuses ids) has
    later start times. One grouped query instead of reading every trial's state.
    """
    trials = _OPTUNA_TRIALS.c
    tally = _tally(
        conn,
        (trials.state, trials.number, trials.trial_id, trials.datetime_start),
        trials.study_id == study_id,
    )
    tally.pop("WAITING", None)
    return tally


def _tally_ours(conn: sa.Connection, name: str) -> _Tally:
    """The study's summary rows, tallied as :func:`_tally_optuna` tallies its trials."""
    rows = _TRIALS.c
    return _tally(
        conn, (rows.state, rows.number, rows.trial_id, rows.started_at), rows.study == name
    )


def _tally(
    conn: sa.Connection,
    columns: tuple[sa.ColumnElement[Any], ...],
    where: sa.ColumnElement[bool],
) -> _Tally:
    """Count and maxima of (state, number, trial id, start) rows, grouped by state."""
    state, number, trial_id, started = columns
    query = (
        sa.select(
            state, sa.func.count(), sa.func.max(number), sa.func.max(trial_id), sa.func.max(started)
        )
        .where(where)
        .group_by(state)
    )
    return {
        getattr(name, "name", str(name)): (
            int(count),
            int(last),
            int(last_id),
            start if isinstance(start, str) else _when(start),  # text in our rows
        )
        for name, count, last, last_id, start in conn.execute(query)
    }


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _version(key: str, counts: collections.Counter[str], last: int) -> str:
    return f"{key[:16]}:{last}:" + ",".join(f"{counts.get(s, 0)}" for s in STATES)


def _fetch(study: optuna.Study, wanted: list[tuple[int, int]]) -> dict[int, dict[str, Any]]:
    """The rows of the wanted trials (number, Optuna id), read from Optuna."""
    if not wanted:
        return {}
    if len(wanted) > BULK_READ:
        numbers = {n for n, _ in wanted}
        return {
            t.number: _row_of(t) for t in study.get_trials(deepcopy=False) if t.number in numbers
        }
    storage = study._storage
    return {number: _row_of(storage.get_trial(trial_id)) for number, trial_id in wanted}


def _read_rows(
    conn: sa.Connection,
    name: str,
    *,
    states: Sequence[str] | None = None,
    where: Sequence[sa.ColumnElement[bool]] = (),
    limit: int | None = None,
    offset: int = 0,
    newest_first: bool = False,
) -> list[dict[str, Any]]:
    # The JSON as text, parsed by orjson: at 10,000 rows the driver's json.loads took 0.16 s.
    row_text = sa.cast(_TRIALS.c.row, sa.Text)
    query = sa.select(row_text, _TRIALS.c.on_front).where(_TRIALS.c.study == name, *where)
    if states is not None:
        query = query.where(_TRIALS.c.state.in_(list(states)))
    query = query.order_by(_TRIALS.c.number.desc() if newest_first else _TRIALS.c.number)
    if limit is not None:
        query = query.limit(limit)
    if offset:
        query = query.offset(offset)
    with bulk_read():
        return [
            {**_loads(row), "on_front": bool(on_front)} for row, on_front in conn.execute(query)
        ]


@contextlib.contextmanager
def bulk_read() -> Iterator[None]:
    """Pause the cyclic garbage collector while thousands of rows become dicts.

    Each row makes several small dicts and lists, and CPython's collector, run every few
    hundred allocations, walks every object alive each time: at 10,000 trials it was half
    of building the front plot's points (0.28 -> 0.13 s). Nothing built here is cyclic.
    Process-wide: where another thread paused it too, whoever paused it first resumes it.
    """
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _loads(text: str | dict[str, Any]) -> dict[str, Any]:
    """A stored row's JSON (orjson; json where it holds ``NaN``, which orjson refuses)."""
    if isinstance(text, dict):  # a driver that parses JSON itself
        return text
    try:
        return cast(dict[str, Any], orjson.loads(text))
    except orjson.JSONDecodeError:
        return cast(dict[str, Any], json.loads(text))


def _mark_front(conn: sa.Connection, name: str, numbers: set[int]) -> None:
    conn.execute(
        sa.update(_TRIALS)
        .where(_TRIALS.c.study == name, _TRIALS.c.on_front.is_(True))
        .values(on_front=False)
    )
    for part in _chunks(sorted(numbers)):
        conn.execute(
            sa.update(_TRIALS)
            .where(_TRIALS.c.study == name, _TRIALS.c.number.in_(part))
            .values(on_front=True)
        )


def _summary(
    name: str, attrs: dict[str, Any], counts: collections.Counter[str], front: dict[str, Any]
) -> dict[str, Any]:
    spec = attrs.get(ATTR + "spec") or {}
    fingerprint = attrs.get(ATTR + "fingerprint") or {}
    speedups = [p["speedup_p95"] for p in front["points"] if p.get("speedup_p95")]
    hardware = fingerprint.get("hardware_id")
    return {
        "study": name,
        "model": spec.get("model"),
        "trials": {s: counts.get(s, 0) for s in STATES},
        "front_size": len(front["points"]),
        "best_speedup_p95": max(speedups, default=None),
        "verified": front["verified"],
        "hardware_id": str(hardware) if hardware is not None else None,
        "created_at": attrs.get(ATTR + "created_at"),
    }


def _unstored(study: optuna.Study, attrs: dict[str, Any]) -> Summary:
    """The summary computed from Optuna's trials (no summary tables, or none writable)."""
    all_rows = trial_rows(study)
    counts = collections.Counter(r["state"] for r in all_rows if r["state"] in STATES)
    front = compute_front(
        study.study_name, attrs, [r for r in all_rows if r["state"] == "COMPLETE"]
    )
    key = _key(attrs)
    last = max((r["number"] for r in all_rows if r["state"] in STATES), default=-1)
    return Summary(
        summary=_summary(study.study_name, attrs, counts, front),
        front=front,
        version=_version(key, counts, last),
        stored=False,
    )


# -- the shown front -------------------------------------------------------------------------


def compute_front(
    name: str, attrs: dict[str, Any], complete: list[dict[str, Any]]
) -> dict[str, Any]:
    """The front to show: the verified one when it exists and is current, else the search's.

    ``name`` is the study's, ``attrs`` its user attributes, ``complete`` its completed
    trials' rows. A verification is current if its candidates are the search's front (no
    trial finished after it changed the front).
    """
    objectives = _objectives(attrs)
    search_front = pareto_front(complete, objectives)
    verified = attrs.get(ATTR + "verified")
    current = verified is not None and {c["number"] for c in verified["candidates"]} == {
        r["number"] for r in search_front
    }
    baseline = attrs.get(ATTR + "baseline") or {}
    if verified is not None and current and verified.get("baseline"):
        # Timed with the candidates, in the same rounds: the speed-ups refer to it.
        baseline = verified["baseline"]["figures"]
    verification = None
    if verified is not None and current:
        verification, candidates = _verification(verified, objectives)
        points = [c for c in candidates if c["kept"]]
        dropped = [c for c in candidates if not c["kept"]]
    else:
        points = [
            {
                "number": r["number"],
                "config": r["config"],
                "figures": r["figures"],
                "speedup_p95": r["speedup_p95"],
                "spread": None,
                "intervals": None,
                "ties_with": [],
            }
            for r in search_front
        ]
        dropped = []
    feasible = [r for r in complete if r["feasible"]]
    infeasible = [r for r in complete if r["feasible"] is False]
    nearest = sorted(infeasible, key=lambda r: len(r["violations"]))[:3]
    return {
        "study": name,
        "objectives": {str(k): str(v) for k, v in objectives.items()},
        "baseline": baseline,
        "verified": current,
        "verified_at": verified["verified_at"] if verified is not None and current else None,
        "verification": verification,
        "points": points,
        "dropped_by_verification": dropped,
        "feasible_count": len(feasible),
        "nearest_infeasible": [_plain(r) for r in nearest] if not feasible else [],
    }


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A trial row as the CLI shows it (without the summary's own keys)."""
    return {k: v for k, v in row.items() if k not in ("values", "on_front")}


def _verification(
    verified: dict[str, Any], objectives: dict[Figure, Direction]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """How a stored verification was made, and its candidates with intervals and ties.

    A verification stored before intervals existed kept its spreads: ``[min, max]`` of its
    repeats, a valid interval of the median with coverage ``1 - 2 / 2**repeats``; the ties
    among its kept candidates are worked out from them (its kept set stays as decided).
    """
    repeats = int(verified.get("repeats") or 0)
    legacy = "coverage" not in verified
    coverage = interval_coverage(repeats) if legacy else float(verified["coverage"])
    candidates = [dict(c) for c in verified["candidates"]]
    if legacy:
        for c in candidates:
            c.update(intervals=c.get("spread") or {}, coverage=coverage, repeats=repeats)
            c.setdefault("dominated_by", [])
        kept = [c for c in candidates if c["kept"]]
        for c in candidates:
            c["ties_with"] = [
                o["number"] for o in kept if c["kept"] and o is not c and _tied(o, c, objectives)
            ]
    confidence = float(verified.get("confidence", VERIFY_CONFIDENCE))
    baseline = verified.get("baseline") or {}
    disturbed = sum(int(c.get("disturbed_repeats") or 0) for c in candidates) + int(
        baseline.get("disturbed_repeats") or 0
    )
    return {
        "disturbed_timings": disturbed,
        "repeats": repeats,
        # Empty when no baseline timing of the rounds was valid (the search's stands in).
        "baseline_intervals": baseline.get("intervals", baseline.get("spread")) or {},
        "confidence": confidence,
        "coverage": coverage,
        "method": verified.get("method") or verify_method(repeats, coverage),
        "warning": coverage_warning(repeats, coverage, confidence),
    }, candidates


def _tied(a: dict[str, Any], b: dict[str, Any], objectives: dict[Figure, Direction]) -> bool:
    spans = [
        {k: (float(v[0]), float(v[1])) for k, v in (p.get("intervals") or {}).items()}
        for p in (a, b)
    ]
    return tied(a["figures"], b["figures"], objectives, spans[0], spans[1])


# -- reads for lists, tables and plots -------------------------------------------------------


def _filters(
    *,
    on_front: bool | None = None,
    feasible: bool | None = None,
    runtime: Sequence[str] | None = None,
    precision: Sequence[str] | None = None,
) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if on_front is not None:
        where.append(_TRIALS.c.on_front.is_(on_front))
    if feasible is not None:
        where.append(_TRIALS.c.feasible.is_(feasible))
    if runtime:
        where.append(_TRIALS.c.runtime.in_(list(runtime)))
    if precision:
        where.append(_TRIALS.c.precision.in_(list(precision)))
    return where


def rows(
    study: optuna.Study,
    *,
    states: Sequence[str] | None = None,
    on_front: bool | None = None,
    feasible: bool | None = None,
    runtime: Sequence[str] | None = None,
    precision: Sequence[str] | None = None,
    limit: int | None = None,
    offset: int = 0,
    newest_first: bool = False,
    synced: bool = False,
) -> list[dict[str, Any]]:
    """Trial rows (``TrialRecord.row`` plus ``values`` and ``on_front``), filtered and paged.

    Filters run in the database where the study has summary rows, else over Optuna's
    trials. Pass ``synced=True`` when :func:`sync` has just run.
    """
    engine = _engine(study)
    if engine is not None:
        if not synced:
            sync(study)
        where = _filters(on_front=on_front, feasible=feasible, runtime=runtime, precision=precision)
        try:
            with engine.connect() as conn:
                return _read_rows(
                    conn,
                    study.study_name,
                    states=states,
                    where=where,
                    limit=limit,
                    offset=offset,
                    newest_first=newest_first,
                )
        except SQLAlchemyError as exc:
            log.debug("summary rows of %s unreadable (%s)", study.study_name, exc)
    front_numbers = {p["number"] for p in sync(study).front["points"]}
    out = []
    for trial in study.get_trials(deepcopy=False):
        row = {**_row_of(trial), "on_front": trial.number in front_numbers}
        config = row["config"] or {}
        if (
            (states is not None and row["state"] not in states)
            or row["state"] == "WAITING"
            or (on_front is not None and row["on_front"] != on_front)
            or (feasible is not None and row["feasible"] is not feasible)
            or (runtime and config.get("runtime") not in runtime)
            or (precision and config.get("precision") not in precision)
        ):
            continue
        out.append(row)
    if newest_first:
        out.reverse()
    return out[offset : offset + limit if limit is not None else None]


def count_trials(
    study: optuna.Study,
    *,
    states: Sequence[str] | None = None,
    on_front: bool | None = None,
    feasible: bool | None = None,
    runtime: Sequence[str] | None = None,
    precision: Sequence[str] | None = None,
) -> int:
    """How many trials :func:`rows` would return without a limit (for paging)."""
    engine = _engine(study)
    if engine is None:
        return len(
            rows(
                study,
                states=states,
                on_front=on_front,
                feasible=feasible,
                runtime=runtime,
                precision=precision,
            )
        )
    where = _filters(on_front=on_front, feasible=feasible, runtime=runtime, precision=precision)
    query = (
        sa.select(sa.func.count())
        .select_from(_TRIALS)
        .where(_TRIALS.c.study == study.study_name, *where)
    )
    if states is not None:
        query = query.where(_TRIALS.c.state.in_(list(states)))
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def knob_values(study: optuna.Study) -> dict[str, list[str]]:
    """The runtimes and precisions the study's trials used (for filter choices)."""
    engine = _engine(study)
    if engine is None:
        found: dict[str, set[str]] = {"runtime": set(), "precision": set()}
        for row in rows(study):
            for knob in found:
                value = (row["config"] or {}).get(knob)
                if value is not None:
                    found[knob].add(str(value))
        return {k: sorted(v) for k, v in found.items()}
    out = {}
    with engine.connect() as conn:
        for column in (_TRIALS.c.runtime, _TRIALS.c.precision):
            values = conn.execute(
                sa.select(column)
                .where(_TRIALS.c.study == study.study_name, column.is_not(None))
                .distinct()
            )
            out[column.name] = sorted(str(v) for (v,) in values)
    return out


def run_ids(study: optuna.Study) -> dict[int, str]:
    """Each trial's MLflow run id (trials without one left out), from two columns only."""
    engine = _engine(study)
    if engine is not None:
        sync(study)
        query = sa.select(_TRIALS.c.number, _TRIALS.c.mlflow_run_id).where(
            _TRIALS.c.study == study.study_name, _TRIALS.c.mlflow_run_id.is_not(None)
        )
        try:
            with engine.connect() as conn:
                return {int(n): str(run) for n, run in conn.execute(query)}
        except SQLAlchemyError as exc:
            log.debug("run ids of %s unreadable (%s)", study.study_name, exc)
    return {r["number"]: r["mlflow_run_id"] for r in rows(study) if r["mlflow_run_id"]}


def stored_importance(study: optuna.Study, complete: int) -> dict[str, Any] | None:
    """The knob importance stored for the study at ``complete`` completed trials, if any."""
    engine = _engine(study)
    if engine is None:
        return None
    try:
        with engine.connect() as conn:
            found = conn.execute(
                sa.select(_STUDIES.c.importance, _STUDIES.c.importance_trials).where(
                    _STUDIES.c.study == study.study_name
                )
            ).first()
    except SQLAlchemyError:
        return None
    if found is None or found.importance_trials != complete:
        return None
    value: dict[str, Any] | None = found.importance
    return value


def store_importance(study: optuna.Study, complete: int, importance: dict[str, Any]) -> None:
    """Keep the knob importance computed at ``complete`` completed trials."""
    engine = _engine(study)
    if engine is None:
        return
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.update(_STUDIES)
                .where(_STUDIES.c.study == study.study_name)
                .values(importance=importance, importance_trials=complete)
            )
    except SQLAlchemyError as exc:
        log.debug("importance of %s not stored (%s)", study.study_name, exc)


def on_trial_end(study: optuna.Study, _trial: optuna.trial.FrozenTrial | None = None) -> None:
    """Bring the summaries up to date as a trial or a verification ends (an Optuna callback).

    A summary is a cache: failing to write one is logged, never raised.
    """
    try:
        sync(study)
    except Exception as exc:
        log.warning("study %s: summary rows not updated (%s)", study.study_name, exc)


def backfill(storage: str | optuna.storages.BaseStorage) -> dict[str, int]:
    """Write the summaries of every study in the storage (after an upgrade): trials per study."""
    done = {}
    for name in optuna.get_all_study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage)
        summary = sync(study)
        done[name] = sum(summary.summary["trials"].values())
    return done
