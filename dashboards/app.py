"""infertune's web dashboard (Streamlit): studies, the Pareto front, trials, promotion.

Start it with ``infertune dashboard``, which passes the CLI's settings (home, platform
database, MLflow store) through the environment. The pages only draw: every number comes
from the package's query functions, the same ones the CLI prints. Studies are never run
inside a page: the Launch page starts ``infertune tune`` as a background process.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="infertune", layout="wide")
st.navigation(
    [
        st.Page("views/studies.py", title="Studies", url_path="studies", default=True),
        st.Page("views/study.py", title="Study", url_path="study"),
        st.Page("views/trial.py", title="Trial", url_path="trial"),
        st.Page("views/registry.py", title="Registry", url_path="registry"),
        st.Page("views/schedules.py", title="Schedules", url_path="schedules"),
        st.Page("views/launch.py", title="Launch", url_path="launch"),
    ]
).run()
