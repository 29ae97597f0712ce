"""Shared fixtures: one temporary home, one trained tiny demo model, one engine per session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from infertune.config import Settings, load_settings
from infertune.measure.engine import Engine, Subject
from infertune.measure.window import MeasurementWindow

#: A short window: tests check behaviour, not speed.
QUICK = MeasurementWindow(
    warmup_s=0.05, warmup_calls=2, min_duration_s=0.1, min_calls=10, max_duration_s=20
)


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(home=tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    with Engine(settings) as eng:
        yield eng


@pytest.fixture(scope="session")
def cnn(engine: Engine) -> Subject:
    """demo:digits-cnn, trained once per session (seconds)."""
    return engine.resolve("demo:digits-cnn")


@pytest.fixture()
def npz(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write an .npz file from arrays; returns its path."""

    def write(name: str = "data.npz", **arrays: np.ndarray) -> Path:
        path = tmp_path / name
        np.savez(path, **arrays)
        return path

    return write


ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture()
def pg_url() -> Iterator[str]:
    """A throwaway PostgreSQL database (skips where the server is missing)."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    try:
        engine = sqlalchemy.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            name = f"infertune_test_{uuid.uuid4().hex[:8]}"
            conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    engine.dispose()
