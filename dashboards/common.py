"""What the dashboard's pages share: settings, cached reads and drawing helpers.

The numbers come from the package's query functions (``infertune.tuning.queries``,
``infertune.promotion.registry``), the same ones the CLI prints; this module caches them and
turns them into figures.

A study's data is cached under its *version* (``queries.version``: it changes whenever a
trial starts or ends or the front is verified), not for a few seconds: a page drawn again
reads nothing while the study stands still, and shows a new trial at once when it moves.
The version itself is looked up on every run (two indexed queries). The study lists, the
summaries and the notes are cheap reads and are never cached.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
import plotly.graph_objects as go
import streamlit as st

from infertune.config import Settings, load_settings
from infertune.exceptions import InfertuneError
from infertune.knobs.spec import InferenceConfig
from infertune.promotion.registry import Registry
from infertune.storage.db import Database
from infertune.tuning import queries
from infertune.tuning.study import storage_url

#: Versions of study data kept per cached read (several studies, users and a running study's
#: newest versions); the oldest go first.
KEPT_VERSIONS = 16
#: Rows per page of the trials table (read from the database a page at a time).
PAGE_ROWS = 100
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


@st.cache_resource
def settings() -> Settings:
    """The dashboard's settings (from the environment ``infertune dashboard`` sets)."""
    return load_settings()


def url() -> str:
    """The Optuna storage: the platform database."""
    return storage_url(settings(), None)


@st.cache_resource
def database() -> Database:
    """The platform database, schema checked once per server."""
    db = Database(settings().database_url)
    db.ensure_schema()
    return db


@st.cache_resource(show_spinner=False)
def optuna_storage(storage: str) -> optuna.storages.BaseStorage:
    """Optuna's storage at a URL, opened once per server.

    Opening one makes an engine and checks the schema (tens of milliseconds); every read
    of every page would pay it again.
    """
    return optuna.storages.get_storage(storage)


def load_study(storage: str, name: str) -> optuna.Study:
    """A study, opened on the server's storage (cheap: no trial is read)."""
    return queries.load(name, optuna_storage(storage))


# -- reads that are not cached (cheap) -----------------------------------------------------


def study_names(storage: str) -> list[str]:
    """The studies' names (no trial read): for pickers."""
    return queries.study_names(optuna_storage(storage))


def studies_rows(storage: str) -> list[dict[str, Any]]:
    """The summary of every study (one stored row each, brought up to date)."""
    return queries.all_studies(optuna_storage(storage))


def study_summary(storage: str, name: str) -> dict[str, Any]:
    """One study's summary (its stored row, brought up to date)."""
    return queries.summary(load_study(storage, name))


def study_version(storage: str, name: str) -> str:
    """The key of a study's cached data: changes whenever a trial starts or ends."""
    return queries.version(load_study(storage, name))


def study_notes(storage: str, name: str) -> dict[str, Any]:
    """A study's notes (study attributes: read fresh, so another user's note shows)."""
    return queries.notes(load_study(storage, name))


# -- reads cached under the study's version ------------------------------------------------
# Each takes the version only as the cache key: the value is read for whatever the study
# holds when the cache misses, which is that version or a newer one.


@st.cache_data(max_entries=KEPT_VERSIONS, show_spinner=False)
def summary_at(storage: str, name: str, version: str) -> dict[str, Any]:
    """A study's summary (:func:`study_summary`), cached under its version."""
    return study_summary(storage, name)


@st.cache_resource(max_entries=KEPT_VERSIONS, show_spinner="Reading the completed trials…")
def front_plot(storage: str, name: str, version: str) -> dict[str, Any]:
    """Every completed trial placed for the front plot, and each varied knob's values.

    Shared, not copied: at 10,000 trials a copy (``st.cache_data`` unpickles one on every
    rerun) took 0.1-0.2 s. Read it only; build new lists and dicts for what a page changes.
    """
    plot = queries.front_plot_data(load_study(storage, name))
    plot["knob_values"] = knob_values(plot["points"])
    return plot


@st.cache_data(max_entries=KEPT_VERSIONS, show_spinner=False)
def knob_choices(storage: str, name: str, version: str) -> dict[str, list[str]]:
    """The runtimes and precisions among the study's trials (filter choices)."""
    return queries.knob_choices(load_study(storage, name))


@st.cache_data(max_entries=4 * KEPT_VERSIONS, show_spinner=False)
def trials_page(
    storage: str,
    name: str,
    version: str,
    query: tuple[tuple[str, Any], ...],
    page: int,
) -> list[dict[str, Any]]:
    """One page (from 1) of the trials table, filtered in the database.

    ``query`` holds :func:`queries.trials_table`'s filters as sorted (name, value) pairs.
    """
    return queries.trials_table(
        load_study(storage, name),
        **dict(query),
        limit=PAGE_ROWS,
        offset=(page - 1) * PAGE_ROWS,
    )


