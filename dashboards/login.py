"""The dashboard's gate: the Host check and the login, before any page draws.

``app.py`` calls :func:`require_login` on every run; it returns the signed-in identity
(kept in the session) or draws the sign-in form and stops the script. The rules live in
``infertune.auth`` (plain Python), shared with ``infertune dashboard``, which refuses to
start a server that would break them.
"""

from __future__ import annotations

import getpass
import threading
import time

import streamlit as st

from common import settings
from infertune import auth
from infertune.exceptions import InfertuneError

#: Session key of the signed-in identity.
USER_KEY = "infertune_user"
#: Seconds a wrong password costs; checks run one at a time, so guesses are rate-limited
#: across every session of the server, not only this one.
FAILED_DELAY_S = 1.0


@st.cache_resource
def _check_lock() -> threading.Lock:
    return threading.Lock()


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file, or one Streamlit cannot parse
        return False


def _check_host() -> None:
    """Refuse a request whose Host header is not one this dashboard answers to.

    Streamlit already refuses such WebSocket handshakes when ``server.allowedHosts`` is
    set (``infertune dashboard`` sets it); this also covers ``streamlit run app.py``.
    """
    host = st.context.headers.get("Host")
    if host is None:  # not a browser session (Streamlit's AppTest)
        return
    allowed = list(st.get_option("server.allowedHosts") or [])
    listen = str(st.get_option("server.address") or "127.0.0.1")
    allowed = allowed or auth.allowed_hosts(settings(), listen)
    if "*" not in allowed and not auth.host_allowed(host, [a.lower() for a in allowed]):
        st.error("This dashboard does not answer to that host name.")
        st.stop()


def _password_form() -> str | None:
    """The sign-in form; the account name once a password matched."""
    st.title("infertune — sign in")
    with st.form("login"):
        name = st.text_input("Account")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in")
    if not submitted:
        return None
    with _check_lock():
        ok = auth.check_login(settings(), name.strip(), password)
        if not ok:
            time.sleep(FAILED_DELAY_S)
    if not ok:
        st.error("Wrong account or password.")
        return None
    return name.strip()


def _oidc_identity() -> str | None:
    if not st.user.is_logged_in:
        st.title("infertune — sign in")
        st.button("Log in with your identity provider", on_click=st.login)
        return None
    for key in ("email", "preferred_username", "name", "sub"):
        value = st.user.get(key)
        if value:
            return str(value)
    return "unknown"


def require_login() -> str:
    """The signed-in identity; draws the sign-in page and stops the script until then."""
    _check_host()
    try:
        mode = auth.resolve_mode(settings(), _oidc_configured())
    except InfertuneError as exc:
        st.error(str(exc))
        st.stop()
    if mode is auth.AuthMode.NONE:
        listen = str(st.get_option("server.address") or "127.0.0.1")
        if not auth.is_loopback(listen):
            st.error(
                f"This dashboard listens on {listen} without a login: set "
                "INFERTUNE_DASHBOARD_PASSWORD, add an account (infertune dashboard --add-user "
                "NAME) or configure OIDC, then restart it."
            )
            st.stop()
        user = _os_user()
    elif mode is auth.AuthMode.OIDC:
        found = _oidc_identity()
        if found is None:
            st.stop()
        user = str(found)
        st.sidebar.button("Log out", on_click=st.logout)
    else:
        user = st.session_state.get(USER_KEY) or _password_form() or ""
        if not user:
            st.stop()
        if st.session_state.get(USER_KEY) != user:
            st.session_state[USER_KEY] = user
            st.rerun()  # draw the pages without the form
        if st.sidebar.button("Sign out"):
            del st.session_state[USER_KEY]
            st.rerun()
    st.session_state["infertune_actor"] = user
    st.sidebar.caption(f"Signed in as **{user}** ({mode.value})")
    return user
