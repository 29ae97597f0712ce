"""Load a variant in a measurement worker, time it, and predict with it.

Runs inside a worker process (see :mod:`infertune.workers`). LiteRT variants are run with
``ai_edge_litert`` alone: TensorFlow is never imported for them.
"""

from __future__ import annotations

import gc
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from infertune.exceptions import InputError, MeasurementError
from infertune.measure.fingerprint import usable_cores
from infertune.measure.stats import summarize
from infertune.measure.window import MeasurementWindow
from infertune.workers.server import WorkerContext, one_line
from infertune.workers.startup import timed_import
from infertune.workers.tfsetup import import_tensorflow, worker_threads

Predict = Callable[[np.ndarray], np.ndarray]


class LiteRTRunner:
    """A LiteRT interpreter (XNNPACK on, the default delegate) for one batch size at a time."""

    def __init__(self, path: str, threads: int | None) -> None:
        interpreter_cls = timed_import("ai_edge_litert.interpreter").Interpreter

        self.threads = threads if threads is not None else usable_cores()
        self._interpreter = interpreter_cls(model_path=path, num_threads=self.threads)
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
            "intra_op_threads": threading.get_intra_op_parallelism_threads() or usable_cores(),
            "inter_op_threads": threading.get_inter_op_parallelism_threads() or "default",
            "xla": self.xla,
        }


# The one loaded runner of this worker: a worker keeps a single model in memory, so the
# peak memory it reports belongs to that model alone.
_RUNNER: dict[tuple[str, str], LiteRTRunner | TensorFlowRunner] = {}
# Timing batches prepared at load time (outside the host's timing lock).
_BATCHES: dict[tuple[str, str, int], list[np.ndarray]] = {}


def get_runner(artifact: str, runtime: str) -> LiteRTRunner | TensorFlowRunner:
    """The runner for an artifact and runtime, loading it (and dropping the previous one)."""
    key = (artifact, runtime)
    if key not in _RUNNER:
        _RUNNER.clear()
        gc.collect()
        if runtime == "tflite":
            _RUNNER[key] = LiteRTRunner(artifact, worker_threads())
        elif runtime in ("tf", "tf_xla"):
            _RUNNER[key] = TensorFlowRunner(artifact, xla=runtime == "tf_xla")
        else:
            raise InputError(f"Unknown runtime '{runtime}'.")
    return _RUNNER[key]


def get_batches(data_path: str, x_key: str, batch_size: int, dtype: Any) -> list[np.ndarray]:
    """Timing batches for one data file and batch size (kept for the next timing)."""
    key = (data_path, x_key, batch_size)
    if key not in _BATCHES:
        _BATCHES.clear()
        _BATCHES[key] = _batches(_load_x(data_path, x_key, dtype), batch_size)
    return _BATCHES[key]


def _load_x(data_path: str, x_key: str, dtype: Any) -> np.ndarray:
    with np.load(data_path) as data:
        x: np.ndarray = np.ascontiguousarray(data[x_key], dtype=dtype)
    return x


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    """Peak resident memory since the last reset (else since the process started)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
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
    min_ns, max_ns = window.min_duration_s * 1e9, window.max_duration_s * 1e9
    start = clock()
    calls = 0
    warmup_ns = window.warmup_s * 1e9
    # Warm-up has the same ceiling as the timed loop: a model too slow to warm up within
    # max_duration_s yields an invalid result, not a killed worker.
    while (calls < window.warmup_calls or clock() - start < warmup_ns) and (
        clock() - start < max_ns
    ):
        predict(batches[calls % n])
        calls += 1
    latencies: list[int] = []
    # As timeit does: no garbage collection pauses inside timed calls.
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        loop_start = clock()
        elapsed = 0
        while (len(latencies) < window.min_calls or elapsed < min_ns) and elapsed < max_ns:
            batch = batches[len(latencies) % n]
            t0 = clock()
            predict(batch)
            t1 = clock()
            latencies.append(t1 - t0)
            elapsed = t1 - loop_start
    finally:
        if gc_was_enabled:
            gc.enable()
    return latencies, elapsed / 1e9


#: Memory for the distinct timing batches; at least one batch is always made.
_BATCH_POOL_BYTES = 64 * 2**20


def _batches(x: np.ndarray, batch_size: int, count: int = 8) -> list[np.ndarray]:
    """A few distinct real batches from the data (cycled during timing).

    Samples wrap around when the data holds fewer than ``count * batch_size`` of them.
    """
    if len(x) == 0:
        raise InputError("The evaluation data is empty.")
    batch_bytes = max(1, x[:1].nbytes * batch_size)
    count = max(1, min(count, _BATCH_POOL_BYTES // batch_bytes))
    return [
        np.ascontiguousarray(x[np.arange(i * batch_size, (i + 1) * batch_size) % len(x)])
        for i in range(count)
    ]


def load_op(
    ctx: WorkerContext, artifact: str, runtime: str, data_path: str, x_key: str, batch_size: int
) -> dict[str, Any]:
    """Worker operation ``measure.load``: load a variant and its batches before timing.

    Runs before the caller takes the host's timing lock, so no timing waits on it.
    """
    started = time.perf_counter()
    runner = get_runner(artifact, runtime)
    get_batches(data_path, x_key, batch_size, runner.input_dtype)
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
    batches = get_batches(data_path, x_key, batch_size, runner.input_dtype)
    measurement_window = MeasurementWindow(**window)
    # Peak memory of serving: the loaded model and runtime plus the timed calls, not
    # whatever this worker did before (e.g. predicting the whole evaluation set).
    _reset_peak_rss()
    try:
        latencies, wall_s = time_calls(runner.predict, batches, measurement_window)
    except Exception as exc:
        raise MeasurementError(f"Running the variant failed: {one_line(exc)}") from exc
    result = summarize(latencies, batch_size=batch_size, wall_s=wall_s, window=measurement_window)
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
    try:
        predictions = np.concatenate(
            [
                np.asarray(runner.predict(x[i : i + batch_size]))
                for i in range(0, len(x), batch_size)
            ]
        )
    except Exception as exc:
        raise MeasurementError(f"Predicting with the variant failed: {one_line(exc)}") from exc
    tmp = Path(out_path).with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, predictions)
    os.replace(tmp, out_path)
    return {"shape": list(predictions.shape)}
