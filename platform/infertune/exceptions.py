"""The project's exceptions: one root, caught at the CLI and shown as one line."""

from __future__ import annotations

#: A database's words (SQLite's) for the conditions a user can fix, and what to do.
_STORE_HINTS = {
    "readonly database": "the database file or its folder is read-only or not writable by this "
    "user: make it writable, or point the store at a writable place",
    "database or disk is full": "the disk is full (ENOSPC): free space on it, then run the "
    "same command again",
}


def store_hint(text: str) -> str | None:
    """What to do about a database error whose message is ``text``; ``None``: nothing known.

    The platform database and the MLflow store (SQLite by default, inside the home folder)
    fail in the same words when the home is read-only or its disk full.
    """
    return next((hint for words, hint in _STORE_HINTS.items() if words in text), None)


class InfertuneError(Exception):
    """Root of every error that infertune reports to a user.

    The message is a complete sentence that says what was wrong and how to fix it; the CLI
    prints it as one line and exits with status 1.
    """


class InputError(InfertuneError):
    """A model, data file or option given by the user cannot be used."""


class ConfigurationError(InputError):
    """A combination of knobs that cannot be built or run (e.g. runtime ``tf`` with ``int8``)."""


class PruningError(InfertuneError):
    """Structured pruning is not possible for this model's topology or layers."""


class BuildError(InfertuneError):
    """Building a variant (pruning, fine-tuning, conversion) failed."""


class MeasurementError(InfertuneError):
    """A measurement could not be completed."""


class StorageError(InfertuneError):
    """The platform database could not be read or written."""


class SchemaError(StorageError):
    """The platform database's schema is not the one this version of infertune needs."""


class RegistryError(InfertuneError):
    """A promotion, rollback or registry lookup could not be done."""


class WorkerError(InfertuneError):
    """A worker process failed: it crashed, hung, or raised an unexpected error."""


class WorkerTimeout(WorkerError):
    """A worker process did not answer within its time limit and was killed."""


class WorkerCrashed(WorkerError):
    """A worker process exited while it was handling a request."""


#: Errors that may cross the worker-process boundary, by class name. A worker that raises one
#: of these has it re-raised in the caller as the same class, so the CLI shows its message.
TRANSPORTABLE_ERRORS: dict[str, type[InfertuneError]] = {
    cls.__name__: cls
    for cls in (
        InfertuneError,
        InputError,
        ConfigurationError,
        PruningError,
        BuildError,
        MeasurementError,
    )
}


class StudyBusyError(InfertuneError):
    """Another live process owns the study (a second ``tune`` on it is refused)."""


class TrackingError(InfertuneError):
    """The MLflow tracking store cannot be reached or used."""


class StudyFailedError(InfertuneError):
    """Every trial of a study failed: nothing was measured."""


class DiskFullError(InfertuneError):
    """A disk infertune writes to is full (ENOSPC): the study stopped, to resume later."""
