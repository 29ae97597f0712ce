"""Locks across processes on one database, and who a process is (base: any layer uses it).

Several processes that use a fresh home or a fresh database at once (three commands, a
dashboard's Launch, workers) would race in the first-time creation of tables: the
platform's, Optuna's and MLflow's. :func:`url_lock` serialises such work per database: a
``flock`` on a file beside a SQLite database, a PostgreSQL advisory lock on a server.

:class:`ProcessId` names a process so that another one can tell whether it still lives:
on the same host (and PID namespace) by its PID and start time, elsewhere only by a
heartbeat.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import socket
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from infertune.exceptions import StorageError

__all__ = ["ProcessId", "file_lock", "sqlite_path", "this_process", "url_lock"]


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL (``None``: not SQLite, or in memory)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (released by the kernel if the holder dies).

    A folder where the lock file cannot be created (read-only) is not locked: nothing can
    be created there anyway, and reads need no lock.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT):
            yield
            return
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def url_lock(url: str, purpose: str) -> Iterator[None]:
    """Serialise ``purpose`` among every process that uses the database at ``url``.

    SQLite: a lock file next to the database file. PostgreSQL: a session advisory lock
    keyed by ``purpose``. Other URLs (an MLflow server, a database in memory): no lock.

    Raises:
        StorageError: The PostgreSQL server cannot be reached.
    """
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(path.with_name(f"{path.name}.{purpose}.lock")):
            yield
        return
    if not url.startswith(("postgresql", "postgres")):
        yield
        return
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    key = zlib.crc32(f"infertune:{purpose}".encode())
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        try:
            conn = engine.connect()
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            conn.commit()
        except SQLAlchemyError as exc:
            raise StorageError(
                f"Cannot reach the database {sa.make_url(url).render_as_string()}: "
                f"{str(getattr(exc, 'orig', None) or exc).strip().splitlines()[0]}"
            ) from None
        try:
            yield
        finally:
            with contextlib.suppress(SQLAlchemyError):
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
            conn.close()
    finally:
        engine.dispose()


def _start_ticks(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (``None``: no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after its ')' are plain.
    return stat.rsplit(")", 1)[1].split()[19]


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


@dataclass(frozen=True)
class ProcessId:
    """A process as others see it: host, PID namespace, PID and start time."""

    host: str
    pid: int
    started: str
    """Start time in clock ticks since boot (a reused PID has another)."""
    namespace: str = ""

    @property
    def worker(self) -> str:
        """``host:pid``, as trials record the process that runs them."""
        return f"{self.host}:{self.pid}"

    def token(self) -> str:
        """One string that stores the identity (:meth:`parse` reads it back)."""
        return f"{self.host}|{self.namespace}|{self.pid}|{self.started}"

    @classmethod
    def parse(cls, token: str) -> ProcessId | None:
        """The identity stored by :meth:`token` (``None``: not one)."""
        parts = token.split("|")
        if len(parts) != 4 or not parts[2].isdigit():
            return None
        return cls(host=parts[0], namespace=parts[1], pid=int(parts[2]), started=parts[3])

    def is_local(self) -> bool:
        """Whether this host (and PID namespace) can see the process."""
        me = this_process()
        return self.host == me.host and self.namespace == me.namespace

    def dead(self) -> bool:
        """Whether the process is known to be gone: local, and its PID ended or reused.

        A process on another host is never known dead here (its heartbeat tells).
        """
        return self.is_local() and _start_ticks(self.pid) != self.started


@lru_cache(maxsize=1)
def _me(pid: int) -> ProcessId:
    return ProcessId(
        host=socket.gethostname(),
        pid=pid,
        started=_start_ticks(pid) or "",
        namespace=_pid_namespace(),
    )


def this_process() -> ProcessId:
    """This process (recomputed in a forked child)."""
    return _me(os.getpid())
