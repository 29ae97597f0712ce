"""Launch: start a study as a background process and follow it."""

from __future__ import annotations

import streamlit as st

from common import STUDY_PAGE, guarded, refresh_button, settings, studies_rows, url
from infertune.exceptions import InfertuneError
from infertune.tuning.launch import launch_study, launches


def launch_page() -> None:
    """Start a study in the background and follow it."""
    st.title("Launch a study")
    st.caption("The study runs as its own `infertune tune` process; this page only starts it.")
    with st.form("launch"):
        model = st.text_input(
            "Model",
            value="demo:digits-cnn",
            help="A .keras file, a SavedModel folder, or demo:NAME.",
        )
        data = st.text_input("Evaluation data (.npz)", help="Not needed for demo models.")
        train = st.text_input("Training data (.npz, optional)")
        space = st.text_input(
            "Search space", value="quick", help="A YAML file, or quick / default / tflite-cpu."
        )
        study = st.text_input("Study name", value="")
        trials = st.number_input("Trials", min_value=1, value=15, step=1)
        submitted = st.form_submit_button("Start")
    if submitted:
        try:
            record = launch_study(
                settings(),
                model,
                study or f"{model.removeprefix('demo:')}-{space}",
                int(trials),
                space,
                data or None,
                train or None,
            )
            st.success(f"Started '{record['study']}' (pid {record['pid']}).")
        except InfertuneError as exc:
            st.error(str(exc))
    st.subheader("Launched from here")
    refresh_button()
    rows = launches(settings())
    if not rows:
        st.caption("None yet.")
    done = {r["study"]: r for r in studies_rows(url())}
    for record in rows:
        counts = done.get(record["study"], {}).get("trials", {})
        finished = sum(counts.get(k, 0) for k in ("COMPLETE", "PRUNED", "FAIL"))
        status = record["state"] + (
            f" (exit {record['exit_code']})" if record["exit_code"] not in (None, 0) else ""
        )
        st.markdown(f"**{record['study']}** — {status} — {finished}/{record['trials']} trials")
        st.progress(min(1.0, finished / max(1, int(record["trials"]))))
        if record["error"]:
            st.error(record["error"])
        with st.expander("log"):
            st.code(record["log_tail"] or "(empty)")
        if record["study"] in done:
            st.page_link(
                STUDY_PAGE, label="Open the study", query_params={"study": record["study"]}
            )


guarded(launch_page)()
