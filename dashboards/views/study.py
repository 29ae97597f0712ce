"""Study: the Pareto front, all trials, the optimisation history and knob importance."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from common import (
    TRIAL_PAGE,
    describe,
    front_figure,
    guarded,
    refresh_button,
    selected_study,
    study_importance,
    study_views,
    url,
)


def study_page() -> None:
    """The front, the trials, the history and the importance of one study."""
    st.title("Study")
    refresh_button()
    name = selected_study()
    if name is None:
        return
    views = study_views(url(), name)
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

    st.subheader("Pareto front")
    if plot["y"] is None or not plot["points"]:
        st.info("No completed trials to plot yet.")
    else:
        colour_by = st.radio("Colour by", ["precision", "runtime"], horizontal=True)
        st.plotly_chart(front_figure(plot, colour_by), key="front")
        if plot["z"]:
            st.caption(f"Third objective: {plot['z']}")
            st.plotly_chart(front_figure(plot, colour_by, y_key=plot["z"]), key="front-z")
        front_points = sorted(
            (p for p in plot["points"] if p["on_front"]),
            key=lambda p: p["figures"].get(plot["x"]) or 0,
        )
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "trial": p["number"],
                        "configuration": describe(p["config"]),
                        plot["x"]: p["figures"].get(plot["x"]),
                        plot["y"]: p["figures"].get(plot["y"]),
                        "speed-up (p95)": p["speedup_p95"],
                        "verified": p["kept"],
                    }
                    for p in front_points
                ]
            ),
            hide_index=True,
            width="stretch",
            column_config={"speed-up (p95)": st.column_config.NumberColumn(format="%.2fx")},
        )
        for p in front_points:
            st.page_link(
                TRIAL_PAGE,
                label=f"Trial {p['number']}: {describe(p['config'])}",
                query_params={"study": name, "trial": str(p["number"])},
            )

    st.subheader("All trials")
    trials = pd.DataFrame(views["trials"])
    if "threads" in trials:
        trials["threads"] = trials["threads"].map(
            lambda t: "default" if pd.isna(t) else str(int(t))
        )
    st.dataframe(trials, hide_index=True, width="stretch")

    st.subheader("Optimisation history")
    hist = views["history"]
    for figure_name, series in hist["series"].items():
        if not series["trial"]:
            continue
        chart = go.Figure()
        chart.add_trace(
            go.Scatter(x=series["trial"], y=series["value"], mode="markers", name=figure_name)
        )
        chart.add_trace(
            go.Scatter(
                x=series["trial"],
                y=series["best"],
                mode="lines",
                name=f"best ({hist['objectives'][figure_name]})",
            )
        )
        chart.update_layout(
            height=280,
            xaxis_title="trial",
            yaxis_title=figure_name,
            margin={"l": 10, "r": 10, "t": 10, "b": 10},
        )
        st.plotly_chart(chart, key=f"history-{figure_name}")

    st.subheader("Knob importance (Optuna)")
    scores = study_importance(url(), name, summary["trials"]["COMPLETE"])
    for figure_name, values in scores.items():
        if not values:
            st.caption(f"{figure_name}: too few trials to tell.")
            continue
        st.caption(figure_name)
        st.bar_chart(pd.Series(values, name="importance"), horizontal=True, height=180)


guarded(study_page)()
