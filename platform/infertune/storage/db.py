"""The platform database: engine, session scope, schema check and migrations.

The platform database holds Optuna's tables and the platform's own (``infertune_*``), whose
schema Alembic manages with its own version table, ``infertune_alembic_version`` (Optuna
and MLflow each use ``alembic_version``). A fresh database is created at the current
schema on first use, so the embedded default needs no set-up; a database whose schema is
behind is refused with the command that upgrades it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from infertune._resources import migrations_dir
from infertune.exceptions import SchemaError, StorageError, store_hint
from infertune.locks import url_lock

VERSION_TABLE = "infertune_alembic_version"
UPGRADE_COMMAND = "infertune db upgrade"


def normalize_url(url: str) -> str:
    """Map ``postgresql://`` to the psycopg 3 driver; make a SQLite file's folder."""
    if url.startswith(("postgresql://", "postgres://")):
        # SQLAlchemy's default PostgreSQL driver is psycopg2; infertune ships psycopg 3.
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        folder = Path(url.removeprefix("sqlite:///").split("?", 1)[0]).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"Cannot use the SQLite database {url}: its folder {folder} cannot be created "
                f"({exc.strerror or exc}); give a path in a folder you may write."
            ) from None
    return url


def check_url(url: str, what: str = "database") -> str:
    """``url`` normalised, or one line saying why SQLAlchemy cannot use it.

    Raises:
        StorageError: Malformed, or a dialect or driver that is not installed.
    """
    normalized = normalize_url(url)
    try:
        sa.create_engine(normalized).dispose()  # parses and loads the driver; no connection
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StorageError(
            f"Cannot use the {what} URL {safe_url(url)}: {_first_line(exc)}; expected e.g. "
            "sqlite:////path/to/file.db or postgresql://USER@HOST/DB."
        ) from None
    return normalized


def prepare_optuna_storage(url: str) -> None:
    """Create Optuna's tables in ``url`` once, one process at a time.

    Processes that open a fresh storage together would race in Optuna's own first-time
    set-up (``UNIQUE constraint failed: alembic_version``, duplicate types on PostgreSQL).

    Raises:
        StorageError: The database cannot be reached or written.
    """
    import optuna

    url = check_url(url, "storage")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with url_lock(url, "optuna-tables"):
            with engine.connect() as conn:
                ready = sa.inspect(conn).has_table("version_info")
            if not ready:
                optuna.storages.RDBStorage(url).remove_session()
    except SQLAlchemyError as exc:
        raise StorageError(f"Cannot open the storage {safe_url(url)}: {_first_line(exc)}") from None
    finally:
        engine.dispose()


