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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from infertune.exceptions import InputError, MeasurementError
from infertune.measure.contention import Contention, ContentionProbe
from infertune.measure.early_stopping import min_queries, percentile_upper_bound
from infertune.measure.hostlock import host_work_lock
from infertune.measure.serving import (
    BatchPolicy,
    ServerResult,
    ServerSettings,
    max_qps_at_slo,
    run_offline,
    run_server,
    take,
)
from infertune.measure.stats import histogram, summarize
from infertune.measure.window import DISTURBED_RETRIES, MeasurementWindow
from infertune.models.data import read_inputs
from infertune.runtimes import Runner, get_backend
from infertune.workers.protocol import (
    LatencyRequest,
    LoadRequest,
    LoadResult,
    PredictRequest,
    PredictResult,
    ServeRequest,
    Timing,
)
from infertune.workers.server import WorkerContext, one_line
from infertune.workers.tfsetup import worker_threads

#: One call's inputs: one array per model input, in the model's input order.
Batch = list[np.ndarray]
Predict = Callable[[Batch], np.ndarray]
R = TypeVar("R")

# The one loaded runner of this worker: a worker keeps a single model in memory, so the
# peak memory it reports belongs to that model alone.
_RUNNER: dict[tuple[str, str], Runner] = {}
# Timing batches prepared at load time (outside the host's timing lock).
_BATCHES: dict[tuple[str, tuple[str, ...], int], list[Batch]] = {}


def get_runner(artifact: str, runtime: str) -> Runner:
    """The runner for an artifact and runtime, loading it (and dropping the previous one)."""
    key = (artifact, runtime)
    if key not in _RUNNER:
        _RUNNER.clear()
        gc.collect()
        _RUNNER[key] = get_backend(runtime).load(artifact, worker_threads())
    return _RUNNER[key]


def get_batches(
    data_path: str, x_keys: list[str], batch_size: int, dtypes: list[Any]
) -> list[Batch]:
    """Timing batches for one data file and batch size (kept for the next timing)."""
    key = (data_path, tuple(x_keys), batch_size)
    if key not in _BATCHES:
        _BATCHES.clear()
        _BATCHES[key] = _batches(read_inputs(data_path, x_keys, dtypes), batch_size)
    return _BATCHES[key]


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
    predict: Predict, batches: list[Batch], window: MeasurementWindow
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