@st.cache_data(max_entries=4 * KEPT_VERSIONS, show_spinner=False)
def trials_count(storage: str, name: str, version: str, query: tuple[tuple[str, Any], ...]) -> int:
    """How many trials pass the filters (``query`` as in :func:`trials_page`)."""
    filters = {k: v for k, v in query if k != "newest_first"}
    return queries.count_trials(load_study(storage, name), **filters)


@st.cache_data(max_entries=KEPT_VERSIONS, show_spinner=False)
def trial_runs(storage: str, name: str, version: str) -> dict[str, Any]:
    """The study's MLflow experiment and each trial's run id."""
    return queries.trial_runs(load_study(storage, name))


@st.cache_data(max_entries=KEPT_VERSIONS, show_spinner=False)
def serving_view(storage: str, name: str, version: str) -> dict[str, Any] | None:
    """Rate vs p99 of the front's points (``None`` unless a server study)."""
    return queries.serving_curves(load_study(storage, name))


@st.cache_data(max_entries=KEPT_VERSIONS, show_spinner="Reading the history…")
def history_view(storage: str, name: str, version: str) -> dict[str, Any]:
    """Each objective per completed trial with the best so far."""
    return queries.history(load_study(storage, name))


@st.cache_data(max_entries=KEPT_VERSIONS, show_spinner="Scoring the knobs (fANOVA)…")
def importance_view(storage: str, name: str, version: str) -> dict[str, dict[str, Any]]:
    """Importance of each knob, by fANOVA (slow; also stored per study size in the database)."""
    return queries.knob_importance(load_study(storage, name))


@st.cache_data(max_entries=4 * KEPT_VERSIONS, show_spinner=False)
def trial_view(storage: str, name: str, number: int, version: str) -> dict[str, Any]:
    """One trial's detail (that trial read alone)."""
    return queries.trial_detail(load_study(storage, name), number)


def save_note(name: str, text: str, trial: int | None = None) -> None:
    """Write a note on a study or trial (as the signed-in user); notes are read uncached."""
    queries.set_note(load_study(url(), name), text, trial, actor=actor())


def mlflow_link(experiment_id: str | None, run_id: str | None) -> str | None:
    """The MLflow UI address of a run, when the tracking store is an MLflow server."""
    tracking = settings().tracking_uri
    if not run_id or not experiment_id or not tracking.startswith(("http://", "https://")):
        return None
    return f"{tracking.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


@st.cache_data(ttl=3600, show_spinner=False)
def measurement(run_id: str) -> dict[str, Any] | None:
    """The measurement JSON logged with a trial's MLflow run (None if it has none)."""
    from infertune.tracking.tracker import Tracker

    try:
        loaded = Tracker(settings()).load_json(run_id, "measurement.json")
    except InfertuneError:  # the MLflow store cannot be opened
        return None
    return loaded if isinstance(loaded, dict) else None


def registry() -> Registry:
    """The registry with the platform's audit trail."""
    return Registry(settings(), database())


def actor() -> str:
    """Who acts in this session: the signed-in identity (set by ``login.require_login``)."""
    return str(st.session_state.get("infertune_actor") or "unknown")


def refresh_button() -> None:
    """Draw the page again: a running study's new trials show (its data is read anew).

    Nothing is dropped: what is cached is keyed by each study's version, so a study that
    moved on is read again and one that did not is not.
    """
    st.button(
        "Refresh",
        help="Draw the page again with the trials that started or ended since.",
    )


_FLASH_KEY = "infertune_flash"


def flash(message: str) -> None:
    """Keep a success message for the next run (shown by :func:`show_flash` after a rerun)."""
    st.session_state[_FLASH_KEY] = message


def show_flash() -> None:
    """Show (once) the message a previous run kept with :func:`flash`."""
    message = st.session_state.pop(_FLASH_KEY, None)
    if message:
        st.success(message)


#: CLI wording in messages from the package, and what the web form calls it.
_WEB_WORDS = (
    ("Pass --force to promote it anyway", "Tick *Force* to promote it anyway"),
    ("--force", "*Force*"),
)


def web_text(message: str) -> str:
    """A package message worded for the web page (its CLI options named as the form's fields)."""
    for cli, web in _WEB_WORDS:
        message = message.replace(cli, web)
    return message


