"""Study: the Pareto front, all trials, the optimisation history and knob importance."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from common import (
    AXIS_TITLES,
    TRIAL_PAGE,
    axis_title,
    compare_figure,
    describe,
    filter_points,
    front_figure,
    guarded,
    history_figure,
    is_baseline_config,
    mlflow_link,
    parallel_figure,
    refresh_button,
    save_note,
    selected_study,
    serving_figure,
    slice_figure,
    studies_rows,
    study_extras,
    study_knob_importance,
    study_views,
    url,
)
from infertune.tuning.queries import MIN_IMPORTANCE_TRIALS

#: Session key of the last point clicked on the front (so a rerun does not open it again).
_CLICKED = "infertune_front_clicked"


def study_page() -> None:
    """The front, the trials, the history and the importance of one study."""
    st.title("Study")
    refresh_button()
    name = selected_study()
    if name is None:
        return
    views = study_views(url(), name)
    extras = study_extras(url(), name)
    summary, plot = views["summary"], views["plot"]
    cols = st.columns(4)
    cols[0].metric("complete trials", summary["trials"]["COMPLETE"])
    cols[1].metric(
        "pruned / failed", f"{summary['trials']['PRUNED']} / {summary['trials']['FAIL']}"
    )
    cols[2].metric("on the front", summary["front_size"])
    best = summary["best_speedup_p95"]
    cols[3].metric("best speed-up (p95)", f"{best:.2f}x" if best else "—")
    st.caption(
        f"Model {summary['model']} · hardware {summary['hardware_id']} · "
        + ("front verified" if plot["verified"] else "front not verified (`infertune verify`)")
        + (" · trials still running" if summary["trials"].get("RUNNING") else "")
    )
    _study_note(name, extras["notes"]["study"])

    chosen, front_only, states = _filters(plot["points"], views["trials"])
    shown = filter_points(plot["points"], chosen, front_only)
    st.subheader("Pareto front")
    if plot["y"] is None or not plot["points"]:
        st.info("No completed trials to plot yet.")
    else:
        _front(name, plot, shown, extras)

    serving = views.get("serving")
    if serving and serving["curves"]:
        st.subheader("Under load: rate vs p99")
        st.plotly_chart(serving_figure(serving), key="serving")
        st.caption(
            "Each front point's search for the highest Poisson arrival rate whose p99 meets "
            "the objective (x: a run that could not keep up with the rate, or too few "
            "queries)."
        )

    st.subheader("All trials")
    _trials_table(name, views["trials"], plot, chosen, front_only, states, extras)

    if len(shown) > 1:
        st.subheader("Knobs against objectives")
        st.caption("Parallel coordinates: one line per trial shown (drag along an axis to filter).")
        st.plotly_chart(parallel_figure(plot, shown), key="parallel")
        key = st.selectbox(
            "Slice plots of",
            list(plot["objectives"]),
            format_func=lambda k: AXIS_TITLES.get(k, k),
        )
        st.plotly_chart(slice_figure(shown, key), key="slices")

    st.subheader("Optimisation history")
    hist = views["history"]
    for figure_name, series in hist["series"].items():
        if series["trial"]:
            chart = history_figure(series, figure_name, hist["objectives"][figure_name])
            st.plotly_chart(chart, key=f"history-{figure_name}")

    st.subheader("Knob importance")
    _importance(name, summary["trials"]["COMPLETE"])

    st.subheader("Compare studies")
    _compare(name, plot, extras["related"])


def _study_note(name: str, note: dict[str, Any] | None) -> None:
    if note:
        st.info(f"**Note** ({note['by']}, {note['at']}): {note['text']}")
    with st.expander("Edit the study's note" if note else "Add a note to this study"):
        text = st.text_area("Study note", value=(note or {}).get("text", ""), key="study-note")
        if st.button("Save note", key="save-study-note"):
            save_note(name, text)
            st.rerun()


def _filters(
    points: list[dict[str, Any]], trials: list[dict[str, Any]]
) -> tuple[dict[str, list[str]], bool, list[str]]:
    """The filter widgets: trial states, each varied knob's values, the front only."""
    knobs = sorted({k for p in points for k in (p["config"] or {})})
    values = {
        k: sorted({str((p["config"] or {}).get(k, "default")) for p in points}) for k in knobs
    }
    all_states = sorted({str(t["state"]) for t in trials})
    with st.expander("Filter trials"):
        front_only = st.checkbox("Front only", key="filter-front")
        states = st.multiselect("State", all_states, default=all_states, key="filter-state")
        chosen = {}
        columns = st.columns(max(1, len([k for k in knobs if len(values[k]) > 1])))
        for column, knob in zip(columns, [k for k in knobs if len(values[k]) > 1], strict=False):
            picked = column.multiselect(knob, values[knob], default=values[knob], key=f"f-{knob}")
            chosen[knob] = picked
    return chosen, front_only, states


