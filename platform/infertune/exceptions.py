"""The project's exceptions: one root, caught at the CLI and shown as one line."""

from __future__ import annotations


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
