"""What the dashboard's pages share: settings, cached reads and drawing helpers.

The numbers come from the package's query functions (``infertune.tuning.queries``,
``infertune.promotion.registry``), the same ones the CLI prints; this module only caches
them for a few seconds and turns them into figures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from infertune.config import Settings, load_settings
from infertune.exceptions import InfertuneError
from infertune.promotion.registry import Registry
from infertune.storage.db import Database
from infertune.tuning import queries
from infertune.tuning.study import storage_url

#: Seconds a page's data is reused before it is read again (a running study keeps moving).
TTL_S = 5
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


# -- cached reads ------------------------------------------------------------------------


@st.cache_data(ttl=TTL_S, show_spinner=False)
def studies_rows(storage: str) -> list[dict[str, Any]]:
    """Summaries of every study."""
    return queries.all_studies(storage)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def study_views(storage: str, name: str) -> dict[str, Any]:
    """Everything the study page draws, read in one go."""
    study = queries.load(name, storage)
    return {
        "summary": queries.summary(study),
        "plot": queries.front_plot_data(study),
        "trials": queries.trials_table(study),
        "history": queries.history(study),
    }


@st.cache_data(ttl=60, show_spinner=False)
def study_importance(storage: str, name: str, trial_count: int) -> dict[str, dict[str, float]]:
    """Optuna's importance (slower: recomputed only when the trial count changes)."""
    return queries.importance(queries.load(name, storage))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def trial_view(storage: str, name: str, number: int) -> dict[str, Any]:
    """One trial's detail."""
    return queries.trial_detail(queries.load(name, storage), number)


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


def refresh_button() -> None:
    """Drop cached data (a running study moves on)."""
    if st.button("Refresh", help="Read the database again (data is reused for 5 s)."):
        st.cache_data.clear()
        st.rerun()


def guarded(page: Callable[[], None]) -> Callable[[], None]:
    """Show infertune errors as one message instead of a traceback."""

    def run() -> None:
        try:
            page()
        except InfertuneError as exc:
            st.error(str(exc))

    run.__name__ = page.__name__
    return run


# -- drawing helpers ---------------------------------------------------------------------


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


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


def front_figure(plot: dict[str, Any], colour_by: str, y_key: str | None = None) -> go.Figure:
    """The Pareto front: all completed trials, front and verified points set apart."""
    x_key, y_key = plot["x"], y_key or plot["y"]
    figure = go.Figure()
    groups = sorted({str(p.get(colour_by)) for p in plot["points"]})
    for index, group in enumerate(groups):
        colour = COLOURS[index % len(COLOURS)]
        members = [p for p in plot["points"] if str(p.get(colour_by)) == group]
        dropped = [p for p in members if p["verified"] and not p["kept"]]
        for role, symbol, size, chosen in (
            ("front, verified", "star", 16, [p for p in members if p["kept"]]),
            ("front", "diamond", 12, [p for p in members if p["on_front"] and not p["kept"]]),
            ("dropped by verification", "circle-open", 10, dropped),
            (
                "other trials",
                "circle",
                8,
                [p for p in members if not p["on_front"] and not p["verified"]],
            ),
        ):
            if not chosen:
                continue
            errors = [p["error"].get(x_key) for p in chosen]
            has_errors = any(e is not None for e in errors)
            xs = [p["figures"].get(x_key) for p in chosen]
            figure.add_trace(
                go.Scatter(
                    x=xs,
                    y=[p["figures"].get(y_key) for p in chosen],
                    mode="markers",
                    name=f"{group} · {role}",
                    legendgroup=group,
                    marker={
                        "symbol": symbol,
                        "size": size,
                        "color": colour,
                        "opacity": 1.0 if p_feasible(chosen) else 0.35,
                        "line": {"width": 1, "color": "#333"},
                    },
                    error_x=(
                        {
                            "type": "data",
                            "symmetric": False,
                            "array": [
                                (e[1] - x) if e else 0 for e, x in zip(errors, xs, strict=True)
                            ],
                            "arrayminus": [
                                (x - e[0]) if e else 0 for e, x in zip(errors, xs, strict=True)
                            ],
                        }
                        if has_errors
                        else None
                    ),
                    customdata=[[p["number"]] for p in chosen],
                    hovertext=[_hover(p, x_key, y_key) for p in chosen],
                    hoverinfo="text",
                )
            )
    baseline = plot["baseline"] or {}
    if baseline.get(x_key) is not None and baseline.get(y_key) is not None:
        figure.add_trace(
            go.Scatter(
                x=[baseline[x_key]],
                y=[baseline[y_key]],
                mode="markers+text",
                name="baseline (tf fp32)",
                text=["baseline"],
                textposition="top center",
                marker={"symbol": "x", "size": 14, "color": "black"},
                hoverinfo="text",
                hovertext=[f"baseline tf fp32<br>{x_key} {_fmt(baseline[x_key])}"],
            )
        )
    figure.update_layout(
        xaxis_title=AXIS_TITLES.get(x_key, x_key)
        + (" (log scale)" if x_key.startswith("latency") else ""),
        yaxis_title=AXIS_TITLES.get(y_key, y_key),
        height=480,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "y": -0.2},
    )
    if x_key.startswith("latency"):
        figure.update_xaxes(type="log")
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


def p_feasible(points: list[dict[str, Any]]) -> bool:
    """Whether a group of points is feasible (infeasible ones are greyed)."""
    return all(p["feasible"] is not False for p in points)


def _hover(point: dict[str, Any], x_key: str, y_key: str) -> str:
    figures = point["figures"]
    lines = [
        f"trial {point['number']}: {describe(point['config'])}",
        f"{x_key} {_fmt(figures.get(x_key))}",
        f"{y_key} {_fmt(figures.get(y_key), 4)}",
    ]
    if point.get("speedup_p95"):
        lines.append(f"speed-up (p95) {point['speedup_p95']:.2f}x")
    for key in ("latency_p50_ms", "agreement", "model_size_mb"):
        if figures.get(key) is not None:
            lines.append(f"{key} {_fmt(figures[key], 4)}")
    if point["violations"]:
        lines.append("infeasible: " + "; ".join(point["violations"]))
    if point["verified"]:
        lines.append("verified" + ("" if point["kept"] else " (dropped)"))
    return "<br>".join(lines)


#: Pages, by their file relative to app.py (for links between them).
STUDIES_PAGE = "views/studies.py"
STUDY_PAGE = "views/study.py"
TRIAL_PAGE = "views/trial.py"
REGISTRY_PAGE = "views/registry.py"
LAUNCH_PAGE = "views/launch.py"


def selected_study() -> str | None:
    """The study chosen in the URL (``?study=``) or the selector."""
    names = [r["study"] for r in studies_rows(url())]
    if not names:
        st.info("No studies yet.")
        return None
    wanted = st.query_params.get("study")
    index = names.index(wanted) if wanted in names else 0
    name = st.selectbox("Study", names, index=index)
    st.query_params["study"] = name
    return str(name)
