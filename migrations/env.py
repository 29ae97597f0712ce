"""Alembic environment of the platform's own tables (version table infertune_alembic_version).

Run through ``infertune db upgrade`` / ``downgrade`` / ``current``, which pass the
connection in ``config.attributes["connection"]``. Developers may also run plain
``alembic -c migrations/alembic.ini`` with ``-x url=...``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from infertune.storage.db import VERSION_TABLE
from infertune.storage.models import Base

config = context.config
target_metadata = Base.metadata
#: Only the platform's tables are ours: Optuna's share the database.
OWN_PREFIX = "infertune_"


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Autogenerate looks at the platform's tables only."""
    if type_ == "table":
        # APScheduler creates and owns its job table itself.
        return bool(name and name.startswith(OWN_PREFIX) and name != "infertune_apscheduler_jobs")
    return True


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        include_object=include_object,
        render_as_batch=connection.dialect.name == "sqlite",  # ALTER TABLE on SQLite
        compare_type=True,
    )


def run_offline() -> None:
    """Emit SQL instead of running it (``alembic upgrade --sql``)."""
    context.configure(
        url=context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run the migrations on a connection, serialised across processes on PostgreSQL."""
    connection = config.attributes.get("connection")
    if connection is None:
        url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
            "sqlalchemy.url"
        )
        engine = sa.create_engine(str(url))
        with engine.begin() as conn:
            _migrate(conn)
        engine.dispose()
    else:
        _migrate(connection)


def _migrate(connection: sa.Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Many workers starting on a fresh database: one migrates, the others wait.
        connection.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtext('infertune_migrations'))")
        )
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