def guarded(page: Callable[[], None]) -> Callable[[], None]:
    """Show infertune errors as one message instead of a traceback."""

    def run() -> None:
        try:
            page()
        except InfertuneError as exc:
            st.error(web_text(str(exc)))

    run.__name__ = page.__name__
    return run


# -- drawing helpers ---------------------------------------------------------------------


def _fmt(value: Any, digits: int = 4) -> str:
    return number(value, digits)


def describe(config: dict[str, Any] | None) -> str:
    """A configuration in a few words."""
    if not config:
        return "—"
    parts = [str(config.get("runtime")), str(config.get("precision"))]
    if config.get("prune_ratio"):
        parts.append(f"prune {config['prune_ratio']:g}")
    if config.get("batch_size", 1) != 1:
        parts.append(f"bs {config['batch_size']}")
    if config.get("threads"):
        parts.append(f"{config['threads']} threads")
    return " ".join(parts)


#: Above this many points the front chart's plain trials are drawn small and faint with a
#: short hover, so the front and the colour groups stay visible among thousands of points
#: and the page sends little more than their coordinates; other plots draw with WebGL.
MANY_POINTS = 1000
#: At most this many trials in the parallel-coordinate and slice plots: the front and a
#: fixed sample of the others beyond it.
MAX_SAMPLED = 2000
#: The baseline's marker: a colour that reads on light and dark backgrounds alike.
BASELINE_COLOUR = "#e45756"


def is_baseline_config(config: dict[str, Any] | None) -> bool:
    """Whether a trial ran the baseline's settings (tf, fp32, every other knob at its default)."""
    if not config:
        return False
    # Most trials differ in runtime or precision: skip parsing them (thousands per page).
    if config.get("runtime", "tf") != "tf" or config.get("precision", "fp32") != "fp32":
        return False
    try:
        return InferenceConfig.parse(**config) == InferenceConfig()
    except (InfertuneError, ValueError, TypeError):
        return False


def _objective_axes(figure: go.Figure, x_key: str, y_key: str, height: int) -> go.Figure:
    """Titles, size, legend and log latency axes of a plot of one objective against another."""
    figure.update_layout(
        xaxis_title=axis_title(x_key),
        yaxis_title=axis_title(y_key),
        height=height,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "y": -0.2},
    )
    log_axis(figure, "x", x_key)
    log_axis(figure, "y", y_key)
    return figure


def log_axis(figure: go.Figure, axis: str, key: str) -> None:
    """A latency axis on a log scale, ticked at 1-2-5 steps written as plain ms.

    Plotly's default ticks use SI prefixes, so 0.002 ms reads ``2m`` (as if milliseconds)
    and 2000 ms ``2k``, and its minor ticks crowd; these are decimals at 1, 2 and 5.
    """
    if not key.startswith("latency"):
        return
    lows, highs = [], []
    for trace in figure.data:
        positive = _positive(getattr(trace, axis, None))
        if positive.size:
            lows.append(float(positive.min()))
            highs.append(float(positive.max()))
    update = figure.update_xaxes if axis == "x" else figure.update_yaxes
    ticks = log_ticks(min(lows), max(highs)) if lows else []
    update(
        type="log",
        exponentformat="none",
        tickvals=ticks or None,
        ticktext=[f"{t:g} ms" for t in ticks] or None,
    )


def _positive(data: Any) -> np.ndarray[Any, np.dtype[np.float64]]:
    """A trace's positive coordinates (none for a missing or a category axis).

    Vectorised: a front plot has thousands of points per trace.
    """
    if data is None:
        return np.empty(0)
    try:
        values = np.asarray(data, dtype=float)  # a missing value (None) becomes NaN
    except (TypeError, ValueError):  # category names
        return np.empty(0)
    return values[values > 0]


def log_ticks(low: float, high: float) -> list[float]:
    """Ticks at 1, 2 and 5 times powers of ten covering ``[low, high]`` (and one beyond)."""
    import math

    ticks = []
    for exponent in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1):
        for step in (1, 2, 5):
            tick = float(f"{step * 10.0**exponent:.12g}")
            if low / 2.5 <= tick <= high * 2.5:
                ticks.append(tick)
    return ticks


def axis_title(key: str) -> str:
    """A figure's axis title, saying when its axis is logarithmic."""
    return AXIS_TITLES.get(key, key) + (" (log scale)" if key.startswith("latency") else "")