def _front(
    name: str, plot: dict[str, Any], shown: list[dict[str, Any]], extras: dict[str, Any]
) -> None:
    colour_by = st.radio("Colour by", ["precision", "runtime"], horizontal=True)
    event = st.plotly_chart(
        front_figure({**plot, "points": shown}, colour_by),
        key="front",
        on_select="rerun",
        selection_mode="points",
    )
    st.caption("Click a point to open its trial.")
    _open_clicked(name, event)
    if len(shown) < len(plot["points"]):
        st.caption(f"Showing {len(shown)} of {len(plot['points'])} completed trials (filtered).")
    if any(is_baseline_config(p["config"]) for p in plot["points"]):
        st.caption("The ringed trial ran the baseline's settings (tf, fp32, defaults).")
    check = plot["verification"]
    if check:
        st.caption(
            f"Bars: {check['method']}. Dotted lines join ties: points no objective tells "
            "apart beyond the intervals. A point is dropped only when another is surely "
            "better somewhere and surely worse nowhere."
        )
        if check["warning"]:
            st.warning(check["warning"])
    else:
        st.caption(
            "Single measurements from the search: no intervals; differences under ~5% "
            "may be noise. `infertune verify` re-times the front and shows its intervals."
        )
    if plot["z"]:
        st.caption(f"Third objective: {axis_title(plot['z'])}")
        st.plotly_chart(
            front_figure({**plot, "points": shown}, colour_by, y_key=plot["z"]), key="front-z"
        )
    front_points = sorted(
        (p for p in plot["points"] if p["on_front"]),
        key=lambda p: p["figures"].get(plot["x"]) or 0,
    )
    runs = extras["runs"]
    rows = [
        {
            "trial": p["number"],
            "configuration": describe(p["config"]),
            plot["x"]: p["figures"].get(plot["x"]),
            f"{plot['x']} interval": _interval(p["error"].get(plot["x"])),
            plot["y"]: p["figures"].get(plot["y"]),
            "speed-up (p95)": p["speedup_p95"],
            "verified": p["kept"],
            "tied with": ", ".join(f"#{n}" for n in p["ties_with"]),
            "MLflow run": mlflow_link(runs["experiment_id"], runs["runs"].get(p["number"]))
            or runs["runs"].get(p["number"]),
        }
        for p in front_points
    ]
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        width="stretch",
        column_config=_number_columns(rows) | {
            "speed-up (p95)": st.column_config.NumberColumn(format="%.2fx"),
            "MLflow run": _run_column(runs),
        },
    )  # fmt: skip
    exported = [
        {k: p[k] for k in ("number", "config", "figures", "speedup_p95", "kept", "ties_with")}
        | {"interval": p["error"], "mlflow_run_id": runs["runs"].get(p["number"])}
        for p in front_points
    ]
    _downloads("front", name, pd.DataFrame(rows), exported)
    for p in front_points:
        st.page_link(
            TRIAL_PAGE,
            label=f"Trial {p['number']}: {describe(p['config'])}",
            query_params={"study": name, "trial": str(p["number"])},
        )


def _open_clicked(name: str, event: Any) -> None:
    """Open the trial of a clicked point (once per click)."""
    points = (getattr(event, "selection", None) or {}).get("points") or []
    numbers = [p["customdata"][0] for p in points if p.get("customdata")]
    if not numbers:
        st.session_state.pop(_CLICKED, None)
        return
    clicked = (name, int(numbers[0]))
    if st.session_state.get(_CLICKED) == clicked:
        return
    st.session_state[_CLICKED] = clicked
    st.switch_page(TRIAL_PAGE, query_params={"study": name, "trial": str(clicked[1])})


