"""The audit trail of dashboard actions that the platform's tables keep no author for.

Those are launches and schedule changes (pause, resume, run now). Promotions and
rollbacks carry their actor in the promotion history (the platform database); these
other actions are appended, one JSON object a line, to ``HOME/audit.jsonl``, which every
process of one deployment shares.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from pathlib import Path
from typing import Any

from infertune.config import Settings


def audit_path(settings: Settings) -> Path:
    """The audit file of a home folder."""
    return settings.home / "audit.jsonl"


def record(settings: Settings, actor: str, action: str, target: str, detail: str = "") -> None:
    """Append one action: who, what, on which study or schedule, when, from which host."""
    entry = {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "actor": actor,
        "action": action,
        "target": target,
        "detail": detail,
        "host": socket.gethostname(),
    }
    path = audit_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One write of one short line with O_APPEND: concurrent writers do not interleave.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        os.write(fd, (json.dumps(entry) + "\n").encode())
    finally:
        os.close(fd)


def entries(settings: Settings, target: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Recent actions, newest first (of one target if given); unreadable lines are skipped."""
    path = audit_path(settings)
    if not path.is_file():
        return []
    out: list[dict[str, Any]] = []
    for line in reversed(path.read_text(encoding="utf-8", errors="replace").splitlines()):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and (target is None or entry.get("target") == target):
            out.append(entry)
            if len(out) >= limit:
                break
    return out
