"""Worker processes: where TensorFlow and LiteRT run, isolated from the caller.

TensorFlow's thread settings are process-global and frozen once its runtime starts, TFLite
conversion leaks memory, and a model can crash or hang its process. So every piece of work
that runs a model happens in a child process started with a clean interpreter (never a fork),
talking to the caller over a line-delimited JSON protocol: see :mod:`.client` and
:mod:`.server`.
"""

from infertune.workers.client import WorkerProcess, WorkerRole

__all__ = ["WorkerProcess", "WorkerRole"]
