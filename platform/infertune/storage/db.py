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

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from infertune._resources import migrations_dir
from infertune.exceptions import SchemaError, StorageError

VERSION_TABLE = "infertune_alembic_version"
UPGRADE_COMMAND = "infertune db upgrade"


def normalize_url(url: str) -> str:
    """Map ``postgresql://`` to the psycopg 3 driver; make a SQLite file's folder."""
    if url.startswith(("postgresql://", "postgres://")):
        # SQLAlchemy's default PostgreSQL driver is psycopg2; infertune ships psycopg 3.
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return url


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


def head_revision() -> str:
    """The schema revision this version of infertune needs."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
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

    def upgrade(self, revision: str = "head") -> None:
        """Migrate the platform's tables up to ``revision``."""
        self._run(command.upgrade, revision)
        self._checked = False

    def downgrade(self, revision: str) -> None:
        """Migrate the platform's tables down to ``revision`` (``base``: drop them all)."""
        self._run(command.downgrade, revision)
        self._checked = False

    def _run(self, action: object, revision: str) -> None:
        try:
            with self.engine.begin() as conn:
                config = alembic_config(self.url)
                config.attributes["connection"] = conn
                action(config, revision)  # type: ignore[operator]
        except SQLAlchemyError as exc:
            raise StorageError(
                f"Migrating {safe_url(self.url)} to {revision} failed: {_first_line(exc)}"
            ) from None

    def ensure_schema(self) -> None:
        """Create the tables of a fresh database; refuse one whose schema is not current.

        Raises:
            SchemaError: The schema is behind (with the command that upgrades it) or ahead
                (written by a newer infertune).
        """
        if self._checked:
            return
        try:
            fresh = self.is_fresh()
        except SQLAlchemyError as exc:
            raise StorageError(
                f"Cannot open the platform database {safe_url(self.url)}: {_first_line(exc)}"
            ) from None
        if fresh:
            self.upgrade()
        if self.engine.dialect.name == "postgresql":
            self._ensure_optuna_tables()
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

    def _ensure_optuna_tables(self) -> None:
        """Create Optuna's tables one process at a time.

        Many workers starting together on a fresh PostgreSQL database would otherwise race
        in Optuna's own table creation (duplicate types and tables).
        """
        import optuna

        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(hashtext('infertune_migrations'))"))
            try:
                if not sa.inspect(conn).has_table("studies"):
                    optuna.storages.RDBStorage(self.url).remove_session()
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(hashtext('infertune_migrations'))"))
                conn.commit()

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
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
