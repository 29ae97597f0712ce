"""Start studies as background processes (the dashboard's Launch page) and follow them.

A page must never run a study itself (Streamlit reruns its script on every click), so a
launch starts ``infertune tune`` as its own process, in its own session, writing to a log
file under ``<home>/launches``; a small JSON record next to it lets any later page (or
another dashboard process) list it.

A launch comes from a web page, so its paths are untrusted: models, data and search-space
files are accepted only inside the configured folders (``INFERTUNE_DASHBOARD_ROOTS``,
default ``HOME/models``; ``/models`` in the docker image), after following symlinks, and
who launched it is recorded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

from infertune import audit
from infertune.config import Settings
from infertune.exceptions import InputError
from infertune.space.loader import BUILTIN_DIR

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
    # Options as --name=value and the model after "--": no field can pass as an option.
    command = [sys.executable, "-m", "infertune", "tune", f"--study={study}"]
    command += [f"--trials={trials}", f"--space={space}"]
    if data:
        command.append(f"--data={data}")
    if train_data:
        command.append(f"--train-data={train_data}")
    return [*command, "--", model]


def _roots_text(roots: list[Path]) -> str:
    return ", ".join(str(r) for r in roots) or "none"


def allowed_path(settings: Settings, label: str, value: str) -> str:
    """``value`` resolved, if it lies inside one of the launch roots.

    Raises:
        InputError: It does not exist or lies outside every root (one line naming the
            roots and the setting that changes them; nothing of the file is read).
    """
    roots = settings.launch_roots
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (roots[0] / path) if roots else path
    resolved = path.resolve()
    inside = any(resolved.is_relative_to(root) for root in roots)
    if not inside:
        raise InputError(
            f"The {label} {value} is outside the folders the dashboard may read "
            f"({_roots_text(roots)}); put it there or set INFERTUNE_DASHBOARD_ROOTS."
        )
    if not resolved.exists():
        raise InputError(f"The {label} {value} does not exist on the dashboard's host.")
    return str(resolved)


def _space_argument(settings: Settings, space: str) -> str:
    """A shipped space's name as is; a file only from inside the launch roots."""
    if space and "/" not in space and (BUILTIN_DIR / f"{space}.yaml").is_file():
        return space
    if not space:
        raise InputError("Give a search space: quick, default, tflite-cpu or a YAML file.")
    return allowed_path(settings, "search space", space)


def launch_study(
    settings: Settings,
    model: str,
    study: str,
    trials: int,
    space: str = "quick",
    data: str | None = None,
    train_data: str | None = None,
    actor: str = "unknown",
    resume: bool = False,
) -> dict[str, Any]:
    """Start a study in the background; returns its launch record.

    Args:
        settings: Home, stores and the launch roots.
        model: ``demo:NAME`` or a model path inside the launch roots.
        study: The study's name.
        trials: The study's trial budget.
        space: A shipped space's name or a YAML file inside the launch roots.
        data: Evaluation ``.npz`` inside the launch roots (a demo model brings its own).
        train_data: Optional training ``.npz`` inside the launch roots.
        actor: Who launches it (the dashboard's signed-in user), for the audit trail.
        resume: Go on with a study of that name that exists (more trials, and its front
            verified again); without it such a launch is refused.

    Raises:
        InputError: A field is empty, names a file that does not exist or lies outside
            the launch roots, or names a study that exists without ``resume`` (checked
            here so the form can say so at once; everything else is checked by ``tune``
            itself and shows in the launch's log).
    """
    model, study, space = model.strip(), study.strip(), space.strip()
    if not model:
        raise InputError("Give a model: a .keras file, a SavedModel folder or demo:NAME.")
    if not study:
        raise InputError("Give the study a name.")
    if trials < 1:
        raise InputError("The trial budget must be at least 1.")
    if not model.startswith("demo:"):
        model = allowed_path(settings, "model", model)
    data = allowed_path(settings, "data", data.strip()) if data and data.strip() else None
    train_data = (
        allowed_path(settings, "training data", train_data.strip())
        if train_data and train_data.strip()
        else None
    )
    space = _space_argument(settings, space)
    if not model.startswith("demo:") and not data:
        raise InputError("A model file needs an evaluation set (.npz); demo models bring one.")
    if not resume:
        existing = existing_study(settings, study)
        if existing is not None:
            raise InputError(f"{describe_existing(existing)} Give another name, or resume it.")
    folder = launches_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    command = tune_command(settings, model, study, trials, space, data, train_data)
    log_path, log = _new_log(folder, study)
    with log:
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
        "actor": actor,
        "command": command,
        "log": str(log_path),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    log_path.with_suffix(".json").write_text(json.dumps(record, indent=2))
    audit.record(settings, actor, "launch", study, f"{model}, space {space}, {trials} trials")
    _CHILDREN[proc.pid] = proc
    return record


