from pathlib import Path

import pytest

from infertune.config import load_settings


def test_defaults_live_in_one_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("INFERTUNE_HOME", "INFERTUNE_DB_URL", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.home == tmp_path / ".infertune"
    assert settings.database_url == f"sqlite:///{tmp_path / '.infertune' / 'infertune.db'}"
    assert settings.tracking_uri == f"sqlite:///{tmp_path / '.infertune' / 'mlflow.db'}"
    assert settings.database_url != settings.tracking_uri


def test_environment_then_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INFERTUNE_HOME", str(tmp_path / "env-home"))
    monkeypatch.setenv("INFERTUNE_DB_URL", "postgresql://db/x")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    from_env = load_settings()
    assert from_env.home == tmp_path / "env-home"
    assert from_env.database_url == "postgresql://db/x"
    assert from_env.tracking_uri == "http://127.0.0.1:5000"
    flagged = load_settings(
        home=tmp_path / "flag-home", db_url="sqlite:///f.db", mlflow_tracking_uri="sqlite:///m.db"
    )
    assert flagged.home == tmp_path / "flag-home"
    assert flagged.database_url == "sqlite:///f.db"
    assert flagged.tracking_uri == "sqlite:///m.db"


def test_home_is_not_the_users_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # $HOME must never be mistaken for INFERTUNE_HOME.
    monkeypatch.delenv("INFERTUNE_HOME", raising=False)
    monkeypatch.setenv("HOME", "/somewhere/else")
    monkeypatch.chdir(tmp_path)
    assert load_settings().home == tmp_path / ".infertune"
