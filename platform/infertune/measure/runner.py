"""Load a variant in a measurement worker, time it, and predict with it.

Runs inside a worker process (see :mod:`infertune.workers`). LiteRT variants are run with
``ai_edge_litert`` alone: TensorFlow is never imported for them.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from infertune.exceptions import InputError, MeasurementError
from infertune.measure.stats import summarize
from infertune.measure.window import MeasurementWindow
from infertune.workers.server import WorkerContext
from infertune.workers.tfsetup import import_tensorflow, worker_threads

Predict = Callable[[np.ndarray], np.ndarray]


def all_cores() -> int:
    """Cores this process may run on (affinity- and cgroup-aware where the OS says)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class LiteRTRunner:
    """A LiteRT interpreter (XNNPACK on, the default delegate) for one batch size at a time."""

    def __init__(self, path: str, threads: int | None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.threads = threads if threads is not None else all_cores()
        self._interpreter = Interpreter(model_path=path, num_threads=self.threads)
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise InputError(
                f"{path} has {len(inputs)} inputs and {len(outputs)} outputs; infertune "
                "measures single-input, single-output models."
            )
        self._input = inputs[0]
        self._output_index = outputs[0]["index"]
        self.input_dtype = np.dtype(self._input["dtype"])
        self._shape: tuple[int, ...] | None = None

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run one call: copy in, invoke, copy out."""
        if batch.shape != self._shape:
            self._interpreter.resize_tensor_input(self._input["index"], list(batch.shape))
            self._interpreter.allocate_tensors()
            self._shape = batch.shape
        self._interpreter.set_tensor(self._input["index"], batch)
        self._interpreter.invoke()
        out: np.ndarray = self._interpreter.get_tensor(self._output_index)
        return out

    def effective_settings(self) -> dict[str, Any]:
        """What the runtime really uses."""
        return {"num_threads": self.threads, "delegate": "xnnpack (default)"}


class TensorFlowRunner:
    """A Keras model or SavedModel behind one ``tf.function`` (optionally XLA-compiled)."""

    def __init__(self, path: str, xla: bool) -> None:
        tf = import_tensorflow()
        self._tf = tf
        self.xla = xla
        if Path(path).is_dir():
            loaded = tf.saved_model.load(path)
            signature = loaded.signatures["serving_default"]
            ((name, spec),) = signature.structured_input_signature[1].items()

            def call(x: Any) -> Any:
                (out,) = signature(**{name: x}).values()
                return out

            self._keep_alive = loaded
            input_spec = tf.TensorSpec([None, *spec.shape[1:]], spec.dtype)
        else:
            import keras

            model = keras.saving.load_model(path, safe_mode=True, compile=False)
            self._keep_alive = model

            def call(x: Any) -> Any:
                return model(x, training=False)

            input_spec = tf.TensorSpec([None, *model.inputs[0].shape[1:]], model.inputs[0].dtype)
        self._fn = tf.function(call, input_signature=[input_spec], jit_compile=xla)
        self.input_dtype = np.dtype(input_spec.dtype.as_numpy_dtype)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Run one call: numpy in, numpy out."""
        out: np.ndarray = self._fn(batch).numpy()
        return out

    def effective_settings(self) -> dict[str, Any]:
        """What the runtime really uses."""
        threading = self._tf.config.threading
        return {
            "intra_op_threads": threading.get_intra_op_parallelism_threads() or all_cores(),
            "inter_op_threads": threading.get_inter_op_parallelism_threads() or "default",
            "xla": self.xla,
        }


_RUNNERS: dict[tuple[str, str], LiteRTRunner | TensorFlowRunner] = {}


def get_runner(artifact: str, runtime: str) -> LiteRTRunner | TensorFlowRunner:
    """Load (once per worker) the runner for an artifact and runtime."""
    key = (artifact, runtime)
    if key not in _RUNNERS:
        if runtime == "tflite":
            _RUNNERS[key] = LiteRTRunner(artifact, worker_threads())
        elif runtime in ("tf", "tf_xla"):
            _RUNNERS[key] = TensorFlowRunner(artifact, xla=runtime == "tf_xla")
        else:
            raise InputError(f"Unknown runtime '{runtime}'.")
    return _RUNNERS[key]


def _load_x(data_path: str, x_key: str, dtype: Any) -> np.ndarray:
    with np.load(data_path) as data:
        x: np.ndarray = np.ascontiguousarray(data[x_key], dtype=dtype)
    return x


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_calls(
    predict: Predict, batches: list[np.ndarray], window: MeasurementWindow
) -> tuple[list[int], float]:
    """Warm up, then time single calls until the window's minimums (or its maximum) are met.

    Returns the per-call latencies in nanoseconds and the wall-clock seconds of the timed loop.
    """
    clock = time.perf_counter_ns
    n = len(batches)
    start = clock()
    calls = 0
    warmup_ns = window.warmup_s * 1e9
    while calls < window.warmup_calls or clock() - start < warmup_ns:
        predict(batches[calls % n])
        calls += 1
    min_ns, max_ns = window.min_duration_s * 1e9, window.max_duration_s * 1e9
    latencies: list[int] = []
    loop_start = clock()
    elapsed = 0
    while (len(latencies) < window.min_calls or elapsed < min_ns) and elapsed < max_ns:
        batch = batches[len(latencies) % n]
        t0 = clock()
        predict(batch)
        t1 = clock()
        latencies.append(t1 - t0)
        elapsed = t1 - loop_start
    return latencies, elapsed / 1e9


def _batches(x: np.ndarray, batch_size: int, count: int = 8) -> list[np.ndarray]:
    """A few distinct real batches from the data (cycled during timing)."""
    if len(x) == 0:
        raise InputError("The evaluation data is empty.")
    reps = -(-batch_size * count // len(x))
    pool = np.concatenate([x] * reps) if reps > 1 else x
    return [
        np.ascontiguousarray(pool[i * batch_size : (i + 1) * batch_size])
        for i in range(min(count, len(pool) // batch_size))
    ]


def load_op(ctx: WorkerContext, artifact: str, runtime: str) -> dict[str, Any]:
    """Worker operation ``measure.load``: load a variant before the timing lock is taken."""
    started = time.perf_counter()
    get_runner(artifact, runtime)
    return {"load_s": round(time.perf_counter() - started, 3)}


def latency_op(
    ctx: WorkerContext,
    artifact: str,
    runtime: str,
    batch_size: int,
    data_path: str,
    x_key: str,
    window: dict[str, Any],
) -> dict[str, Any]:
    """Worker operation ``measure.latency``: time one variant at one batch size."""
    runner = get_runner(artifact, runtime)
    batches = _batches(_load_x(data_path, x_key, runner.input_dtype), batch_size)
    try:
        latencies, wall_s = time_calls(runner.predict, batches, MeasurementWindow(**window))
    except Exception as exc:
        raise MeasurementError(f"Running the variant failed: {type(exc).__name__}: {exc}") from exc
    result = summarize(
        latencies, batch_size=batch_size, wall_s=wall_s, window=MeasurementWindow(**window)
    )
    result.update(
        peak_memory_mb=round(_peak_rss_mb(), 1),
        runtime_settings=runner.effective_settings(),
        worker_pid=os.getpid(),
    )
    return result


def predict_op(
    ctx: WorkerContext,
    artifact: str,
    runtime: str,
    data_path: str,
    x_key: str,
    out_path: str,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Worker operation ``model.predict``: predict the whole data set, save it as ``.npy``."""
    runner = get_runner(artifact, runtime)
    x = _load_x(data_path, x_key, runner.input_dtype)
    outputs = []
    for start in range(0, len(x), batch_size):
        outputs.append(np.asarray(runner.predict(x[start : start + batch_size])))
    predictions = np.concatenate(outputs)
    tmp = Path(out_path).with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, predictions)
    os.replace(tmp, out_path)
    return {"shape": list(predictions.shape)}
