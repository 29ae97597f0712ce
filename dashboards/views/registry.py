"""Registry: registered models, versions, aliases, promotion history, rollback."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from common import actor, describe, flash, guarded, registry, show_flash
from infertune.exceptions import InfertuneError


def registry_page() -> None:
    """Registered models, versions, aliases, history and rollback."""
    st.title("Registry")
    show_flash()
    reg = registry()
    try:
        names = reg.registered_models()
    except InfertuneError as exc:
        st.error(str(exc))
        return
    if not names:
        st.info("Nothing promoted yet: open a trial on the Study page and promote it.")
        return
    wanted = st.query_params.get("model")
    name = st.selectbox(
        "Registered model", names, index=names.index(wanted) if wanted in names else 0
    )
    st.query_params["model"] = name
    view = reg.view(name)
    st.markdown(
        "**Aliases:** "
        + (", ".join(f"`{a}` → version {v}" for a, v in view["aliases"].items()) or "none")
    )
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "version": v["version"],
                    "aliases": ", ".join(v["aliases"]),
                    "study": v["study"],
                    "trial": v["trial"],
                    "configuration": describe(v["config"]),
                    "latency_p95_ms": v["latency_p95_ms"],
                    "accuracy": v["accuracy"],
                }
                for v in view["versions"]
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    st.subheader("Promotion history")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "when": h["at"],
                    "action": h["action"] + (" (forced)" if h["forced"] else ""),
                    "alias": h["alias"],
                    "version": h["version"],
                    "was": h["previous_version"],
                    "study/trial": f"{h['study']} #{h['trial']}" if h["study"] else "",
                    "by": h["actor"],
                    "reason": h["reason"],
                }
                for h in view["history"]
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    st.subheader("Roll back")
    with st.form("rollback"):
        alias = st.text_input("Alias", value="production")
        reason = st.text_input("Reason")
        confirmed = st.checkbox("I confirm: move the alias to the previously promoted version")
        submitted = st.form_submit_button("Roll back")
    if submitted:
        if not confirmed:
            st.warning("Tick the confirmation first.")
        else:
            try:
                message = reg.rollback(name, alias, reason, actor=actor()).message
            except InfertuneError as exc:
                st.error(str(exc))
            else:
                # Drawn again from the top, so the aliases above show the rollback.
                flash(message)
                st.rerun()


guarded(registry_page)()
