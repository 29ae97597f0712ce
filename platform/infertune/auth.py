"""Who may use the dashboard: login modes, password accounts, allowed hosts.

The dashboard's buttons move production aliases and start studies, so it has a login:

- ``oidc``: Streamlit's ``st.login`` with an identity provider, configured in an ``[auth]``
  section of Streamlit's ``secrets.toml`` (Streamlit's own cookie, signed and expiring).
- ``password``: accounts checked here: one from the environment
  (``INFERTUNE_DASHBOARD_USER``/``INFERTUNE_DASHBOARD_PASSWORD``, e.g. a generated token in
  docker) and any number in a file of salted PBKDF2 hashes (``infertune dashboard
  --add-user NAME``). Comparisons are constant-time (``hmac.compare_digest``).
- ``none``: no login, allowed on a loopback address only.

This module is plain Python (no Streamlit), so the CLI refuses a bad set-up before the
server starts and the tests check it directly.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import socket
import tomllib
from enum import StrEnum
from pathlib import Path

from infertune.config import Settings
from infertune.exceptions import InputError

#: PBKDF2-SHA256 iterations for stored passwords (OWASP's 2023 figure).
ITERATIONS = 600_000
#: Shortest password accepted for a stored account.
MIN_PASSWORD = 12
_NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,64}$")
#: Host names the dashboard always answers to.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


class AuthMode(StrEnum):
    """How the dashboard's users sign in."""

    OIDC = "oidc"
    PASSWORD = "password"
    NONE = "none"


# -- passwords -------------------------------------------------------------------------


