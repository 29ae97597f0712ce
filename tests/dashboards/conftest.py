"""A home folder holding a small real study for the dashboard tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ..test_cli import tune_tiny

STUDY = "dash-study"
APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"


@pytest.fixture(scope="package")
def dash_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("dash-home")
    front = tune_tiny(home, STUDY)
    return {"home": home, "space": home / "tiny.yaml", "front": front}


@pytest.fixture(autouse=True)
def _keep_main_module() -> Any:
    """Streamlit's AppTest runs the app as ``__main__``; put the real one back afterwards.

    Otherwise a later test that starts a process with multiprocessing's spawn method makes
    the child import the dashboard's app.py as its main module (and fail on its imports).
    """
    import sys

    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main
