"""Launch: start a study as a background process and follow it."""

from __future__ import annotations

from typing import Any

import streamlit as st

from common import STUDY_PAGE, actor, guarded, settings, study_names, study_summary, url
from infertune.exceptions import InfertuneError
from infertune.tuning.launch import (
    default_study_name,
    describe_existing,
    existing_study,
    launch_study,
    launches,
    stop_launch,
)

#: Seconds between redraws of the list while a launch runs.
FOLLOW_S = 3


def launch_page() -> None:
    """Start a study in the background and follow it."""
    st.title("Launch a study")
    st.caption("The study runs as its own `infertune tune` process; this page only starts it.")
    roots = ", ".join(f"`{r}`" for r in settings().launch_roots)
    st.caption(
        f"Models, data and search-space files are read only from {roots} "
        "(`INFERTUNE_DASHBOARD_ROOTS`); shipped spaces and demo models work anywhere."
    )
    with st.form("launch"):
        model = st.text_input(
            "Model",
            value="demo:digits-cnn",
            help="A .keras file (inside the folders above), or demo:NAME.",
        )
        data = st.text_input("Evaluation data (.npz)", help="Not needed for demo models.")
        train = st.text_input("Training data (.npz, optional)")
        space = st.text_input(
            "Search space", value="quick", help="A YAML file, or quick / default / tflite-cpu."
        )
        study = st.text_input(
            "Study name", value="", placeholder="empty: a new name, MODEL-SPACE-DATE-TIME"
        )
        trials = st.number_input("Trials", min_value=1, value=15, step=1)
        resume = st.checkbox(
            "Resume the study if it exists (adds trials and verifies its front again)"
        )
        submitted = st.form_submit_button("Start")
    if submitted:
        _start(model, data, train, space, study, int(trials), resume)
    st.subheader("Launched from here")
    rows = launches(settings())
    running = any(r["state"] == "running" for r in rows)
    # Redraws itself while a launch runs; still once it is over.
    st.fragment(run_every=FOLLOW_S if running else None)(_launch_list)()


def _start(
    model: str, data: str, train: str, space: str, study: str, trials: int, resume: bool
) -> None:
    name = study.strip() or default_study_name(model, space)
    try:
        if not resume:
            existing = existing_study(settings(), name)
            if existing is not None:
                st.warning(
                    describe_existing(existing) + " Give another name, or tick *Resume the "
                    "study if it exists* and press Start again."
                )
                return
        record = launch_study(
            settings(),
            model,
            name,
            trials,
            space,
            data or None,
            train or None,
            actor=actor(),
            resume=resume,
        )
        st.success(f"Started '{record['study']}' (pid {record['pid']}).")
    except InfertuneError as exc:
        st.error(str(exc))


def _launch_list() -> None:
    rows = launches(settings())
    if not rows:
        st.caption("None yet.")
        return
    if any(r["state"] == "running" for r in rows):
        st.caption(f"Following: this list redraws every {FOLLOW_S} s while a launch runs.")
    # Summaries of the launched studies only (each one stored row), not of every study.
    names = set(study_names(url()))
    done = {n: study_summary(url(), n) for n in {r["study"] for r in rows} & names}
    for record in rows:  # newest first
        _launch_row(record, done.get(record["study"]))


def _launch_row(record: dict[str, Any], summary: dict[str, Any] | None) -> None:
    counts = (summary or {}).get("trials", {})
    finished = sum(counts.get(k, 0) for k in ("COMPLETE", "PRUNED", "FAIL"))
    by = f" — by {record['actor']}" if record.get("actor") else ""
    stopped = f" by {record['stopped_by']}" if record.get("stopped_by") else ""
    status = record["status"] + (stopped if record["status"] in ("stopping", "stopped") else "")
    st.markdown(
        f"**{record['study']}** — {status} — {finished}/{record['trials']} trials{by} — "
        f"started {record['started_at'].replace('T', ' ').rstrip('Z')} UTC"
    )
    st.progress(min(1.0, finished / max(1, int(record["trials"]))))
    if record["error"] and record["status"] != "stopped":
        st.error(record["error"])
    left, right = st.columns([1, 4])
    if record["status"] == "running" and left.button("Stop", key=f"stop-{record['log']}"):
        try:
            stop_launch(settings(), record["log"], actor=actor())
            st.rerun()
        except InfertuneError as exc:
            st.error(str(exc))
    if summary is not None:
        right.page_link(STUDY_PAGE, label="Open the study", query_params={"study": record["study"]})
    with st.expander("log"):
        st.code(record["log_tail"] or "(empty)")


guarded(launch_page)()
