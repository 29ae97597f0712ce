"""Trial: knobs, figures, latency distribution, MLflow link, and promotion."""

from __future__ import annotations

import itertools

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from common import (
    describe,
    guarded,
    measurement,
    registry,
    selected_study,
    settings,
    study_views,
    trial_view,
    url,
)
from infertune.exceptions import InfertuneError
from infertune.tuning import queries


def _selected_trial() -> tuple[str, int] | None:
    name = selected_study()
    if name is None:
        return None
    rows = study_views(url(), name)["trials"]
    if not rows:
        st.info("This study has no trials yet.")
        return None
    numbers = [r["trial"] for r in rows]
    wanted = st.query_params.get("trial")
    index = (
        numbers.index(int(wanted)) if wanted and wanted.isdigit() and int(wanted) in numbers else 0
    )
    number = st.selectbox("Trial", numbers, index=index)
    st.query_params["trial"] = str(number)
    return name, int(number)


def trial_page() -> None:
    """One trial: knobs, figures, latency distribution, MLflow link, promotion."""
    st.title("Trial")
    selected = _selected_trial()
    if selected is None:
        return
    name, number = selected
    detail = trial_view(url(), name, number)
    st.subheader(f"Trial {number}: {describe(detail['config'])}")
    state = detail["state"] + (" · on the front" if detail["on_front"] else "")
    st.caption(state)
    if detail.get("fail_reason") or detail.get("pruned_reason"):
        st.warning(detail.get("fail_reason") or detail.get("pruned_reason"))
    left, right = st.columns(2)
    left.markdown("**Knobs**")
    left.dataframe(pd.Series(detail["config"] or {}, name="value").astype(str), width="stretch")
    right.markdown("**Figures**")
    figures = dict(detail["figures"] or {})
    if detail.get("speedup_p95"):
        figures["speedup_p95"] = detail["speedup_p95"]
    right.dataframe(pd.Series(figures, name="value").astype(str), width="stretch")
    if detail["violations"]:
        st.error("Breaks the constraints: " + "; ".join(detail["violations"]))

    run_id = detail.get("mlflow_run_id")
    if run_id:
        tracking = settings().tracking_uri
        if tracking.startswith(("http://", "https://")):
            link = f"{tracking}/#/experiments/{detail['mlflow_experiment_id']}/runs/{run_id}"
            st.markdown(f"MLflow run: [{run_id}]({link})")
        else:
            st.markdown(
                f"MLflow run `{run_id}` — browse it with `mlflow ui --backend-store-uri {tracking}`"
            )
        record = measurement(run_id)
        hist = ((record or {}).get("measurement") or {}).get("latency_histogram")
        if hist:
            st.markdown("**Latency distribution** (search timing; last bin holds the tail)")
            edges = hist["edges_ms"]
            centres = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
            chart = go.Figure(
                go.Bar(
                    x=centres, y=hist["counts"], width=[b - a for a, b in itertools.pairwise(edges)]
                )
            )
            for key, dash in (("latency_p50_ms", "dot"), ("latency_p95_ms", "dash")):
                if record and record.get(key):
                    chart.add_vline(x=record[key], line_dash=dash, annotation_text=key[8:11])
            chart.update_layout(
                height=260,
                xaxis_title="ms per call",
                yaxis_title="calls",
                margin={"l": 10, "r": 10, "t": 10, "b": 10},
            )
            st.plotly_chart(chart, key="latency")
    if detail.get("phases_s"):
        st.markdown("**Where this trial's time went (s)**")
        st.dataframe(pd.Series(detail["phases_s"], name="seconds"), width="stretch")

    st.subheader("Promote")
    with st.form("promote"):
        model_name = st.text_input("Registered model name", value=name.split("-")[0])
        alias = st.text_input("Alias", value="production")
        reason = st.text_input("Reason", placeholder="why this configuration")
        force = st.checkbox(
            "Force (the trial failed, was pruned, breaks a constraint or is off the front)"
        )
        confirmed = st.checkbox(f"I confirm: move {alias or 'the alias'} to this trial")
        submitted = st.form_submit_button("Promote")
    if submitted:
        if not confirmed:
            st.warning("Tick the confirmation first.")
        else:
            with st.spinner("Registering the model (saved, loaded back and checked)…"):
                try:
                    study = queries.load(name, url())
                    result = registry().promote(study, number, model_name, alias, reason, force)
                    st.success(result.message)
                except InfertuneError as exc:
                    st.error(str(exc))


guarded(trial_page)()
