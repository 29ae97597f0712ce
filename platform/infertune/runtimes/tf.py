"""TensorFlow runtimes: the Keras model behind a ``tf.function``, optionally XLA-compiled.

They run the (pruned) Keras model as it is: nothing is built, fp32 only.
"""

from __future__ import annotations

from typing import ClassVar

from infertune.runtimes._base import Precision, Runner, RuntimeBackend


class TensorFlowBackend(RuntimeBackend):
    """``tf``: TensorFlow, the Keras model wrapped in a ``tf.function`` (graph mode)."""

    name: ClassVar[str] = "tf"
    title: ClassVar[str] = "TensorFlow"
    precisions: ClassVar[tuple[Precision, ...]] = (Precision.FP32,)
    family: ClassVar[str] = "keras"
    artifact_file: ClassVar[str | None] = None
    worker_group: ClassVar[str] = "tensorflow"
    loader_module: ClassVar[str] = "infertune.runtimes.tf_loader"
    runtime_modules: ClassVar[tuple[str, ...]] = ("tensorflow", "keras")
    threads_setting: ClassVar[str] = "intra_op_threads"
    libraries: ClassVar[tuple[str, ...]] = ("tensorflow-cpu", "tensorflow", "keras")

    def load(self, artifact: str, threads: int | None) -> Runner:
        """Load the Keras model or SavedModel behind a ``tf.function``.

        Called in a TensorFlow measurement worker (see :meth:`RuntimeBackend.load`). The
        worker's thread setting is applied as TensorFlow is imported, before any op runs.
        """
        from infertune.workers.tfsetup import import_tensorflow

        import_tensorflow()  # timed as start-up; sizes the thread pools first
        runner: Runner = self.loader().load(artifact, self.name, threads)
        return runner


class XLABackend(TensorFlowBackend):
    """``tf_xla``: TensorFlow with XLA compilation (``jit_compile=True``)."""

    name: ClassVar[str] = "tf_xla"
    title: ClassVar[str] = "TensorFlow XLA"
