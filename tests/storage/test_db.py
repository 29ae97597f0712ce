"""The platform database: migrations next to Optuna's tables, schema checks, sessions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from infertune.exceptions import SchemaError, StorageError
from infertune.storage import repository
from infertune.storage.db import VERSION_TABLE, Database, head_revision
from infertune.storage.models import StudyRecord

from ..test_cli import _one_error_line, run

OWN_TABLES = {"infertune_studies", "infertune_promotions", VERSION_TABLE}


def _tables(db: Database) -> set[str]:
    return set(sa.inspect(db.engine).get_table_names())


def _spec() -> dict[str, object]:
    return {
        "model": "demo:digits-cnn",
        "model_sha256": "0" * 64,
        "space": {"objectives": {"latency_p95_ms": "minimize"}, "constraints": {}},
    }


def _upgrade_down_up(url: str) -> None:
    # Optuna first, as when `infertune tune` creates a study on a fresh database.
    optuna.create_study(
        study_name="s", storage=url.replace("postgresql://", "postgresql+psycopg://")
    )
    db = Database(url)
    db.ensure_schema()  # a fresh platform schema is created on first use
    assert db.current_revision() == head_revision()
    tables = _tables(db)
    assert tables >= OWN_TABLES
    assert "alembic_version" in tables and "trials" in tables  # Optuna's, untouched
    db.downgrade("base")
    assert db.current_revision() is None
    assert not (_tables(db) & (OWN_TABLES - {VERSION_TABLE}))
    assert "trials" in _tables(db)
    db.upgrade()
    assert _tables(db) >= OWN_TABLES
    repository.save_study(db, "s", _spec(), {"hardware_id": "hw"}, url, "running")
    assert repository.study_id(db, "s") is not None
    assert optuna.load_study(
        study_name="s", storage=url.replace("postgresql://", "postgresql+psycopg://")
    )
    db.dispose()


def test_sqlite_upgrade_downgrade_upgrade(tmp_path: Path) -> None:
    _upgrade_down_up(f"sqlite:///{tmp_path / 'platform.db'}")


@pytest.mark.postgres
def test_postgres_upgrade_downgrade_upgrade(pg_url: str) -> None:
    _upgrade_down_up(pg_url)


@pytest.mark.postgres
def test_many_processes_starting_on_a_fresh_postgres_migrate_once(
    pg_url: str, tmp_path: Path
) -> None:
    # Four processes at once, as workers starting together on a fresh database: one creates
    # the platform's and Optuna's tables, the rest wait.
    env = {**os.environ, "INFERTUNE_HOME": str(tmp_path), "INFERTUNE_DB_URL": pg_url}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "infertune", "studies", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err for _, err in results]
    assert Database(pg_url).current_revision() == head_revision()


def test_a_schema_behind_names_the_upgrade_command(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'platform.db'}")
    db.upgrade()
    db.downgrade("base")  # the version table stays: this database is not fresh, it is behind
    with pytest.raises(SchemaError, match="run `infertune db upgrade`"):
        Database(db.url).ensure_schema()


def test_a_schema_from_a_newer_infertune_is_refused(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'platform.db'}")
    db.ensure_schema()
    with db.engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = 'f00dcafe'"))
    with pytest.raises(SchemaError, match="newer infertune"):
        Database(db.url).ensure_schema()


def test_session_rolls_back_and_reports_database_errors(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'platform.db'}")
    repository.save_study(db, "dup", _spec(), {"hardware_id": "hw"}, db.url, "running")
    with pytest.raises(StorageError, match="UNIQUE"), db.session() as session:
        session.add(
            StudyRecord(
                name="other", model="m", model_sha256="x", space={}, objectives={}, hardware_id="hw"
            )
        )
        session.flush()
        session.add(
            StudyRecord(
                name="dup", model="m", model_sha256="x", space={}, objectives={}, hardware_id="hw"
            )
        )
    with db.session() as session:
        names = session.scalars(sa.select(StudyRecord.name)).all()
    assert names == ["dup"]  # "other" was rolled back with the failing insert


def test_bad_url_is_one_clear_error() -> None:
    with pytest.raises(StorageError, match="database URL"):
        Database("nosuchdialect://x/y")


def test_db_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    current = run("db", "current", "--json", home=home)
    assert current.returncode == 0, current.stderr
    assert '"current": null' in current.stdout
    up = run("db", "upgrade", home=home)
    assert up.returncode == 0 and f"to {head_revision()}" in up.stdout, up.stderr
    assert "already at" in run("db", "upgrade", home=home).stdout
    assert "add --yes" in _one_error_line(run("db", "downgrade", "base", home=home))
    down = run("db", "downgrade", "base", "--yes", home=home)
    assert down.returncode == 0, down.stderr
    # Every command that touches the database says how to fix a schema that is behind.
    assert "infertune db upgrade" in _one_error_line(run("studies", home=home))
    assert run("db", "upgrade", home=home).returncode == 0
    assert run("studies", "--json", home=home).returncode == 0


def _at_once(
    commands: list[list[str]], env: dict[str, str]
) -> list[subprocess.CompletedProcess[str]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "infertune", *cmd],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cmd in commands
    ]
    done = []
    for cmd, p in zip(commands, procs, strict=True):
        out, err = p.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(cmd, p.returncode, out, err))
    return done


@pytest.mark.slow
def test_a_fresh_home_used_by_several_commands_at_once(tmp_path: Path) -> None:
    """Issue 18: 4 of 9 failed (UNIQUE constraint failed: alembic_version, false 'upgrade')."""
    home = tmp_path / "home"
    commands = [["db", "upgrade"], ["studies", "--json"], ["schedule", "list"]] * 3
    procs = _at_once(commands, {"INFERTUNE_HOME": str(home)})
    errors = [p.stderr for p in procs if p.returncode != 0]
    assert not errors, errors
    db = Database(f"sqlite:///{home / 'infertune.db'}")
    assert db.current_revision() == head_revision()
    assert "studies" in _tables(db)  # Optuna's tables too


_MLFLOW_FIRST_USE = """
import sys
from infertune.config import load_settings
from infertune.tracking.tracker import Tracker
from pathlib import Path
settings = load_settings(home=Path(sys.argv[1]), mlflow_tracking_uri=sys.argv[2] or None)
Tracker(settings).experiment("e")
"""


def _mlflow_at_once(home: Path, uri: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _MLFLOW_FIRST_USE, str(home), uri],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors


@pytest.mark.slow
def test_mlflow_first_use_by_several_processes_sqlite(tmp_path: Path) -> None:
    _mlflow_at_once(tmp_path / "home", "")


@pytest.mark.slow
@pytest.mark.postgres
def test_mlflow_first_use_by_several_processes_postgres(tmp_path: Path, pg_url: str) -> None:
    """Issue 18: 3 of 4 processes failed on duplicate keys on a fresh PostgreSQL database."""
    _mlflow_at_once(tmp_path / "home", pg_url.replace("postgresql://", "postgresql+psycopg://"))


def test_upgrades_at_once_take_turns(tmp_path: Path) -> None:
    home = tmp_path / "home"
    procs = _at_once([["db", "upgrade"]] * 3, {"INFERTUNE_HOME": str(home)})
    assert [p.returncode for p in procs] == [0, 0, 0], [p.stderr for p in procs]
    said = sorted("already at" in p.stdout for p in procs)
    assert said == [False, True, True]


def test_a_bad_downgrade_revision_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run("db", "upgrade", home=home).returncode == 0
    line = _one_error_line(run("db", "downgrade", "nosuch", "--yes", home=home))
    assert "'nosuch'" in line and "revisions: base, 0001" in line


def test_a_bad_storage_url_is_one_line(tmp_path: Path) -> None:
    line = _one_error_line(run("studies", "--storage", "nosuchdialect://x/y", home=tmp_path))
    assert "storage URL nosuchdialect://x/y" in line
    line = _one_error_line(
        run("studies", "--storage", "postgresql://u@127.0.0.1:9/x", home=tmp_path)
    )
    assert "127.0.0.1:9" in line and "refused" in line


def test_reconcile_of_an_unknown_study_is_one_line(tmp_path: Path) -> None:
    line = _one_error_line(run("reconcile", "nosuch", home=tmp_path))
    assert "No study named 'nosuch'" in line
