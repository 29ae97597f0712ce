"""Schedules: re-tunes, their next run and history; pause, resume, run now."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import streamlit as st

from common import actor, database, guarded, refresh_button, settings
from infertune import audit
from infertune.cli._display import format_every
from infertune.exceptions import InfertuneError
from infertune.scheduling.schedules import job_runs, overview, set_paused


def schedules_page() -> None:
    """Every schedule with its next and last run; history; actions."""
    st.title("Schedules")
    st.caption(
        "Schedules fire while `infertune scheduler` runs; add them with "
        "`infertune schedule add STUDY --every 6h` (or `--cron`)."
    )
    refresh_button()
    db = database()
    rows = overview(db)
    if not rows:
        st.info("No schedules yet.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "study": r["study"],
                    "when": r["cron"] or f"every {format_every(r['every_s'])}",
                    "paused": r["paused"],
                    "trials": r["trials"],
                    "auto-promote": r["auto_promote"] or "",
                    "next run (UTC)": r["next_run"],
                    "last run": (r["last_run"] or {}).get("status"),
                    "last decision": (r["last_run"] or {}).get("decision"),
                }
                for r in rows
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    names = [r["study"] for r in rows]
    name = st.selectbox("Schedule", names)
    chosen = next(r for r in rows if r["study"] == name)
    left, middle, right = st.columns(3)
    if left.button("Resume" if chosen["paused"] else "Pause"):
        try:
            set_paused(db, name, not chosen["paused"])
            audit.record(settings(), actor(), "resume" if chosen["paused"] else "pause", name)
            st.rerun()
        except InfertuneError as exc:
            st.error(str(exc))
    if middle.button("Run now", help="Starts `infertune schedule run-now` in the background."):
        log = settings().home / "scheduler" / f"{name.replace('/', '_')}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            subprocess.Popen(
                [sys.executable, "-m", "infertune", "schedule", "run-now", "--", name],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=settings().child_env(), start_new_session=True,
            )  # fmt: skip
        audit.record(settings(), actor(), "run-now", name)
        right.success("Started; refresh to follow it.")
    changes = audit.entries(settings(), target=name, limit=20)
    if changes:
        st.subheader("Changes")
        st.dataframe(
            pd.DataFrame(
                [{"when": c["at"], "action": c["action"], "by": c["actor"]} for c in changes]
            ),
            hide_index=True,
            width="stretch",
        )
    st.subheader("History")
    history = job_runs(db, name)
    if not history:
        st.caption("No runs yet.")
        return
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "started": h["started_at"],
                    "ended": h["ended_at"],
                    "trigger": h["trigger"],
                    "status": h["status"],
                    "study created": h["study_created"],
                    "decision": h["decision"],
                    "detail": h["detail"],
                }
                for h in history
            ]
        ),
        hide_index=True,
        width="stretch",
    )


guarded(schedules_page)()
