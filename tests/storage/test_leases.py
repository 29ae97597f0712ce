"""Study leases: one live owner per study, dead holders reaped, heartbeats."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infertune.exceptions import StudyBusyError
from infertune.locks import ProcessId, _start_ticks, this_process
from infertune.storage.db import Database
from infertune.storage.leases import OWNER, WORKER, LeaseHolder, leases, reap
from infertune.storage.models import StudyLease, utcnow


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'platform.db'}")
    database.ensure_schema()
    yield database
    database.dispose()


@pytest.fixture()
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """Another live process on this host."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


def _process(pid: int) -> ProcessId:
    me = this_process()
    ticks = _start_ticks(pid)
    assert ticks is not None
    return ProcessId(host=me.host, pid=pid, started=ticks, namespace=me.namespace)


def _hold(db: Database, study: str, holder: str, role: str = OWNER, age_s: float = 0) -> None:
    beat = utcnow() - dt.timedelta(seconds=age_s)
    with db.session() as session:
        session.add(
            StudyLease(
                study=study,
                slot=OWNER if role == OWNER else f"{WORKER}:{holder}",
                role=role,
                holder=holder,
                heartbeat_at=beat,
                started_at=beat,
                stale_after_s=30,
            )
        )


def test_a_second_owner_is_refused_while_the_first_lives(
    db: Database, sleeper: subprocess.Popen[bytes]
) -> None:
    other = _process(sleeper.pid)
    _hold(db, "s", other.token())
    with pytest.raises(StudyBusyError) as caught:
        LeaseHolder(db, "s", OWNER).acquire()
    message = str(caught.value)
    assert f"pid {sleeper.pid}" in message and "infertune worker s" in message
    assert "\n" not in message


def test_a_dead_owner_on_this_host_is_taken_over_at_once(
    db: Database, sleeper: subprocess.Popen[bytes]
) -> None:
    other = _process(sleeper.pid)
    _hold(db, "s", other.token())
    sleeper.kill()
    sleeper.wait()
    lease = LeaseHolder(db, "s", OWNER)
    lease.acquire()
    try:
        assert lease.taken_over == other
        assert [x.holder for x in leases(db, "s")] == [lease.token]
    finally:
        lease.release()
    assert [x.holder for x in leases(db, "s")] == [None]  # free for the next owner


def test_an_owner_elsewhere_is_trusted_until_its_heartbeat_is_stale(db: Database) -> None:
    remote = ProcessId(host="elsewhere", pid=1, started="1", namespace="pid:[1]")
    _hold(db, "s", remote.token(), age_s=5)
    with pytest.raises(StudyBusyError, match="elsewhere pid 1"):
        LeaseHolder(db, "s", OWNER).acquire()
    with db.session() as session:
        row = session.query(StudyLease).one()
        row.heartbeat_at = utcnow() - dt.timedelta(seconds=31)
    lease = LeaseHolder(db, "s", OWNER)
    lease.acquire()
    lease.release()
    assert lease.taken_over == remote


def test_reap_frees_dead_workers_and_keeps_live_ones(
    db: Database, sleeper: subprocess.Popen[bytes]
) -> None:
    dead = ProcessId(host=this_process().host, pid=2**22 + 7, started="1")
    dead = ProcessId(dead.host, dead.pid, dead.started, this_process().namespace)
    _hold(db, "s", dead.token(), role=WORKER)
    _hold(db, "s", _process(sleeper.pid).token(), role=WORKER)
    assert reap(db, "s") == [dead]
    assert [x.holder for x in leases(db, "s")] == [_process(sleeper.pid).token()]
    assert reap(db, "s") == []


def test_other_live_processes_and_heartbeats(db: Database) -> None:
    remote = ProcessId(host="elsewhere", pid=1, started="1", namespace="pid:[1]")
    _hold(db, "s", remote.token(), role=WORKER)
    owner = LeaseHolder(db, "s", OWNER, heartbeat_s=0.2)
    owner.acquire()
    try:
        first = {x.role: x.heartbeat_at for x in leases(db, "s")}
        assert [x.role for x in owner.others_alive()] == [WORKER]
        time.sleep(0.7)
        later = {x.role: x.heartbeat_at for x in leases(db, "s")}
        assert later[OWNER] > first[OWNER]  # type: ignore[operator]
    finally:
        owner.release()
    with db.session() as session:
        session.query(StudyLease).filter(StudyLease.role == WORKER).delete()
    assert not owner.others_alive()


_RACE = """
import sys
from infertune.exceptions import StudyBusyError
from infertune.storage.db import Database
from infertune.storage.leases import LeaseHolder
lease = LeaseHolder(Database(sys.argv[1]), "s", "owner")
try:
    lease.acquire()
except StudyBusyError:
    print("refused")
    sys.exit(0)
print("owner", flush=True)
sys.stdin.read()  # hold it until the test ends
"""


def test_two_processes_racing_for_a_study_one_wins(db: Database, tmp_path: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACE, db.url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outcomes = sorted(p.stdout.readline().strip() for p in procs)  # type: ignore[union-attr]
    for p in procs:
        p.communicate("")
    assert outcomes == ["owner", "refused", "refused"]
