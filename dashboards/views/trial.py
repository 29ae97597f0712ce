"""Trial: knobs, figures, latency distribution, MLflow link, and promotion.

Reads the one trial shown (``queries.trial_detail``), never the study's list of trials.
"""

from __future__ import annotations

import itertools

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from common import (
    actor,
    describe,
    guarded,
    is_baseline_config,
    load_study,
    measurement,
    mlflow_link,
    number,
    registry,
    save_note,
    selected_study,
    settings,
    study_notes,
    study_version,
    summary_at,
    trial_view,
    url,
    web_text,
)
from infertune.exceptions import InfertuneError


def _selected_trial() -> tuple[str, int, str] | None:
    """The study, trial number (from ``?trial=`` or the number field) and study version."""
    name = selected_study()
    if name is None:
        return None
    version = study_version(url(), name)
    started = sum(summary_at(url(), name, version)["trials"].values())
    if not started:
        st.info("This study has no trials yet.")
        return None
    wanted = st.query_params.get("trial")
    picked = st.number_input(
        "Trial",
        min_value=0,
        value=int(wanted) if wanted and wanted.isdigit() else 0,
        step=1,
        help=f"Trials are numbered from 0; this study has {started} (started or finished).",
    )
    st.query_params["trial"] = str(int(picked))
    return name, int(picked), version


def trial_page() -> None:
    """One trial: knobs, figures, latency distribution, MLflow link, promotion."""
    st.title("Trial")
    selected = _selected_trial()
    if selected is None:
        return
    name, number_, version = selected
    detail = trial_view(url(), name, number_, version)
    st.subheader(f"Trial {number_}: {describe(detail['config'])}")
    state = detail["state"] + (" · on the front" if detail["on_front"] else "")
    st.caption(state)
    if detail.get("fail_reason") or detail.get("pruned_reason"):
        st.warning(detail.get("fail_reason") or detail.get("pruned_reason"))
    left, right = st.columns(2)
    left.markdown("**Knobs**")
    left.dataframe(
        pd.Series({k: number(v) for k, v in (detail["config"] or {}).items()}, name="value"),
        width="stretch",
    )
    right.markdown("**Figures**")
    figures = dict(detail["figures"] or {})
    if detail.get("speedup_p95"):
        figures["speedup_p95"] = detail["speedup_p95"]
    right.dataframe(
        pd.Series({k: number(v) for k, v in figures.items()}, name="value"), width="stretch"
    )
    if is_baseline_config(detail["config"]):
        st.info(
            "This trial ran the baseline's settings (tf, fp32, every other knob at its default)."
        )
    if detail["violations"]:
        st.error("Breaks the constraints: " + "; ".join(detail["violations"]))

    run_id = detail.get("mlflow_run_id")
    if run_id:
        tracking = settings().tracking_uri
        link = mlflow_link(detail["mlflow_experiment_id"], run_id)
        if link:
            st.markdown(f"MLflow run: [{run_id}]({link})")
        else:
            st.markdown(
                f"MLflow run `{run_id}` — browse it with `mlflow ui --backend-store-uri {tracking}`"
            )
        # Filled last: the first read of MLflow in a server imports and opens it (a second
        # or two); the rest of the page is drawn meanwhile.
        histogram = st.container()
    if detail.get("phases_s"):
        st.markdown("**Where this trial's time went (s)**")
        st.dataframe(
            pd.Series({k: number(v, 3) for k, v in detail["phases_s"].items()}, name="seconds"),
            width="stretch",
        )
    _trial_note(name, number_)

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
                    study = load_study(url(), name)
                    result = registry().promote(
                        study, number_, model_name, alias, reason, force, actor=actor()
                    )
                    st.success(result.message)
                except InfertuneError as exc:
                    st.error(web_text(str(exc)))
    if run_id:
        with histogram:
            _latency_histogram(run_id)


def _latency_histogram(run_id: str) -> None:
    """The latency histogram logged with the trial's MLflow run (if it has one)."""
    record = measurement(run_id)
    hist = ((record or {}).get("measurement") or {}).get("latency_histogram")
    if hist:
        st.markdown("**Latency distribution** (search timing; last bin holds the tail)")
        edges = hist["edges_ms"]
        centres = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
        chart = go.Figure(
            go.Bar(x=centres, y=hist["counts"], width=[b - a for a, b in itertools.pairwise(edges)])
        )
        # Labels on opposite sides of their lines: p50 and p95 are often a hair apart.
        for key, dash, side in (
            ("latency_p50_ms", "dot", "top left"),
            ("latency_p95_ms", "dash", "top right"),
        ):
            if record and record.get(key):
                chart.add_vline(
                    x=record[key],
                    line_dash=dash,
                    annotation_text=f"{key[8:11]} {number(record[key], 3)} ms",
                    annotation_position=side,
                )
        chart.update_layout(
            height=280,
            xaxis_title="ms per call",
            yaxis_title="calls",
            margin={"l": 10, "r": 10, "t": 10, "b": 10},
        )
        st.plotly_chart(chart, key="latency")


def _trial_note(name: str, number_: int) -> None:
    note = study_notes(url(), name)["trials"].get(number_)
    st.markdown("**Note**")
    if note:
        st.info(f"{note['text']} ({note['by']}, {note['at']})")
    text = st.text_area("Trial note", value=(note or {}).get("text", ""), key="trial-note")
    if st.button("Save note", key="save-trial-note"):
        save_note(name, text, number_)
        st.rerun()


guarded(trial_page)()