def _trials_table(
    name: str,
    trials: list[dict[str, Any]],
    plot: dict[str, Any],
    chosen: dict[str, list[str]],
    front_only: bool,
    states: list[str],
    extras: dict[str, Any],
) -> None:
    on_front = {p["number"] for p in plot["points"] if p["on_front"] or p["kept"]}
    runs, notes = extras["runs"], extras["notes"]["trials"]
    rows = [
        t
        | {
            "MLflow run": mlflow_link(runs["experiment_id"], runs["runs"].get(t["trial"]))
            or runs["runs"].get(t["trial"]),
            "note": (notes.get(t["trial"]) or {}).get("text", ""),
        }
        for t in trials
        if str(t["state"]) in states
        and (t["trial"] in on_front or not front_only)
        and all(
            str(t.get(k) if t.get(k) is not None else "default") in v for k, v in chosen.items()
        )
    ]
    if len(rows) < len(trials):
        st.caption(f"Showing {len(rows)} of {len(trials)} trials (filtered).")
    table = pd.DataFrame(rows)
    if "threads" in table:
        table["threads"] = table["threads"].map(lambda t: "default" if pd.isna(t) else str(int(t)))
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config=_number_columns(rows) | {"MLflow run": _run_column(runs)},
    )
    _downloads("trials", name, table, rows)


def _number_columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Floats to 4 significant digits (the data keeps every digit; exports too)."""
    floats = {k for r in rows for k, v in r.items() if isinstance(v, float)}
    return {k: st.column_config.NumberColumn(format="%.4g") for k in floats}


def _run_column(runs: dict[str, Any]) -> Any:
    if any(mlflow_link(runs["experiment_id"], r) for r in runs["runs"].values()):
        return st.column_config.LinkColumn("MLflow run", display_text="open in MLflow")
    return st.column_config.TextColumn(
        "MLflow run", help="Browse it with `mlflow ui` on the tracking store."
    )


def _downloads(what: str, name: str, table: pd.DataFrame, records: list[dict[str, Any]]) -> None:
    left, right = st.columns(2)
    left.download_button(
        f"Download the {what} (CSV)",
        table.to_csv(index=False),
        file_name=f"{name}-{what}.csv",
        mime="text/csv",
        key=f"csv-{what}",
        on_click="ignore",
    )
    right.download_button(
        f"Download the {what} (JSON)",
        json.dumps(records, indent=2, default=str),
        file_name=f"{name}-{what}.json",
        mime="application/json",
        key=f"json-{what}",
        on_click="ignore",
    )


def _importance(name: str, complete: int) -> None:
    scores = study_knob_importance(url(), name, complete)
    for figure_name, entry in scores.items():
        title = AXIS_TITLES.get(figure_name, figure_name)
        if not entry["scores"]:
            st.caption(f"{title}: too few trials to tell ({entry['trials']} complete).")
            continue
        if not entry["reliable"]:
            st.warning(
                f"{title}: only {entry['trials']} complete trials; with fewer than "
                f"{MIN_IMPORTANCE_TRIALS} the split below is unreliable: read it as a hint."
            )
        ranked = sorted(entry["scores"].items(), key=lambda kv: kv[1])
        chart = go.Figure(
            go.Bar(
                x=[v for _, v in ranked],
                y=[k for k, _ in ranked],
                orientation="h",
                texttemplate="%{x:.0%}",
                hovertemplate="%{y}: %{x:.1%}<extra></extra>",
            )
        )
        chart.update_layout(
            height=60 + 30 * len(ranked),
            title={"text": title, "font": {"size": 14}},
            xaxis={"tickformat": ".0%", "range": [0, 1], "title": "share of the variance"},
            margin={"l": 10, "r": 10, "t": 30, "b": 10},
        )
        st.plotly_chart(chart, key=f"importance-{figure_name}")
    st.caption(
        "fANOVA on the knobs' values (a knob a trial did not set counts at its default); "
        "latency, size and memory on a log scale, so a factor counts as a factor."
    )


def _compare(name: str, plot: dict[str, Any], related: list[str]) -> None:
    names = [r["study"] for r in studies_rows(url())]
    others = [n for n in names if n != name]
    if not others:
        st.caption("No other study to compare with.")
        return
    picked = st.multiselect(
        "Compare with",
        others,
        default=[n for n in related if n in others],
        help="Defaults to the study's re-tunes (and the study it re-tunes).",
    )
    if not picked or plot["y"] is None:
        return
    plots = {n: study_views(url(), n)["plot"] for n in [name, *picked]}
    alike = {n: p for n, p in plots.items() if p["x"] == plot["x"] and p["y"] == plot["y"]}
    if len(alike) < len(plots):
        skipped = ", ".join(n for n in plots if n not in alike)
        st.caption(f"Left out (other objectives): {skipped}.")
    st.plotly_chart(compare_figure(alike, plot["x"], plot["y"]), key="compare")


def _interval(span: list[float] | None) -> str:
    """``[0.231, 0.240]``; empty where verification measured none."""
    return f"[{span[0]:.4g}, {span[1]:.4g}]" if span else ""


guarded(study_page)()
