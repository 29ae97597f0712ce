"""What every command group shares: settings, the platform database, options, exit codes.

The global options (``--home``, ``--db-url``, ``--mlflow-uri``) set the settings once per
command; the platform database is opened and schema-checked at most once per command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from infertune.config import Settings, load_settings

__all__ = [
    "EXIT_INVALID_MEASUREMENT",
    "FLAG_NAMES",
    "AliasOption",
    "DataOption",
    "JsonOption",
    "ModelArgument",
    "State",
    "StorageOption",
    "StudyArgument",
    "TrainDataOption",
    "XKeyOption",
    "YKeyOption",
    "check_tracking",
    "current_settings",
    "platform_db",
    "settings_storage",
]

#: Knob and window fields as the user types them, for error messages.
FLAG_NAMES = {
    "runtime": "--runtime",
    "precision": "--precision",
    "prune_ratio": "--prune-ratio",
    "batch_size": "--batch-size",
    "threads": "--threads",
    "warmup_s": "--warmup",
    "min_duration_s": "--min-duration",
    "min_calls": "--min-calls",
    "max_duration_s": "--max-duration",
}

#: Exit status of ``bench`` when the measurement missed its minimums (figures withheld).
EXIT_INVALID_MEASUREMENT = 3


class State:
    """The current command's settings and platform database (reset by the global options)."""

    settings: Settings | None = None
    db: Any = None


def current_settings() -> Settings:
    """The settings of this command: global options, then environment, then defaults."""
    if State.settings is None:
        State.settings = load_settings()
    return State.settings


def platform_db() -> Any:
    """The platform database, its schema checked (a fresh one is created), once per command."""
    from infertune.storage.db import Database

    if State.db is None:
        db = Database(current_settings().database_url)
        db.ensure_schema()
        State.db = db
    return State.db


def check_tracking() -> None:
    """Refuse, within seconds, an MLflow server that cannot be reached (before any work)."""
    from infertune.tracking.tracker import check_server

    uri = current_settings().tracking_uri
    if uri.startswith(("http://", "https://")):
        check_server(uri)


def settings_storage(storage: str | None) -> str:
    """The Optuna storage URL of a command (``--storage`` or the platform database).

    The platform database is schema-checked first, like every command that reads studies;
    a ``--storage`` URL is checked (one line if unusable) and Optuna's tables created in it
    once, one process at a time.
    """
    from infertune.storage.db import normalize_url, prepare_optuna_storage

    platform_db()
    # tuning.study.storage_url's rule, without importing the search side (engine, runtimes):
    # read commands (studies, show, front) stay fast.
    url = normalize_url(storage or current_settings().database_url)
    if storage is not None:
        prepare_optuna_storage(url)
    return url


# Inputs shared by the commands that take a model.
ModelArgument = Annotated[
    str,
    typer.Argument(
        help="A .keras file, a SavedModel folder, or a built-in demo: demo:digits-cnn, "
        "demo:digits-midcnn.",
        metavar="MODEL",
        show_default=False,
    ),
]
DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="Evaluation set (.npz with arrays x and y). Demo models bring their own.",
        show_default=False,
    ),
]
TrainDataOption = Annotated[
    Path | None,
    typer.Option(
        "--train-data",
        help="Training set (.npz): fine-tuning after pruning and int8 calibration. Without "
        "it, pruned models are not fine-tuned and calibration uses evaluation samples.",
        show_default=False,
    ),
]
XKeyOption = Annotated[str, typer.Option("--x-key", help="Name of the input array.")]
YKeyOption = Annotated[str, typer.Option("--y-key", help="Name of the target array.")]

# Inputs shared by the commands that read a study.
StudyArgument = Annotated[str, typer.Argument(help="Study name.", show_default=False)]
StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="Optuna storage URL (default: the platform database, --db-url).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
AliasOption = Annotated[str, typer.Option("--alias", help="Registry alias to move.")]