def safe_url(url: str) -> str:
    """The URL with its password masked, for messages."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def alembic_config(url: str) -> Config:
    """Alembic's configuration for the platform's migrations on ``url``."""
    scripts = migrations_dir()
    if not (scripts / "env.py").is_file():
        raise StorageError(f"The migrations folder {scripts} is incomplete; reinstall infertune.")
    config = Config()
    config.set_main_option("script_location", str(scripts))
    config.set_main_option("version_table", VERSION_TABLE)
    # Alembic's config is an ini file underneath: '%' must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def head_revision() -> str:
    """The schema revision this version of infertune needs."""
    head = _scripts().get_current_head()
    assert head is not None
    return head


class Database:
    """The platform database at ``url`` (SQLite file or PostgreSQL).

    Args:
        url: SQLAlchemy URL; ``postgresql://`` uses psycopg 3.
    """

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        options: dict[str, object] = {"pool_pre_ping": True}
        if self.url.startswith("sqlite"):
            options["connect_args"] = {"timeout": 30}
        try:
            self.engine = sa.create_engine(self.url, **options)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StorageError(f"Cannot use the database URL {safe_url(url)}: {exc}") from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._checked = False

    def dispose(self) -> None:
        """Close the connection pool."""
        self.engine.dispose()

    # -- schema --------------------------------------------------------------------------

    def current_revision(self) -> str | None:
        """The schema revision the database is at (``None``: none of ours yet)."""
        try:
            with self.engine.connect() as conn:
                context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
                return context.get_current_revision()
        except SQLAlchemyError as exc:
            raise StorageError(
                f"Cannot read the platform database {safe_url(self.url)}: {_first_line(exc)}"
            ) from None

    def is_fresh(self) -> bool:
        """Whether the platform's schema was never created here (no version table)."""
        with self.engine.connect() as conn:
            return not sa.inspect(conn).has_table(VERSION_TABLE)

    def upgrade(self, revision: str = "head") -> str | None:
        """Migrate the platform's tables up to ``revision`` (at it already: nothing to do).

        Processes that upgrade at once take turns (:func:`~infertune.locks.url_lock`).
        Returns the revision the database was at when this process's turn came.
        """
        with self._schema_lock():
            before = self.current_revision()
            self._run(command.upgrade, revision)
        self._checked = False
        return before

    def downgrade(self, revision: str) -> None:
        """Migrate the platform's tables down to ``revision`` (``base``: drop them all)."""
        with self._schema_lock():
            self._run(command.downgrade, revision)
        self._checked = False

    def _schema_lock(self) -> contextlib.AbstractContextManager[None]:
        try:
            return url_lock(self.url, "schema")
        except OSError as exc:
            raise StorageError(
                f"Cannot lock the platform database {safe_url(self.url)}: {exc}"
            ) from None

    def _run(self, action: object, revision: str) -> None:
        from alembic.util.exc import CommandError

        engine = self._migration_engine()
        try:
            with engine.begin() as conn:
                config = alembic_config(self.url)
                config.attributes["connection"] = conn
                action(config, revision)  # type: ignore[operator]
        except SQLAlchemyError as exc:
            raise StorageError(
                f"Migrating {safe_url(self.url)} to {revision} failed: {_first_line(exc)}"
            ) from None
        except CommandError as exc:
            revisions = ", ".join(
                ["base", *reversed([r.revision for r in _scripts().walk_revisions()])]
            )
            raise StorageError(
                f"Cannot migrate {safe_url(self.url)} to '{revision}': {_first_line(exc)} "
                f"(revisions: {revisions}, or head)."
            ) from None
        finally:
            if engine is not self.engine:
                engine.dispose()

    def _migration_engine(self) -> sa.Engine:
        """An engine whose transactions hold DDL too: a failed migration leaves nothing.

        Python's ``sqlite3`` commits before each ``CREATE``/``ALTER`` by itself, so a
        migration stopped half-way (a full disk) would leave tables without their revision:
        a database neither fresh nor at any revision. On SQLite the transaction is begun
        explicitly (SQLAlchemy's recipe for the pysqlite driver); PostgreSQL's DDL is
        transactional already.
        """
        if not self.url.startswith("sqlite"):
            return self.engine
        engine = sa.create_engine(
            self.url, connect_args={"timeout": 30}, poolclass=sa.pool.NullPool
        )

        @sa.event.listens_for(engine, "connect")
        def _no_implicit_commits(dbapi_connection: Any, _record: object) -> None:
            dbapi_connection.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _begin(connection: sa.Connection) -> None:
            connection.exec_driver_sql("BEGIN")

        return engine

    def ensure_schema(self) -> None:
        """Create the tables of a fresh database; refuse one whose schema is not current.

        Raises:
            SchemaError: The schema is behind (with the command that upgrades it) or ahead
                (written by a newer infertune).
        """
        if self._checked:
            return
        # Several processes on a fresh database: one creates the tables, the others wait and
        # then find them (never a half-made schema taken for an old one).
        with self._schema_lock():
            try:
                fresh = self.is_fresh()
            except SQLAlchemyError as exc:
                raise StorageError(
                    f"Cannot open the platform database {safe_url(self.url)}: {_first_line(exc)}"
                ) from None
            if fresh:
                self._run(command.upgrade, "head")
        prepare_optuna_storage(self.url)
        current, head = self.current_revision(), head_revision()
        if current != head:
            known = ScriptDirectory.from_config(alembic_config(self.url))
            try:
                behind = current is None or known.get_revision(current) is not None
            except Exception:
                behind = False
            if behind:
                raise SchemaError(
                    f"The platform database {safe_url(self.url)} is at schema revision "
                    f"{current or 'base'} and this infertune needs {head}: run "
                    f"`{UPGRADE_COMMAND}` (with the same --db-url) to upgrade it."
                )
            raise SchemaError(
                f"The platform database {safe_url(self.url)} is at schema revision {current}, "
                "which this infertune does not know: a newer infertune wrote it. Upgrade "
                "infertune, or point --db-url at another database."
            )
        self._checked = True

    # -- sessions ------------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success, rolls back on error, and reports DB errors.

        The schema is checked (and a fresh database created) before the first session.
        """
        self.ensure_schema()
        session = self._sessions()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            raise StorageError(
                f"The platform database {safe_url(self.url)} failed: {_first_line(exc)}"
            ) from None
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


def _first_line(exc: BaseException) -> str:
    """The error's first line, with what to do about a read-only database or a full disk."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    hint = store_hint(line)
    return f"{line}; {hint}" if hint else line
