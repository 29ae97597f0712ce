"""Studies: every study with its state and best result."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from common import STUDY_PAGE, database, guarded, refresh_button, studies_rows, url


def studies_page() -> None:
    """Every study with its state and best result."""
    st.title("Studies")
    refresh_button()
    database()
    rows = studies_rows(url())
    if not rows:
        st.info("No studies yet. Run `make demo`, `infertune tune ...`, or use Launch.")
        return
    wanted = st.text_input("Filter", placeholder="study or model name contains…")
    shown = [r for r in rows if wanted.lower() in f"{r['study']} {r['model']}".lower()]
    if not shown:
        st.caption("No study matches the filter.")
    table = pd.DataFrame(
        [
            {
                "study": r["study"],
                "model": r["model"],
                "state": "running" if r["trials"].get("RUNNING") else "idle",
                "complete": r["trials"]["COMPLETE"],
                "pruned": r["trials"]["PRUNED"],
                "failed": r["trials"]["FAIL"],
                "front": r["front_size"],
                "best speed-up (p95)": r["best_speedup_p95"],
                "verified": r["verified"],
                "hardware": r["hardware_id"],
                "created": r["created_at"],
            }
            for r in shown
        ]
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "best speed-up (p95)": st.column_config.NumberColumn(format="%.2fx"),
        },
    )
    for r in shown:
        st.page_link(
            STUDY_PAGE,
            label=f"{r['study']} — {r['front_size']} on the front",
            query_params={"study": r["study"]},
        )


guarded(studies_page)()