def hash_password(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """``pbkdf2_sha256$ITERATIONS$SALT$HASH`` (hex) of a password."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches a :func:`hash_password` string (constant-time compare)."""
    try:
        scheme, iterations, salt, expected = encoded.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        digest = hashlib.pbkdf2_hmac(
            "sha256", password.encode(), bytes.fromhex(salt), int(iterations)
        )
        return hmac.compare_digest(digest.hex(), expected)
    except ValueError:
        return False


def check_name(name: str) -> str:
    """An account name, validated (it is written to the audit trail).

    Raises:
        InputError: Empty, too long or with characters other than letters, digits and
            ``_.@+-``.
    """
    if not _NAME.match(name):
        raise InputError(
            "An account name is 1-64 letters, digits or _.@+- characters (e.g. alice or "
            "alice@example.com)."
        )
    return name


def read_users(path: Path) -> dict[str, str]:
    """The accounts of a users file (name -> hash); none if it does not exist.

    Raises:
        InputError: A line is malformed (named by number, never quoted) or the file cannot
            be read.
    """
    if not path.exists():
        return {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Cannot read the dashboard users file {path}: {exc}.") from None
    users: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, encoded = line.strip().partition(":")
        if not _NAME.match(name) or not encoded.startswith("pbkdf2_sha256$"):
            raise InputError(
                f"Line {number} of the dashboard users file {path} is not NAME:HASH; rewrite "
                "it with infertune dashboard --add-user NAME."
            )
        users[name] = encoded
    return users


def add_user(path: Path, name: str, password: str) -> bool:
    """Add or replace an account in a users file (mode 0600); whether it replaced one.

    Raises:
        InputError: A bad name or a password shorter than :data:`MIN_PASSWORD`.
    """
    check_name(name)
    if len(password) < MIN_PASSWORD:
        raise InputError(f"A dashboard password needs at least {MIN_PASSWORD} characters.")
    users = read_users(path)
    replaced = name in users
    users[name] = hash_password(password)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write("# infertune dashboard accounts: NAME:pbkdf2_sha256$ITER$SALT$HASH\n")
        out.writelines(f"{user}:{encoded}\n" for user, encoded in sorted(users.items()))
    os.replace(temporary, path)
    return replaced


def has_accounts(settings: Settings) -> bool:
    """Whether any password account is configured (environment or users file)."""
    return settings.dashboard_password is not None or bool(read_users(settings.users_file))


def check_login(settings: Settings, name: str, password: str) -> bool:
    """Whether ``name``/``password`` is a configured account.

    The environment's account is compared as SHA-256 digests with ``compare_digest`` (same
    length whatever was typed); a stored account by its PBKDF2 hash. Every stored hash is
    computed even for an unknown name, so timing does not tell which names exist.
    """
    ok = False
    secret = settings.dashboard_password
    if secret is not None and secret.get_secret_value():
        same_name = hmac.compare_digest(name.encode(), settings.dashboard_user.encode())
        same_password = hmac.compare_digest(
            hashlib.sha256(password.encode()).digest(),
            hashlib.sha256(secret.get_secret_value().encode()).digest(),
        )
        ok = same_name and same_password
    users = read_users(settings.users_file)
    matched = verify_password(password, users.get(name) or _dummy_hash())
    return (matched and name in users) or ok


@functools.cache
def _dummy_hash() -> str:
    """A hash to check an unknown name against, so it costs what a known one does."""
    return hash_password(secrets.token_hex(16))


# -- modes -----------------------------------------------------------------------------


def streamlit_secrets_files(cwd: Path | None = None) -> list[Path]:
    """Where Streamlit reads ``secrets.toml``: the user's and the working folder's."""
    return [
        Path.home() / ".streamlit" / "secrets.toml",
        (cwd or Path.cwd()) / ".streamlit" / "secrets.toml",
    ]


def oidc_configured(files: list[Path] | None = None) -> bool:
    """Whether a Streamlit secrets file has an ``[auth]`` section (``st.login``'s set-up).

    Raises:
        InputError: A secrets file is not valid TOML (named, not quoted).
    """
    for path in files if files is not None else streamlit_secrets_files():
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            raise InputError(f"Streamlit's secrets file {path} is not valid TOML.") from None
        if isinstance(data.get("auth"), dict):
            return True
    return False


def resolve_mode(settings: Settings, oidc: bool) -> AuthMode:
    """The login mode from ``settings.dashboard_auth`` and what is configured.

    Args:
        settings: The settings (``INFERTUNE_DASHBOARD_AUTH`` and the accounts).
        oidc: Whether an ``[auth]`` section is configured for Streamlit.

    Raises:
        InputError: A mode was asked for that is not configured.
    """
    wanted = settings.dashboard_auth
    if wanted == "oidc" and not oidc:
        raise InputError(
            "INFERTUNE_DASHBOARD_AUTH=oidc needs an [auth] section (client_id, client_secret, "
            "server_metadata_url, redirect_uri, cookie_secret) in .streamlit/secrets.toml."
        )
    if wanted == "password" and not has_accounts(settings):
        raise InputError(
            "INFERTUNE_DASHBOARD_AUTH=password needs an account: set "
            "INFERTUNE_DASHBOARD_PASSWORD or run infertune dashboard --add-user NAME."
        )
    if wanted == "auto":
        if oidc:
            return AuthMode.OIDC
        return AuthMode.PASSWORD if has_accounts(settings) else AuthMode.NONE
    return AuthMode(wanted)


# -- hosts -----------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether a listen address only reaches this machine."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(settings: Settings, listen: str) -> list[str]:
    """The Host names the dashboard answers to (Streamlit's ``server.allowedHosts``).

    Loopback names always; the listen address when it is a specific one; for a wildcard
    address (``0.0.0.0``, ``::``) this machine's name; and ``INFERTUNE_DASHBOARD_ALLOWED_HOSTS``.
    Any other Host, such as a rebound DNS name pointing at this machine, is refused.
    """
    hosts = list(LOOPBACK_HOSTS)
    if listen in ("0.0.0.0", "::", ""):  # a wildcard address
        hosts += [socket.gethostname(), socket.getfqdn()]
    else:
        hosts.append(listen.strip("[]"))
    extra = settings.dashboard_allowed_hosts or ""
    hosts += [h.strip() for h in extra.split(",") if h.strip()]
    return list(dict.fromkeys(h.lower() for h in hosts if h))


def host_allowed(host_header: str | None, allowed: list[str]) -> bool:
    """Whether a request's ``Host`` header names an allowed host (the port is ignored)."""
    if not host_header:
        return False
    host = host_header.strip().lower()
    if host.startswith("["):
        name = host[1 : host.find("]")] if "]" in host else ""
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.rstrip(".")
    return any(name == a or (a.startswith("*.") and name.endswith(a[1:])) for a in allowed)
