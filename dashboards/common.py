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
from infertune.knobs.spec import InferenceConfig
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
        "serving": queries.serving_curves(study),
    }


@st.cache_data(ttl=60, show_spinner=False)
def study_knob_importance(storage: str, name: str, trial_count: int) -> dict[str, dict[str, Any]]:
    """Importance of each knob, by fANOVA (slow: recomputed only when the trial count changes)."""
    return queries.knob_importance(queries.load(name, storage))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def study_extras(storage: str, name: str) -> dict[str, Any]:
    """A study's notes, its trials' MLflow runs, and the studies of its line (re-tunes)."""
    study = queries.load(name, storage)
    return {
        "notes": queries.notes(study),
        "runs": queries.trial_runs(study),
        "related": queries.related_studies(study, storage),
    }


def save_note(name: str, text: str, trial: int | None = None) -> None:
    """Write a note on a study or trial (as the signed-in user) and drop cached data."""
    queries.set_note(queries.load(name, url()), text, trial, actor=actor())
    st.cache_data.clear()


def mlflow_link(experiment_id: str | None, run_id: str | None) -> str | None:
    """The MLflow UI address of a run, when the tracking store is an MLflow server."""
    tracking = settings().tracking_uri
    if not run_id or not experiment_id or not tracking.startswith(("http://", "https://")):
        return None
    return f"{tracking.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


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


def actor() -> str:
    """Who acts in this session: the signed-in identity (set by ``login.require_login``)."""
    return str(st.session_state.get("infertune_actor") or "unknown")


def refresh_button() -> None:
    """Drop cached data (a running study moves on)."""
    if st.button("Refresh", help="Read the database again (data is reused for 5 s)."):
        st.cache_data.clear()
        st.rerun()


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


#: Above this many completed trials the plain ones are drawn small and faint (WebGL), so
#: the front and the colour groups stay visible among thousands of points.
MANY_POINTS = 1500
#: The baseline's marker: a colour that reads on light and dark backgrounds alike.
BASELINE_COLOUR = "#e45756"


def is_baseline_config(config: dict[str, Any] | None) -> bool:
    """Whether a trial ran the baseline's settings (tf, fp32, every other knob at its default)."""
    if not config:
        return False
    try:
        return InferenceConfig.parse(**config) == InferenceConfig()
    except (InfertuneError, ValueError, TypeError):
        return False


