"""Where the files that ship with infertune are: search spaces, migrations, the dashboard.

They stay at the top of the source tree (``search_spaces/``, ``migrations/``,
``dashboards/``) and are found from here, so callers never compute paths themselves.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["dashboard_app", "migrations_dir", "search_spaces_dir"]

_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def search_spaces_dir() -> Path:
    """The folder of the shipped search spaces (``quick.yaml``, ``default.yaml``, ...)."""
    return _SOURCE_ROOT / "search_spaces"


def migrations_dir() -> Path:
    """The Alembic script folder of the platform's own tables (holds ``env.py``)."""
    return _SOURCE_ROOT / "migrations"


def dashboard_app() -> Path:
    """The Streamlit script of the web dashboard (``app.py``)."""
    return _SOURCE_ROOT / "dashboards" / "app.py"