def number(value: Any, digits: int = 4) -> str:
    """A number as people read it: 4 significant digits, no float noise."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def serving_figure(serving: dict[str, Any]) -> go.Figure:
    """Offered rate vs p99 for each front point of a server study, the objective as a line."""
    figure = go.Figure()
    for curve in serving["curves"]:
        points = [p for p in curve["points"] if p.get("latency_p99_ms") is not None]
        figure.add_trace(
            go.Scattergl(
                x=[p["target_qps"] for p in points],
                y=[p["latency_p99_ms"] for p in points],
                mode="lines+markers",
                name=f"#{curve['number']} {describe(curve['config'])}",
                marker={"symbol": ["circle" if p["valid"] else "x" for p in points]},
                hovertemplate="%{x:.0f} queries/s: p99 %{y:.2f} ms<extra></extra>",
            )
        )
    figure.add_hline(
        y=serving["slo_p99_ms"],
        line_dash="dash",
        annotation_text=f"objective p99 ≤ {serving['slo_p99_ms']:g} ms",
    )
    figure.update_layout(
        xaxis_title="offered rate (queries/s, Poisson arrivals)",
        yaxis_title="p99 latency (ms, from scheduled arrival)",
        yaxis_type="log",
        height=420,
        legend={"orientation": "h", "y": -0.25},
    )
    return figure


#: Axis titles of the figures a study may optimise.
AXIS_TITLES = {
    "latency_p50_ms": "p50 latency, ms",
    "latency_p90_ms": "p90 latency, ms",
    "latency_p95_ms": "p95 latency, ms",
    "latency_p99_ms": "p99 latency, ms",
    "latency_mean_ms": "mean latency, ms",
    "throughput_sps": "throughput, samples/s",
    "accuracy": "accuracy",
    "agreement": "agreement with fp32",
    "quality": "quality (accuracy, or MAE skill for regression)",
    "mae": "mean absolute error",
    "rmse": "root mean squared error",
    "r2": "R²",
    "rel_mae_vs_fp32": "MAE vs the fp32 model, relative",
    "model_size_mb": "model size, MiB",
    "peak_memory_mb": "peak memory, MiB",
}


def filter_points(
    points: list[dict[str, Any]], chosen: dict[str, list[str]], front_only: bool
) -> list[dict[str, Any]]:
    """The points whose knob values are among those chosen (all, for a knob not listed)."""
    return [
        p
        for p in points
        if (p["on_front"] or p["kept"] or not front_only)
        and all(str((p["config"] or {}).get(k, "default")) in v for k, v in chosen.items())
    ]


def history_figure(series: dict[str, list[Any]], figure_name: str, direction: str) -> go.Figure:
    """One objective per trial with the best so far; latency on a log axis.

    The best-so-far line is a step line: only the trials where it moves (and the last) are
    sent, not one point per trial.
    """
    steps = [
        i
        for i, best in enumerate(series["best"])
        if i == 0 or i == len(series["best"]) - 1 or best != series["best"][i - 1]
    ]
    chart = go.Figure()
    chart.add_trace(
        go.Scattergl(
            x=np.array(series["trial"]),
            y=np.array(series["value"], dtype=float),
            mode="markers",
            name="each trial",
            marker={"size": 6, "opacity": 0.6},
            hovertemplate="trial %{x}: %{y:.4g}<extra></extra>",
        )
    )
    chart.add_trace(
        go.Scatter(
            x=[series["trial"][i] for i in steps],
            y=[series["best"][i] for i in steps],
            mode="lines",
            name=f"best so far ({'lowest' if direction == 'minimize' else 'highest'})",
            line={"shape": "hv"},
        )
    )
    chart.update_layout(
        height=280,
        xaxis_title="trial number",
        yaxis_title=axis_title(figure_name),
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        legend={"orientation": "h", "y": -0.3},
    )
    log_axis(chart, "y", figure_name)
    return chart


def knob_values(points: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each varied knob's values among the points (a knob a trial did not set: ``default``)."""
    knobs = sorted({k for p in points for k in (p["config"] or {})})
    values = {
        k: sorted({str((p["config"] or {}).get(k, "default")) for p in points}) for k in knobs
    }
    return {k: v for k, v in values.items() if len(v) > 1}


def parallel_figure(plot: dict[str, Any], points: list[dict[str, Any]]) -> go.Figure:
    """Parallel coordinates: every varied knob, then each objective; coloured by the first."""
    knobs = knob_values(points)
    dimensions = []
    for knob, values in knobs.items():
        codes = [values.index(str((p["config"] or {}).get(knob, "default"))) for p in points]
        dimensions.append(
            {
                "label": knob,
                "values": codes,
                "tickvals": list(range(len(values))),
                "ticktext": values,
            }
        )
    for key in plot["objectives"]:
        dimensions.append(
            {"label": AXIS_TITLES.get(key, key), "values": [p["figures"].get(key) for p in points]}
        )
    first = [p["figures"].get(plot["x"]) or 0 for p in points]
    figure = go.Figure(
        go.Parcoords(
            line={"color": first, "colorscale": "Viridis", "showscale": True,
                  "colorbar": {"title": {"text": AXIS_TITLES.get(plot["x"], plot["x"])}}},
            dimensions=dimensions,
        )
    )  # fmt: skip
    figure.update_layout(height=420, margin={"l": 60, "r": 60, "t": 50, "b": 20})
    return figure


