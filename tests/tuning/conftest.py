"""Fixtures of the tuning tests: an MLflow store shared by the package's test modules."""

from __future__ import annotations

import pytest

from infertune.config import Settings, load_settings
from infertune.tracking.tracker import Tracker


@pytest.fixture(scope="package")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(home=tmp_path_factory.mktemp("tracking"))


@pytest.fixture(scope="package")
def tracker(tracking: Settings) -> Tracker:
    return Tracker(tracking)
