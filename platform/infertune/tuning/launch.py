"""Start studies as background processes (the dashboard's Launch page) and follow them.

A page must never run a study itself (Streamlit reruns its script on every click), so a
launch starts ``infertune tune`` as its own process, in its own session, writing to a log
file under ``<home>/launches``; a small JSON record next to it lets any later page (or
another dashboard process) list it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from infertune.config import Settings
from infertune.exceptions import InputError

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def launches_dir(settings: Settings) -> Path:
    """Where launch records and logs live."""
    return settings.home / "launches"


def tune_command(
    settings: Settings,
    model: str,
    study: str,
    trials: int,
    space: str = "quick",
    data: str | None = None,
    train_data: str | None = None,
) -> list[str]:
    """The ``infertune tune`` command line for a launch (settings go in its environment)."""
    command = [sys.executable, "-m", "infertune", "tune", model, "--study", study]
    command += ["--trials", str(trials), "--space", space]
    if data:
        command += ["--data", data]
    if train_data:
        command += ["--train-data", train_data]
    return command


def launch_study(
    settings: Settings,
    model: str,
    study: str,
    trials: int,
    space: str = "quick",
    data: str | None = None,
    train_data: str | None = None,
) -> dict[str, Any]:
    """Start a study in the background; returns its launch record.

    Raises:
        InputError: A field is empty or names a file that does not exist (checked here so
            the form can say so at once; everything else is checked by ``tune`` itself and
            shows in the launch's log).
    """
    model, study = model.strip(), study.strip()
    if not model:
        raise InputError("Give a model: a .keras file, a SavedModel folder or demo:NAME.")
    if not study:
        raise InputError("Give the study a name.")
    if trials < 1:
        raise InputError("The trial budget must be at least 1.")
    for label, value in (("model", model), ("data", data), ("training data", train_data)):
        if value and not value.startswith("demo:") and not Path(value).expanduser().exists():
            raise InputError(f"The {label} path {value} does not exist on the dashboard's host.")
    if not model.startswith("demo:") and not data:
        raise InputError("A model file needs an evaluation set (.npz); demo models bring one.")
    folder = launches_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    base = f"{_SAFE_NAME.sub('_', study)}-{stamp}"
    log_path = folder / f"{base}.log"
    command = tune_command(settings, model, study, trials, space, data, train_data)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the page's reruns and the dashboard's restart
            env={**settings.child_env(), "COLUMNS": "120"},
        )
    record = {
        "study": study,
        "model": model,
        "trials": trials,
        "space": space,
        "pid": proc.pid,
        "command": command,
        "log": str(log_path),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (folder / f"{base}.json").write_text(json.dumps(record, indent=2))
    _CHILDREN[proc.pid] = proc
    return record


#: Processes this process started, polled so they are reaped (no zombies) and their exit
#: status is known.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _state(pid: int) -> tuple[str, int | None]:
    child = _CHILDREN.get(pid)
    if child is not None:
        code = child.poll()
        return ("running", None) if code is None else ("exited", code)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "exited", None
    except PermissionError:
        return "running", None
    return "running", None


def launches(settings: Settings, tail_lines: int = 8) -> list[dict[str, Any]]:
    """Every launch record, newest first, with its state and the tail of its log."""
    folder = launches_dir(settings)
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob("*.json"), reverse=True):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        state, code = _state(int(record["pid"]))
        record["state"], record["exit_code"] = state, code
        try:
            lines = Path(record["log"]).read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        record["log_tail"] = "\n".join(lines[-tail_lines:])
        errors = [ln for ln in lines if ln.startswith("infertune: error:")]
        record["error"] = errors[-1].removeprefix("infertune: error: ") if errors else None
        out.append(record)
    return out