def _new_log(folder: Path, study: str) -> tuple[Path, BinaryIO]:
    """A log file of a new launch, opened: ``STUDY-STAMP.log``, never one that exists.

    Two launches of a study in the same second (a double click, two dashboards) each get
    their own log and record (``STUDY-STAMP-2.log``, ...), so the second's refusal shows.
    """
    base = f"{_SAFE_NAME.sub('_', study)}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
    number = 1
    while True:
        path = folder / (f"{base}.log" if number == 1 else f"{base}-{number}.log")
        try:
            return path, open(path, "xb")  # exclusive: another launch cannot take it too
        except FileExistsError:
            number += 1


def _started(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


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
    # Newest first: by when each record was written (names sort by study, then second).
    loaded = []
    for path in folder.glob("*.json"):
        try:
            loaded.append((json.loads(path.read_text()), path))
        except (OSError, json.JSONDecodeError):
            continue
    # Newest first: by start time, then by when the record was written (a stop rewrites
    # it, so the time alone would not do), then by the log's name.
    loaded.sort(key=lambda rp: (rp[0].get("started_at", ""), _started(rp[1]), rp[1].name))
    for record, _path in reversed(loaded):
        state, code = _state(int(record["pid"]))
        record["state"], record["exit_code"] = state, code
        try:
            lines = Path(record["log"]).read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        record["log_tail"] = "\n".join(lines[-tail_lines:])
        errors = [ln for ln in lines if ln.startswith("infertune: error:")]
        record["error"] = errors[-1].removeprefix("infertune: error: ") if errors else None
        record["status"] = status(record)
        out.append(record)
    return out


def default_study_name(model: str, space: str) -> str:
    """A new study's name when none is given: ``MODEL-SPACE-STAMP``, never an existing one.

    The stamp (UTC, to the second) keeps an empty name from resuming an earlier launch.
    """
    stem = Path(model.strip().removeprefix("demo:")).stem or "study"
    kind = Path(space.strip()).stem or "space"
    return _SAFE_NAME.sub("_", f"{stem}-{kind}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}")


def existing_study(settings: Settings, study: str) -> dict[str, Any] | None:
    """The summary of the study named ``study`` in the platform database, if there is one."""
    from infertune.tuning import queries
    from infertune.tuning.study import storage_url

    url = settings.database_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None  # no database yet, so no study (and none is created by asking)
    storage = storage_url(settings, None)
    if study not in queries.study_names(storage):
        return None
    return queries.summary(queries.load(study, storage))


def describe_existing(summary: dict[str, Any]) -> str:
    """What launching onto an existing study would do, in one sentence."""
    done = summary["trials"]
    best = summary.get("best_speedup_p95")
    return (
        f"Study '{summary['study']}' exists ({done['COMPLETE']} complete trials"
        + (f", best speed-up {best:.1f}x" if best else "")
        + (", verified" if summary.get("verified") else "")
        + "): launching it again adds trials and verifies its front again, which can "
        "change its best speed-up."
    )


def status(record: dict[str, Any]) -> str:
    """A launch's state in words: running, stopping, stopped, finished or failed (exit N)."""
    if record.get("state") == "running":
        return "stopping" if record.get("stopped_at") else "running"
    if record.get("stopped_at"):
        return "stopped"
    code = record.get("exit_code")
    if code not in (None, 0) or record.get("error"):
        return "failed" + (f" (exit {code})" if code not in (None, 0) else "")
    return "finished"


def _is_tune(pid: int) -> bool:
    """Whether ``pid`` is still an ``infertune tune`` process (not a reused pid)."""
    if pid in _CHILDREN:  # started by this process: its pid cannot have been reused
        return _CHILDREN[pid].poll() is None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"infertune" in argv and b"tune" in argv


def stop_launch(settings: Settings, log: str, actor: str = "unknown") -> dict[str, Any]:
    """Stop a running launch (SIGTERM to its process group: ``tune`` ends its trial cleanly).

    Args:
        settings: Home of the launch records.
        log: The launch's log path (its record's ``log``), naming the launch.
        actor: Who stops it, for the audit trail.

    Raises:
        InputError: No such launch, or it is not running.
    """
    path = Path(log).with_suffix(".json")
    if path.parent.resolve() != launches_dir(settings).resolve() or not path.is_file():
        raise InputError(f"No launch with log {log}.")
    record: dict[str, Any] = json.loads(path.read_text())
    pid = int(record["pid"])
    if _state(pid)[0] != "running" or not _is_tune(pid):
        raise InputError(f"The launch of '{record['study']}' is not running.")
    try:
        os.killpg(pid, signal.SIGTERM)  # its own session: pid is the group's id
    except ProcessLookupError:
        raise InputError(f"The launch of '{record['study']}' is not running.") from None
    record["stopped_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    record["stopped_by"] = actor
    path.write_text(json.dumps(record, indent=2))
    audit.record(settings, actor, "stop", record["study"], f"launch pid {pid}")
    return record
