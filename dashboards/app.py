"""infertune's web dashboard (Streamlit): studies, the Pareto front, trials, promotion.

Start it with ``infertune dashboard``, which passes the CLI's settings (home, platform
database, MLflow store) through the environment. The pages only draw: every number comes
from the package's query functions, the same ones the CLI prints. Studies are never run
inside a page: the Launch page starts ``infertune tune`` as a background process.

Every run passes the gate first (``login.require_login``): the Host header is checked and,
unless the dashboard serves loopback only without a login, the user signs in; the identity
is the actor of the promotions, rollbacks, launches and schedule changes made here.
"""

from __future__ import annotations

import streamlit as st

from login import require_login

st.set_page_config(page_title="infertune", layout="wide")
require_login()
st.navigation(
    [
        st.Page("views/studies.py", title="Studies", url_path="home", default=True),
        # The default page is served at "/"; "/studies" (its name in the menu) is it too.
        st.Page("views/studies.py", title="Studies", url_path="studies", visibility="hidden"),
        st.Page("views/study.py", title="Study", url_path="study"),
        st.Page("views/trial.py", title="Trial", url_path="trial"),
        st.Page("views/registry.py", title="Registry", url_path="registry"),
        st.Page("views/schedules.py", title="Schedules", url_path="schedules"),
        st.Page("views/launch.py", title="Launch", url_path="launch"),
    ]
).run()
