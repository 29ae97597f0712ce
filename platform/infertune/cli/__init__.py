"""The ``infertune`` command line, one module per command group.

``bench`` (bench, info), ``study`` (tune, studies, show, front, verify), ``registry``
(promote, rollback, registry), ``schedule`` (the ``schedule`` commands and ``scheduler``),
``workers`` (worker, reconcile), ``db`` and ``dashboard``. Each command imports what it needs
when it runs, so ``infertune --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from infertune import __version__
from infertune.cli import bench, dashboard, db, registry, schedule, study, workers
from infertune.cli._common import State
from infertune.config import load_settings
from infertune.exceptions import InfertuneError

__all__ = ["app", "main"]

app = typer.Typer(
    name="infertune",
    help="Find the fastest inference configuration of a TensorFlow/Keras model for the "
    "accuracy you can afford.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Markdown: docstring paragraphs re-flow instead of keeping source line breaks.
    rich_markup_mode="markdown",
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"infertune {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            envvar="INFERTUNE_HOME",
            show_envvar=True,
            help="Folder for demo models, built variants and caches (default: ./.infertune).",
        ),
    ] = None,
    db_url: Annotated[
        str | None,
        typer.Option(
            "--db-url",
            envvar="INFERTUNE_DB_URL",
            show_envvar=True,
            help="Platform database URL (default: SQLite inside home).",
        ),
    ] = None,
    mlflow_uri: Annotated[
        str | None,
        typer.Option(
            "--mlflow-uri",
            envvar="MLFLOW_TRACKING_URI",
            show_envvar=True,
            help="MLflow tracking URI (default: SQLite inside home).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Global options apply to every command; flags win over environment variables."""
    State.settings = load_settings(home=home, db_url=db_url, mlflow_tracking_uri=mlflow_uri)
    State.db = None


# Registration order is the order of `infertune --help`.
app.command()(bench.bench)
app.command()(study.tune)
app.command()(study.studies)
app.command()(study.show)
app.command()(study.front)
app.command("verify")(study.verify_command)
app.add_typer(db.db_app, name="db")
app.command()(registry.promote)
app.command()(registry.rollback)
app.command()(registry.registry)
app.add_typer(schedule.schedule_app, name="schedule")
app.command()(schedule.scheduler)
app.command()(workers.worker)
app.command()(workers.reconcile)
app.command()(dashboard.dashboard)
app.command()(bench.info)


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM ends the command like Ctrl-C does, so cleanup (workers, runs) happens.
    raise KeyboardInterrupt


def _error_log(exc: BaseException) -> Path | None:
    """Write the full traceback of an unexpected error to a file; its path.

    ``HOME/logs/`` (the command's home folder), else the system's temporary folder; ``None``
    if neither can be written.
    """
    import tempfile
    import time
    import traceback

    from infertune.cli._common import current_settings

    name = f"error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    text = "".join(traceback.format_exception(exc))
    folders: list[Path] = []
    with contextlib.suppress(Exception):
        folders.append(current_settings().home / "logs")
    folders.append(Path(tempfile.gettempdir()))
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(f"infertune {__version__}: {' '.join(sys.argv)}\n{text}")
            return path
        except OSError:
            continue
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


#: What to do about the operating system errors a user can fix, by errno.
_OS_HINTS = {
    errno.ENOSPC: "the disk is full (ENOSPC): free space on it, then run the same command "
    "again (a study resumes)",
    errno.EDQUOT: "the disk quota is exceeded (EDQUOT): free space, then run the same command "
    "again (a study resumes)",
    errno.EROFS: "the file system is read-only (EROFS): make it writable, or point --home "
    "(and --db-url, --mlflow-uri) at a writable place",
    errno.EACCES: "permission denied: run as a user who may write there, or point --home at "
    "a folder of yours",
}


def _os_error_line(exc: OSError) -> str:
    """An operating system error in the system's words, with what to do where that is known."""
    text = _one_line(str(exc)) or type(exc).__name__
    hint = _OS_HINTS.get(exc.errno) if exc.errno is not None else None
    return f"{text}; {hint}." if hint else text


def main() -> None:
    """Console entry point: every error becomes one line on stderr and exit status 1.

    infertune's own errors say what was wrong and how to fix it; an operating system error
    (disk full, permissions) is shown in the system's words. Anything else is unexpected (a
    bug, or a library failing in an unforeseen way): one line with its type and message,
    and the full traceback in a log file (``HOME/logs/error-*.log``) to report.
    """
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except InfertuneError as exc:
        print(f"infertune: error: {_one_line(str(exc))}", file=sys.stderr)
        sys.exit(1)
    except OSError as exc:
        # Disk full, permissions, a vanished file: the system's words, on one line.
        print(f"infertune: error: {_os_error_line(exc)}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        log = _error_log(exc)
        where = f"the full traceback is in {log}" if log else "no log could be written"
        print(
            f"infertune: error: unexpected {type(exc).__name__}: "
            f"{_one_line(str(exc))[:500] or 'no message'} ({where}; please report it)",
            file=sys.stderr,
        )
        sys.exit(1)
