"""Import TensorFlow inside a worker with the worker's thread setting applied first."""

from __future__ import annotations

import os
from types import ModuleType

from infertune.workers.startup import timed_import

_configured = False


def worker_threads() -> int | None:
    """The thread setting this worker was started with (``None``: runtime default)."""
    value = os.environ.get("INFERTUNE_WORKER_THREADS")
    return int(value) if value else None


def import_tensorflow() -> ModuleType:
    """Return the ``tensorflow`` module, its thread pools sized for this worker.

    TensorFlow freezes its thread settings when its runtime starts, so they are set right
    after import, before any op runs. ``threads=N`` means N intra-op threads and one
    inter-op thread: a single inference request spread over N cores.
    """
    global _configured
    tf = timed_import("tensorflow")

    if not _configured:
        threads = worker_threads()
        if threads is not None:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        _configured = True
    module: ModuleType = tf
    return module
