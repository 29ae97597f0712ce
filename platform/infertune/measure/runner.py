"""Load a variant in a measurement worker, time it, and predict with it.

Runs inside a worker process (see :mod:`infertune.workers`). Loading goes through the
runtime's backend (:mod:`infertune.runtimes`), so each worker imports only its runtime: a
LiteRT worker never imports TensorFlow.
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
from infertune.measure.stats import summarize
from infertune.measure.window import MeasurementWindow
from infertune.runtimes import Runner, get_backend
from infertune.workers.protocol import (
    LatencyRequest,
    LoadRequest,
    LoadResult,
    PredictRequest,
    PredictResult,
    Timing,
)
from infertune.workers.server import WorkerContext, one_line
from infertune.workers.tfsetup import worker_threads

Predict = Callable[[np.ndarray], np.ndarray]

# The one loaded runner of this worker: a worker keeps a single model in memory, so the
# peak memory it reports belongs to that model alone.
_RUNNER: dict[tuple[str, str], Runner] = {}
# Timing batches prepared at load time (outside the host's timing lock).
_BATCHES: dict[tuple[str, str, int], list[np.ndarray]] = {}


def get_runner(artifact: str, runtime: str) -> Runner:
    """The runner for an artifact and runtime, loading it (and dropping the previous one)."""
    key = (artifact, runtime)
    if key not in _RUNNER:
        _RUNNER.clear()
        gc.collect()
        _RUNNER[key] = get_backend(runtime).load(artifact, worker_threads())
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


def load_op(ctx: WorkerContext, request: LoadRequest) -> LoadResult:
    """Worker operation ``measure.load``: load a variant and its batches before timing.

    Runs before the caller takes the host's timing lock, so no timing waits on it.
    """
    started = time.perf_counter()
    runner = get_runner(request.artifact, request.runtime)
    get_batches(request.data_path, request.x_key, request.batch_size, runner.input_dtype)
    return LoadResult(load_s=round(time.perf_counter() - started, 3))


def latency_op(ctx: WorkerContext, request: LatencyRequest) -> Timing:
    """Worker operation ``measure.latency``: time one variant at one batch size."""
    runner = get_runner(request.artifact, request.runtime)
    batches = get_batches(request.data_path, request.x_key, request.batch_size, runner.input_dtype)
    window = MeasurementWindow.model_validate(request.window)
    # Peak memory of serving: the loaded model and runtime plus the timed calls, not
    # whatever this worker did before (e.g. predicting the whole evaluation set).
    _reset_peak_rss()
    try:
        latencies, wall_s = time_calls(runner.predict, batches, window)
    except Exception as exc:
        raise MeasurementError(f"Running the variant failed: {one_line(exc)}") from exc
    summary = summarize(latencies, batch_size=request.batch_size, wall_s=wall_s, window=window)
    return Timing(
        **summary,
        peak_memory_mb=round(_peak_rss_mb(), 1),
        runtime_settings=runner.effective_settings(),
        worker_pid=os.getpid(),
    )


def predict_op(ctx: WorkerContext, request: PredictRequest) -> PredictResult:
    """Worker operation ``model.predict``: predict the whole data set, save it as ``.npy``."""
    runner = get_runner(request.artifact, request.runtime)
    x = _load_x(request.data_path, request.x_key, runner.input_dtype)
    size = request.batch_size
    try:
        predictions = np.concatenate(
            [np.asarray(runner.predict(x[i : i + size])) for i in range(0, len(x), size)]
        )
    except Exception as exc:
        raise MeasurementError(f"Predicting with the variant failed: {one_line(exc)}") from exc
    tmp = Path(request.out_path).with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, predictions)
    os.replace(tmp, request.out_path)
    return PredictResult(shape=list(predictions.shape))