def front_figure(plot: dict[str, Any], colour_by: str, y_key: str | None = None) -> go.Figure:
    """The Pareto front: all completed trials, front and verified points set apart.

    Plain trials are drawn first, so the front lies on top of them; with more than
    :data:`MANY_POINTS` trials they shrink and fade. A trial that ran the baseline's
    settings is ringed in the baseline's colour.
    """
    x_key, y_key = plot["x"], y_key or plot["y"]
    figure = go.Figure()
    many = len(plot["points"]) > MANY_POINTS
    groups = sorted({str(p.get(colour_by)) for p in plot["points"]})
    for index, group in enumerate(groups):
        colour = COLOURS[index % len(COLOURS)]
        members = [p for p in plot["points"] if str(p.get(colour_by)) == group]
        dropped = [p for p in members if p["verified"] and not p["kept"]]
        for role, symbol, size, chosen in (
            (
                "other trials",
                "circle",
                4 if many else 8,
                [p for p in members if not p["on_front"] and not p["verified"]],
            ),
            ("dropped by verification", "circle-open", 10, dropped),
            ("front", "diamond", 12, [p for p in members if p["on_front"] and not p["kept"]]),
            ("front, verified", "star", 16, [p for p in members if p["kept"]]),
        ):
            if not chosen:
                continue
            faint = many and role == "other trials"
            xs = [p["figures"].get(x_key) for p in chosen]
            ys = [p["figures"].get(y_key) for p in chosen]
            trace = go.Scattergl if faint else go.Scatter
            figure.add_trace(
                trace(
                    x=xs,
                    y=ys,
                    mode="markers",
                    name=f"{group} · {role}",
                    legendgroup=group,
                    marker={
                        "symbol": symbol,
                        "size": size,
                        "color": colour,
                        "opacity": 0.3 if faint else 1.0 if p_feasible(chosen) else 0.35,
                        "line": {"width": 0 if faint else 1, "color": "#888"},
                    },
                    # The median's confidence interval where verification measured one.
                    error_x=_error_bars(chosen, x_key, xs),
                    error_y=_error_bars(chosen, y_key, ys),
                    customdata=[[p["number"]] for p in chosen],
                    hovertext=[_hover(p, x_key, y_key) for p in chosen],
                    hoverinfo="text",
                )
            )
    _tie_links(figure, plot, x_key, y_key)
    same = [p for p in plot["points"] if is_baseline_config(p["config"])]
    if same:
        figure.add_trace(
            go.Scatter(
                x=[p["figures"].get(x_key) for p in same],
                y=[p["figures"].get(y_key) for p in same],
                mode="markers",
                name="trial with the baseline's settings",
                marker={
                    "symbol": "circle-open",
                    "size": 22,
                    "color": BASELINE_COLOUR,
                    "line": {"width": 2},
                },
                customdata=[[p["number"]] for p in same],
                hovertext=[f"trial {p['number']}: the baseline's settings" for p in same],
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
                textfont={"color": BASELINE_COLOUR},
                marker={
                    "symbol": "x",
                    "size": 14,
                    "color": BASELINE_COLOUR,
                    "line": {"width": 1, "color": "#888"},
                },
                hoverinfo="text",
                hovertext=[f"baseline tf fp32<br>{axis_title(x_key)} {number(baseline[x_key])}"],
            )
        )
    figure.update_layout(
        xaxis_title=axis_title(x_key),
        yaxis_title=axis_title(y_key),
        height=480,
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
    values = [
        float(v)
        for trace in figure.data
        for v in (getattr(trace, axis, None) or ())
        if isinstance(v, int | float) and v > 0
    ]
    update = figure.update_xaxes if axis == "x" else figure.update_yaxes
    ticks = log_ticks(min(values), max(values)) if values else []
    update(
        type="log",
        exponentformat="none",
        tickvals=ticks or None,
        ticktext=[f"{t:g} ms" for t in ticks] or None,
    )


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


def _error_bars(points: list[dict[str, Any]], key: str, values: list[Any]) -> dict[str, Any] | None:
    """Asymmetric error bars from each point's interval of ``key`` (none if no point has one)."""
    spans = [p["error"].get(key) for p in points]
    if all(s is None for s in spans) or any(v is None for v in values):
        return None
    pairs = list(zip(spans, values, strict=True))
    return {
        "type": "data",
        "symmetric": False,
        "array": [(s[1] - v) if s else 0 for s, v in pairs],
        "arrayminus": [(v - s[0]) if s else 0 for s, v in pairs],
    }


def _tie_links(figure: go.Figure, plot: dict[str, Any], x_key: str, y_key: str) -> None:
    """A dotted line between each pair of kept points that verification could not tell apart."""
    by_number = {p["number"]: p for p in plot["points"] if p["kept"]}
    xs: list[Any] = []
    ys: list[Any] = []
    for number, point in by_number.items():
        for other in point.get("ties_with") or []:
            if other > number and other in by_number:
                for end in (point, by_number[other]):
                    xs.append(end["figures"].get(x_key))
                    ys.append(end["figures"].get(y_key))
                xs.append(None)  # a break between pairs
                ys.append(None)
    if xs:
        figure.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                name="tie (intervals overlap)",
                line={"dash": "dot", "color": "#666", "width": 1.5},
                hoverinfo="skip",
            )
        )


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
    for key in (x_key, y_key):
        span = point["error"].get(key)
        if span:
            lines.append(f"{key} interval [{_fmt(span[0])}, {_fmt(span[1])}]")
    if point["verified"]:
        lines.append("verified" + ("" if point["kept"] else " (dropped)"))
    if point.get("ties_with"):
        lines.append("tied with " + ", ".join(f"#{n}" for n in point["ties_with"]))
    if point.get("dominated_by"):
        lines.append("surely dominated by " + ", ".join(f"#{n}" for n in point["dominated_by"]))
    return "<br>".join(lines)


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
    """One objective per trial with the best so far; latency on a log axis."""
    chart = go.Figure()
    chart.add_trace(
        go.Scattergl(
            x=series["trial"],
            y=series["value"],
            mode="markers",
            name="each trial",
            marker={"size": 6, "opacity": 0.6},
            hovertemplate="trial %{x}: %{y:.4g}<extra></extra>",
        )
    )
    chart.add_trace(
        go.Scatter(
            x=series["trial"],
            y=series["best"],
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


def _knob_values(points: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each knob's values among the points (a knob a trial did not set: ``default``)."""
    knobs = sorted({k for p in points for k in (p["config"] or {})})
    values = {
        k: sorted({str((p["config"] or {}).get(k, "default")) for p in points}) for k in knobs
    }
    return {k: v for k, v in values.items() if len(v) > 1}


def parallel_figure(plot: dict[str, Any], points: list[dict[str, Any]]) -> go.Figure:
    """Parallel coordinates: every varied knob, then each objective; coloured by the first."""
    knobs = _knob_values(points)
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

    knobs = _knob_values(points)
    figure = make_subplots(rows=1, cols=max(1, len(knobs)), shared_yaxes=True,
                           subplot_titles=list(knobs) or [""])  # fmt: skip
    for column, knob in enumerate(knobs, start=1):
        figure.add_trace(
            go.Scatter(
                x=[str((p["config"] or {}).get(knob, "default")) for p in points],
                y=[p["figures"].get(key) for p in points],
                mode="markers",
                marker={"size": 7, "opacity": 0.6, "color": COLOURS[0]},
                customdata=[[p["number"]] for p in points],
                hovertemplate="trial %{customdata[0]}: %{y:.4g}<extra></extra>",
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
    figure.update_layout(
        xaxis_title=axis_title(x_key),
        yaxis_title=axis_title(y_key),
        height=440,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "y": -0.2},
    )
    log_axis(figure, "x", x_key)
    log_axis(figure, "y", y_key)
    return figure


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
