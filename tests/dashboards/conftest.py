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
