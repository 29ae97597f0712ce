"""The registry of runtime backends: the ``runtime`` knob's values and what each offers.

Adding a runtime is one module with a :class:`~infertune.runtimes.RuntimeBackend` subclass
plus one line in :data:`BACKENDS` (or a :func:`register` call from a plugin).
"""

from __future__ import annotations

from infertune.exceptions import ConfigurationError
from infertune.runtimes._base import RuntimeBackend
from infertune.runtimes.onnxruntime import ONNXRuntimeBackend
from infertune.runtimes.openvino import OpenVINOBackend
from infertune.runtimes.tf import TensorFlowBackend, XLABackend
from infertune.runtimes.tflite import LiteRTBackend

#: Backends by name, in the order the user sees them.
BACKENDS: dict[str, RuntimeBackend] = {}


def register(backend: RuntimeBackend) -> RuntimeBackend:
    """Add ``backend`` under its name (a second backend of the same name replaces it)."""
    BACKENDS[backend.name] = backend
    return backend


def get_backend(name: str) -> RuntimeBackend:
    """The backend of runtime ``name``.

    Raises:
        ConfigurationError: No such runtime is registered.
    """
    try:
        return BACKENDS[str(name)]
    except KeyError:
        known = ", ".join(f"'{n}'" for n in BACKENDS)
        raise ConfigurationError(f"Unknown runtime '{name}' (known: {known}).") from None


def backend_names() -> list[str]:
    """The registered runtimes' names."""
    return list(BACKENDS)


register(TensorFlowBackend())
register(XLABackend())
register(LiteRTBackend())
register(OpenVINOBackend())
register(ONNXRuntimeBackend())
