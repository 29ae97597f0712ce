"""Where the files that ship with infertune are: search spaces, migrations, the dashboard.

They stay at the top of the source tree (``search_spaces/``, ``migrations/``,
``dashboards/``) and are installed as the packages ``infertune.search_spaces``,
``infertune.migrations`` and ``infertune.dashboards`` (the mapping is in pyproject.toml).
``importlib.resources`` finds them in a wheel install and in an editable one alike, so
callers never compute paths themselves.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from infertune.exceptions import InfertuneError

__all__ = ["dashboard_app", "migrations_dir", "search_spaces_dir"]


def _folder(package: str) -> Path:
    """The folder of an installed data package, as a path on disk."""
    try:
        folder = files(package)
    except ModuleNotFoundError:
        raise InfertuneError(
            f"infertune's {package} files are not installed; reinstall infertune "
            "(pip install infertune, or pip install -e . in a source checkout)."
        ) from None
    if not isinstance(folder, Path):
        # Alembic and Streamlit read these files by path: a zip archive will not do.
        raise InfertuneError(
            f"infertune's {package} files are inside an archive ({folder}); install "
            "infertune with pip so that they are files on disk."
        )
    return folder


def search_spaces_dir() -> Path:
    """The folder of the shipped search spaces (``quick.yaml``, ``default.yaml``, ...)."""
    return _folder("infertune.search_spaces")


def migrations_dir() -> Path:
    """The Alembic script folder of the platform's own tables (holds ``env.py``)."""
    return _folder("infertune.migrations")


def dashboard_app() -> Path:
    """The Streamlit script of the web dashboard (``app.py``)."""
    return _folder("infertune.dashboards") / "app.py"