def _batches(xs: list[np.ndarray], batch_size: int, count: int = 8) -> list[Batch]:
    """A few distinct real batches from the data (cycled during timing).

    ``xs`` holds one array per model input; a batch takes the same samples of each.
    Samples wrap around when the data holds fewer than ``count * batch_size`` of them.
    """
    size = len(xs[0])
    if size == 0:
        raise InputError("The evaluation data is empty.")
    batch_bytes = max(1, sum(x[:1].nbytes for x in xs) * batch_size)
    count = max(1, min(count, _BATCH_POOL_BYTES // batch_bytes))
    rows = [np.arange(i * batch_size, (i + 1) * batch_size) % size for i in range(count)]
    return [[np.ascontiguousarray(x[idx]) for x in xs] for idx in rows]


def load_op(ctx: WorkerContext, request: LoadRequest) -> LoadResult:
    """Worker operation ``measure.load``: load a variant and its batches before timing.

    Runs before the caller takes the host's timing lock, so no timing waits on it; it holds
    the host's work lock (shared), so it never runs beside another process's timing.
    """
    with host_work_lock():
        started = time.perf_counter()
        runner = get_runner(request.artifact, request.runtime)
        get_batches(request.data_path, request.x_keys, request.batch_size, runner.input_dtypes)
        return LoadResult(load_s=round(time.perf_counter() - started, 3))


def pin_cores(cores_used: int | None) -> list[int] | None:
    """Pin this worker to a fixed set of cores when it uses fewer than it may run on.

    The scheduler then cannot move the timed threads between cores mid-run (cold caches, a
    core shared with whatever else runs). The last cores are taken: the first ones serve
    most interrupts. ``INFERTUNE_PIN_CORES=off`` disables it.

    Returns:
        The cores pinned to, or ``None`` (not pinned: all cores used, or disabled).
    """
    if not hasattr(os, "sched_setaffinity"):
        return None
    if not _ALLOWED_CORES:  # what this worker may run on, before any pinning
        _ALLOWED_CORES.extend(sorted(os.sched_getaffinity(0)))
    allowed = _ALLOWED_CORES
    disabled = os.environ.get("INFERTUNE_PIN_CORES", "auto").lower() in ("off", "0", "no")
    if disabled or not cores_used or cores_used >= len(allowed):
        os.sched_setaffinity(0, allowed)  # an earlier operation of this worker may have pinned
        return None
    chosen = allowed[-cores_used:]
    os.sched_setaffinity(0, chosen)
    return chosen


_ALLOWED_CORES: list[int] = []


@dataclass(frozen=True)
class Seen:
    """What the contention probe saw around a timed run, and how many tries it took."""

    contention: Contention
    attempts: int

    @property
    def record(self) -> dict[str, Any]:
        """The documented record (:meth:`Contention.to_json` with ``attempts``)."""
        return self.contention.to_json() | {"attempts": self.attempts}


def quiet_run(ctx: WorkerContext, run: Callable[[], R], retries: int) -> tuple[R, Seen | None]:
    """Run a timed ``run`` inside a contention probe; again while the machine was busy.

    A run during which other processes used the cores (or the hypervisor stole them) is
    repeated after a short, growing pause, at most ``retries`` times; the last run is kept.

    Returns:
        The last run's result, and what the probe saw then (``None`` where it cannot read).
    """
    attempts = 0
    while True:
        attempts += 1
        probe = ContentionProbe()
        probe.start()
        result = run()
        contention = probe.stop()
        if contention is None or not contention.disturbed or attempts > retries:
            return result, None if contention is None else Seen(contention, attempts)
        # Someone else used the cores: wait a little (growing), then time it again.
        ctx.progress(f"the machine was busy ({contention.reason}); timing again", attempts)
        time.sleep(0.5 * attempts)


def latency_op(ctx: WorkerContext, request: LatencyRequest) -> Timing:
    """Worker operation ``measure.latency``: time one variant at one batch size."""
    runner = get_runner(request.artifact, request.runtime)
    batches = get_batches(
        request.data_path, request.x_keys, request.batch_size, runner.input_dtypes
    )
    window = MeasurementWindow.model_validate(request.window)
    pinned = pin_cores(worker_threads())
    # Peak memory of serving: the loaded model and runtime plus the timed calls, not
    # whatever this worker did before (e.g. predicting the whole evaluation set).
    _reset_peak_rss()
    try:
        (latencies, wall_s), seen = quiet_run(
            ctx, lambda: time_calls(runner.predict, batches, window), window.disturbed_retries
        )
    except Exception as exc:
        raise MeasurementError(f"Running the variant failed: {one_line(exc)}") from exc
    summary = summarize(latencies, batch_size=request.batch_size, wall_s=wall_s, window=window)
    contention = None if seen is None else seen.record
    return Timing(
        **summary,
        peak_memory_mb=round(_peak_rss_mb(), 1),
        runtime_settings=runner.effective_settings() | {"pinned_cores": pinned},
        worker_pid=os.getpid(),
        contention=contention,
    )


def _pow2_at_most(n: int, cap: int) -> int:
    size = 1
    while size < n:
        size *= 2
    return min(size, cap)


def _padder(batch_size: int) -> Callable[[Batch], Batch]:
    """Pad a batch to the next power of two (at most ``batch_size``) by repeating a sample.

    A dynamic batcher hands out batches of any size; padding keeps the shapes a runtime
    sees to a few (each compiled or allocated once, at warm-up), as serving systems do.
    The padded rows' outputs are dropped.
    """

    def pad(batch: Batch) -> Batch:
        n = len(batch[0])
        size = _pow2_at_most(n, batch_size)
        if size == n:
            return batch
        return [np.concatenate([x, np.repeat(x[:1], size - n, axis=0)]) for x in batch]

    return pad


def _serving_timing(
    request: ServeRequest, latencies_ms: np.ndarray, valid: bool, reason: str | None
) -> dict[str, Any]:
    """Latency figures of a serving run, as :class:`Timing` fields."""
    ms = np.asarray(latencies_ms, dtype=np.float64)
    if not valid or ms.size == 0:
        names = [f"latency_p{p}_ms" for p in (50, 90, 95, 99)]
        names += [f"latency_{k}_ms" for k in ("mean", "std", "min", "max")]
        figures: dict[str, Any] = dict.fromkeys(names)
    else:
        figures = {
            f"latency_p{p}_ms": float(np.percentile(ms, p, method="inverted_cdf"))
            for p in (50, 90, 95, 99)
        }
        figures |= {
            "latency_mean_ms": float(ms.mean()),
            "latency_std_ms": float(ms.std()),
            "latency_min_ms": float(ms.min()),
            "latency_max_ms": float(ms.max()),
            "latency_histogram": histogram(ms),
        }
    return figures | {"valid": valid, "invalid_reason": reason, "batch_size": request.batch_size}


def serve_op(ctx: WorkerContext, request: ServeRequest) -> Timing:
    """Worker operation ``measure.serve``: the offline or server scenario.

    Loads ``instances`` copies of the artifact with ``threads`` threads each, warms every
    padded batch shape, then runs the scenario (:mod:`infertune.measure.serving`). With a
    p99 objective, the server scenario searches the highest rate that meets it, starting
    under the offline throughput of the same instances and batch size.
    """
    _RUNNER.clear()
    gc.collect()
    backend = get_backend(request.runtime)
    pinned = pin_cores(request.threads * request.instances if request.threads else None)
    runners = [backend.load(request.artifact, request.threads) for _ in range(request.instances)]
    inputs = read_inputs(request.data_path, request.x_keys, runners[0].input_dtypes)
    pad = _padder(request.batch_size)
    _reset_peak_rss()
    try:
        for runner in runners:  # warm every shape the batcher can produce
            size = 1
            while True:
                for _ in range(3):
                    runner.predict(pad(take(inputs, np.arange(size) % len(inputs[0]))))
                if size >= request.batch_size:
                    break
                size = _pow2_at_most(size * 2, request.batch_size)
        predicts = [runner.predict for runner in runners]
        seen: list[Seen] = []

        def probed(run: Callable[[], R]) -> R:
            # Each run inside the contention probe; a disturbed one is run again.
            result, contention = quiet_run(ctx, run, DISTURBED_RETRIES)
            if contention is not None:
                seen.append(contention)
            return result

        serving: dict[str, Any] = {
            "instances": request.instances,
            "threads_per_instance": request.threads,
            "max_batch_size": request.batch_size,
            "max_queue_delay_ms": request.max_queue_delay_ms,
        }
        extra: dict[str, Any] = {}
        if request.scenario == "offline":
            offline = probed(
                lambda: run_offline(
                    predicts, inputs, request.batch_size, request.min_duration_s, batch_of=pad
                )
            )
            serving |= offline.summary()
            figures = _serving_timing(
                request, offline.call_latencies_ms, offline.valid, offline.invalid_reason
            )
            timed_calls, timed_s = len(offline.call_latencies_ms), offline.duration_s
            throughput: float | None = offline.throughput_sps if offline.valid else None
        else:
            policy = BatchPolicy(request.batch_size, request.max_queue_delay_ms)

            def run_at(rate: float) -> ServerResult:
                settings = ServerSettings(rate, policy, request.min_duration_s, seed=request.seed)
                return probed(lambda: run_server(predicts, inputs, settings, batch_of=pad))

            if request.slo_p99_ms is not None:
                ceiling = probed(
                    lambda: run_offline(predicts, inputs, request.batch_size, 0.5, batch_of=pad)
                ).throughput_sps
                # Rates under the floor would take over 30 s for a p99's 662 queries.
                floor = min_queries(0.99) / 30.0
                search = max_qps_at_slo(
                    run_at, request.slo_p99_ms, ceiling_qps=max(ceiling, floor), floor_qps=floor
                )
                result = search.best
                curve = search.summary()["curve"]
                serving |= {"curve": curve, "offline_ceiling_sps": round(ceiling, 3)}
                extra = {"slo_p99_ms": request.slo_p99_ms, "max_qps_at_slo": search.max_qps_at_slo}
                if result is None:
                    lowest = min(search.runs, key=lambda r: r.target_qps)
                    reason = (
                        f"no rate met p99 <= {request.slo_p99_ms:g} ms: at the lowest tried, "
                        f"{lowest.target_qps:.1f} queries/s, p99 was "
                        f"{lowest.latency_p99_ms:.2f} ms"
                    )
                    result = lowest
                    valid = False
                else:
                    reason, valid = None, True
            else:
                assert request.target_qps is not None  # checked by the caller
                result = run_at(request.target_qps)
                valid, reason = result.valid, result.invalid_reason
            serving |= {k: v for k, v in result.summary().items() if k not in ("valid", "scenario")}
            serving["latency_p99_bound_ms"] = percentile_upper_bound(
                result.latencies_ms.tolist(), 0.99
            )
            figures = _serving_timing(request, result.latencies_ms, valid, reason)
            timed_calls, timed_s = result.queries, result.duration_s
            throughput = result.achieved_qps if valid else None
            extra |= {"target_qps": result.target_qps, "achieved_qps": result.achieved_qps}
    except Exception as exc:
        raise MeasurementError(f"Serving the variant failed: {one_line(exc)}") from exc
    # A run that stayed disturbed taints the whole result (a rate search's answer included).
    shown = next((s for s in seen if s.contention.disturbed), seen[-1] if seen else None)
    return Timing(
        **figures,
        timed_calls=timed_calls,
        timed_s=round(timed_s, 4),
        throughput_sps=throughput,
        peak_memory_mb=round(_peak_rss_mb(), 1),
        runtime_settings=runners[0].effective_settings()
        | {"instances": request.instances, "pinned_cores": pinned},
        worker_pid=os.getpid(),
        contention=None if shown is None else shown.record,
        scenario=request.scenario,
        serving=serving,
        **extra,
    )


def predict_op(ctx: WorkerContext, request: PredictRequest) -> PredictResult:
    """Worker operation ``model.predict``: predict the whole data set, save it as ``.npy``."""
    runner = get_runner(request.artifact, request.runtime)
    xs = read_inputs(request.data_path, request.x_keys, runner.input_dtypes)
    size = request.batch_size
    try:
        predictions = np.concatenate(
            [
                np.asarray(runner.predict([x[i : i + size] for x in xs]))
                for i in range(0, len(xs[0]), size)
            ]
        )
    except Exception as exc:
        raise MeasurementError(f"Predicting with the variant failed: {one_line(exc)}") from exc
    tmp = Path(request.out_path).with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, predictions)
    os.replace(tmp, request.out_path)
    return PredictResult(shape=list(predictions.shape))
