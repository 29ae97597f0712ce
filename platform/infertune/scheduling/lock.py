"""Exactly one scheduler per platform database: a lock row with a heartbeat.

The holder refreshes ``heartbeat_at`` every few seconds; a lock whose heartbeat is older
than ``stale_after_s`` belongs to a dead process and may be taken over. Taking the lock is
one conditional UPDATE, so two schedulers starting together cannot both win (on SQLite and
PostgreSQL alike).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import uuid

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from infertune.exceptions import InfertuneError
from infertune.storage.db import Database
from infertune.storage.models import SchedulerLock, utcnow

LOCK_ID = 1


class SchedulerLocked(InfertuneError):
    """Another scheduler process holds this database's scheduler lock."""


def holder_name() -> str:
    """This process, as it appears in the lock: host, pid and a random tag.

    The tag tells apart containers that share a hostname and all run as pid 1.
    """
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class SchedulerLockHolder:
    """Takes the lock, keeps its heartbeat, and releases it.

    Args:
        db: The platform database.
        stale_after_s: A heartbeat older than this means the holder died.
        heartbeat_s: How often the holder refreshes its heartbeat.
    """

    def __init__(self, db: Database, stale_after_s: float = 60.0, heartbeat_s: float = 10.0):
        self.db = db
        self.stale_after_s = stale_after_s
        self.heartbeat_s = heartbeat_s
        self.name = holder_name()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False
        """Set when a heartbeat finds the lock taken by another process."""

    def acquire(self) -> None:
        """Take the lock or say who holds it.

        Raises:
            SchedulerLocked: A live scheduler holds it.
        """
        now = utcnow()
        stale = now - dt.timedelta(seconds=self.stale_after_s)
        with self.db.session() as session:
            if session.get(SchedulerLock, LOCK_ID) is None:
                try:
                    with session.begin_nested():
                        session.add(SchedulerLock(id=LOCK_ID))
                except IntegrityError:
                    pass  # another scheduler created the row first
        with self.db.session() as session:
            taken = session.execute(
                sa.update(SchedulerLock)
                .where(SchedulerLock.id == LOCK_ID)
                .where(
                    sa.or_(
                        SchedulerLock.holder.is_(None),
                        SchedulerLock.heartbeat_at.is_(None),
                        SchedulerLock.heartbeat_at < stale,
                        SchedulerLock.holder == self.name,
                    )
                )
                .values(holder=self.name, heartbeat_at=now, started_at=now)
            )
            won = taken.rowcount == 1  # type: ignore[attr-defined]
        if not won:
            with self.db.session() as session:
                row = session.get(SchedulerLock, LOCK_ID)
                holder = row.holder if row else "?"
                beat = row.heartbeat_at if row else None
            age = f"{(now - _aware(beat)).total_seconds():.0f} s ago" if beat else "never"
            raise SchedulerLocked(
                f"Another scheduler runs on this database: {holder} (last heartbeat {age}). "
                f"Stop it first; if it died, its lock frees itself after {self.stale_after_s:g} s."
            )
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="scheduler-lock", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                with self.db.session() as session:
                    beat = session.execute(
                        sa.update(SchedulerLock)
                        .where(SchedulerLock.id == LOCK_ID, SchedulerLock.holder == self.name)
                        .values(heartbeat_at=utcnow())
                    )
                    if beat.rowcount == 0:  # type: ignore[attr-defined]
                        self.lost = True
                        return
            except InfertuneError:
                continue  # a database hiccup: try again at the next beat

    def release(self) -> None:
        """Stop the heartbeat and free the lock (if still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self.db.session() as session:
            session.execute(
                sa.update(SchedulerLock)
                .where(SchedulerLock.id == LOCK_ID, SchedulerLock.holder == self.name)
                .values(holder=None, heartbeat_at=None)
            )


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite gives naive datetimes back: they are UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
