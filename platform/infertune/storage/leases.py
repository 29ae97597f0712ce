"""Who works on a study: one live owner at most, any number of workers, with heartbeats.

Each process that runs a study's trials holds a lease row (:class:`~infertune.storage.models.
StudyLease`) and refreshes its heartbeat. An owner (``tune``, a re-tune) takes the study's
single ``owner`` row: a second owner is refused while the first lives, and a dead one's row is
taken over. A process is dead when it is on this host and its PID ended (known at once), or
when its heartbeat is older than its ``stale_after_s`` (any host). Taking a row is a
conditional UPDATE on the holder read before (compare and swap), so two processes starting
together cannot both win, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from infertune.exceptions import InfertuneError, StudyBusyError
from infertune.locks import ProcessId, this_process
from infertune.storage.db import Database
from infertune.storage.models import StudyLease, utcnow

__all__ = ["Lease", "LeaseHolder", "leases", "reap"]

OWNER = "owner"
WORKER = "worker"


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite gives naive datetimes back: they are UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Lease:
    """One lease row as read."""

    id: int
    study: str
    role: str
    holder: str | None
    heartbeat_at: dt.datetime | None
    stale_after_s: float
    started_at: dt.datetime | None

    @property
    def process(self) -> ProcessId | None:
        """The holding process (``None``: the row is free)."""
        return ProcessId.parse(self.holder) if self.holder else None

    def alive(self, now: dt.datetime | None = None) -> bool:
        """Whether a live process holds it.

        On this host, by its PID (a process alive with a late heartbeat is still alive);
        elsewhere, by its heartbeat.
        """
        process = self.process
        if process is None:
            return False
        if process.is_local():
            return not process.dead()
        if self.heartbeat_at is None:
            return False
        age = ((now or utcnow()) - _aware(self.heartbeat_at)).total_seconds()
        return age <= self.stale_after_s

    def describe(self, now: dt.datetime | None = None) -> str:
        """``host pid N (since T, heartbeat Ns ago)`` for messages."""
        process = self.process
        who = f"{process.host} pid {process.pid}" if process else "nobody"
        now = now or utcnow()
        beat = (
            f"heartbeat {(now - _aware(self.heartbeat_at)).total_seconds():.0f} s ago"
            if self.heartbeat_at
            else "no heartbeat"
        )
        since = (
            f"since {_aware(self.started_at).strftime('%Y-%m-%d %H:%M:%S')} UTC, "
            if self.started_at
            else ""
        )
        return f"{who} ({since}{beat})"


def _lease(row: StudyLease) -> Lease:
    return Lease(
        id=row.id,
        study=row.study,
        role=row.role,
        holder=row.holder,
        heartbeat_at=row.heartbeat_at,
        stale_after_s=row.stale_after_s,
        started_at=row.started_at,
    )


def leases(db: Database, study: str) -> list[Lease]:
    """Every lease row of a study."""
    with db.session() as session:
        rows = session.scalars(sa.select(StudyLease).where(StudyLease.study == study)).all()
        return [_lease(r) for r in rows]


def reap(db: Database, study: str) -> list[ProcessId]:
    """Free the leases of dead processes; the processes found dead.

    A dead worker's row is deleted, a dead owner's row freed (its next owner takes it).
    """
    dead: list[ProcessId] = []
    now = utcnow()
    for lease in leases(db, study):
        process = lease.process
        if process is None or lease.alive(now):
            continue
        with db.session() as session:
            match = sa.and_(StudyLease.id == lease.id, StudyLease.holder == lease.holder)
            if lease.role == OWNER:
                done = session.execute(
                    sa.update(StudyLease).where(match).values(holder=None, heartbeat_at=None)
                )
            else:
                done = session.execute(sa.delete(StudyLease).where(match))
        if done.rowcount == 1:  # type: ignore[attr-defined]
            dead.append(process)
    return dead


class LeaseHolder:
    """Holds one lease on a study and keeps its heartbeat.

    Args:
        db: The platform database.
        study: The study's name.
        role: ``owner`` (at most one live) or ``worker``.
        heartbeat_s: Seconds between heartbeats.
        stale_after_s: A heartbeat older than this means the holder died (default: three
            heartbeats).
    """

    def __init__(
        self,
        db: Database,
        study: str,
        role: str,
        heartbeat_s: float = 10.0,
        stale_after_s: float | None = None,
    ) -> None:
        if role not in (OWNER, WORKER):
            raise ValueError(f"unknown lease role {role!r}")
        self.db = db
        self.study = study
        self.role = role
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s if stale_after_s is not None else 3 * heartbeat_s
        self.me = this_process()
        self.token = self.me.token()
        self.taken_over: ProcessId | None = None
        """The dead owner whose lease this owner took over, if any."""
        self.lost = False
        """Set when a heartbeat finds the lease taken by another process."""
        self._row_id: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        """Take the lease and start the heartbeat.

        Raises:
            StudyBusyError: ``owner``: a live process owns the study.
        """
        if self.role == OWNER:
            self._take_owner()
        else:
            now = utcnow()
            with self.db.session() as session:
                row = StudyLease(
                    study=self.study,
                    slot=f"{WORKER}:{self.token}"[:300],
                    role=WORKER,
                    holder=self.token,
                    heartbeat_at=now,
                    stale_after_s=self.stale_after_s,
                    started_at=now,
                )
                session.add(row)
                session.flush()
                self._row_id = row.id
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="study-lease", daemon=True)
        self._thread.start()

    def _take_owner(self) -> None:
        with self.db.session() as session:
            exists = session.scalar(
                sa.select(StudyLease.id).where(
                    StudyLease.study == self.study, StudyLease.slot == OWNER
                )
            )
            if exists is None:
                try:
                    with session.begin_nested():
                        session.add(
                            StudyLease(
                                study=self.study,
                                slot=OWNER,
                                role=OWNER,
                                stale_after_s=self.stale_after_s,
                            )
                        )
                except IntegrityError:
                    pass  # another process created the row first
        for _ in range(5):
            with self.db.session() as session:
                row = session.scalar(
                    sa.select(StudyLease).where(
                        StudyLease.study == self.study, StudyLease.slot == OWNER
                    )
                )
                assert row is not None
                current = _lease(row)
            now = utcnow()
            if current.holder not in (None, self.token) and current.alive(now):
                raise StudyBusyError(
                    f"Study '{self.study}' is already being tuned by {current.describe(now)}: "
                    "a second tune would measure a second baseline. Wait for it to end, or add "
                    f"processes to it with `infertune worker {self.study} --trials N` "
                    "(PostgreSQL storage); a dead owner's claim is taken over at once on its "
                    f"host, elsewhere after {current.stale_after_s:g} s without a heartbeat."
                )
            held = (
                StudyLease.holder.is_(None)
                if current.holder is None
                else StudyLease.holder == current.holder
            )
            with self.db.session() as session:
                done = session.execute(
                    sa.update(StudyLease)
                    .where(StudyLease.id == current.id, held)
                    .values(
                        holder=self.token,
                        heartbeat_at=now,
                        started_at=now,
                        stale_after_s=self.stale_after_s,
                    )
                )
            if done.rowcount == 1:  # type: ignore[attr-defined]
                self._row_id = current.id
                if current.holder not in (None, self.token):
                    self.taken_over = current.process
                return
        raise StudyBusyError(
            f"Study '{self.study}' changed owner repeatedly while this process tried to own it; "
            "try again."
        )

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                with self.db.session() as session:
                    beat = session.execute(
                        sa.update(StudyLease)
                        .where(StudyLease.id == self._row_id, StudyLease.holder == self.token)
                        .values(heartbeat_at=utcnow())
                    )
                if beat.rowcount == 0:  # type: ignore[attr-defined]
                    self.lost = True
                    return
            except InfertuneError:
                continue  # a database hiccup: try again at the next beat

    def others_alive(self) -> list[Lease]:
        """The live leases of the study other than this one."""
        now = utcnow()
        return [
            lease
            for lease in leases(self.db, self.study)
            if lease.holder != self.token and lease.alive(now)
        ]

    def release(self) -> None:
        """Stop the heartbeat and give the lease back (if still ours). Never raises."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._row_id is None:
            return
        try:
            with self.db.session() as session:
                match = sa.and_(StudyLease.id == self._row_id, StudyLease.holder == self.token)
                if self.role == OWNER:
                    session.execute(
                        sa.update(StudyLease).where(match).values(holder=None, heartbeat_at=None)
                    )
                else:
                    session.execute(sa.delete(StudyLease).where(match))
        except InfertuneError:
            pass  # the row is reaped as dead later
        self._row_id = None