def slice_figure(points: list[dict[str, Any]], key: str) -> go.Figure:
    """Slice plots: ``key`` against each varied knob, one panel per knob."""
    from plotly.subplots import make_subplots

    knobs = knob_values(points)
    figure = make_subplots(rows=1, cols=max(1, len(knobs)), shared_yaxes=True,
                           subplot_titles=list(knobs) or [""])  # fmt: skip
    trace = go.Scattergl if len(points) > MANY_POINTS else go.Scatter
    ys = np.array([p["figures"].get(key) for p in points], dtype=float)
    trial_numbers = np.array([p["number"] for p in points])
    for column, knob in enumerate(knobs, start=1):
        figure.add_trace(
            trace(
                x=[str((p["config"] or {}).get(knob, "default")) for p in points],
                y=ys,
                mode="markers",
                marker={"size": 7, "opacity": 0.6, "color": COLOURS[0]},
                customdata=trial_numbers,
                hovertemplate="trial %{customdata}: %{y:.4g}<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=column,
        )
        figure.update_xaxes(type="category", categoryorder="category ascending", row=1, col=column)
    figure.update_yaxes(title_text=axis_title(key), row=1, col=1)
    log_axis(figure, "y", key)
    figure.update_layout(height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure


def sample_points(
    points: list[dict[str, Any]], limit: int = MAX_SAMPLED, seed: int = 0
) -> list[dict[str, Any]]:
    """At most ``limit`` points: all of the front (and verified ones), then a fixed sample.

    The sample is drawn with a fixed seed, so the plots do not change between redraws.
    """
    if len(points) <= limit:
        return points
    front = [p for p in points if p["on_front"] or p["verified"]]
    others = [p for p in points if not (p["on_front"] or p["verified"])]
    chosen = random.Random(seed).sample(others, max(0, limit - len(front)))
    return sorted([*front, *chosen], key=lambda p: int(p["number"]))


def compare_figure(plots: dict[str, dict[str, Any]], x_key: str, y_key: str) -> go.Figure:
    """The fronts of several studies on one plot (a study and its re-tunes), in order."""
    figure = go.Figure()
    for index, (name, plot) in enumerate(plots.items()):
        colour = COLOURS[index % len(COLOURS)]
        front = sorted(
            (p for p in plot["points"] if p["on_front"] or p["kept"]),
            key=lambda p: p["figures"].get(x_key) or 0,
        )
        others = [p for p in plot["points"] if not (p["on_front"] or p["kept"])]
        figure.add_trace(
            go.Scattergl(
                x=[p["figures"].get(x_key) for p in others],
                y=[p["figures"].get(y_key) for p in others],
                mode="markers",
                name=f"{name} · other trials",
                legendgroup=name,
                marker={"size": 5, "opacity": 0.25, "color": colour},
                hoverinfo="skip",
            )
        )
        figure.add_trace(
            go.Scatter(
                x=[p["figures"].get(x_key) for p in front],
                y=[p["figures"].get(y_key) for p in front],
                mode="lines+markers",
                line={"shape": "hv", "color": colour},
                name=f"{name} · front",
                legendgroup=name,
                marker={"size": 10, "color": colour, "symbol": "diamond"},
                customdata=[[name, p["number"]] for p in front],
                hovertemplate="%{customdata[0]} trial %{customdata[1]}<br>%{x:.4g}, %{y:.4g}"
                "<extra></extra>",
            )
        )
    return _objective_axes(figure, x_key, y_key, height=440)


#: Pages, by their file relative to app.py (for links between them).
STUDIES_PAGE = "views/studies.py"
STUDY_PAGE = "views/study.py"
TRIAL_PAGE = "views/trial.py"
REGISTRY_PAGE = "views/registry.py"
LAUNCH_PAGE = "views/launch.py"


def selected_study() -> str | None:
    """The study chosen in the URL (``?study=``) or the selector (names only: no trial read)."""
    names = study_names(url())
    if not names:
        st.info("No studies yet.")
        return None
    wanted = st.query_params.get("study")
    index = names.index(wanted) if wanted in names else 0
    name = st.selectbox("Study", names, index=index)
    st.query_params["study"] = name
    return str(name)
