"""Serving scenarios: a load generator, a dynamic batcher and model instances, in one process.

MLPerf Inference's scenarios, with its rules:

- **server**: requests arrive open-loop, as a Poisson process at a target rate (the
  schedule is drawn before the run). They queue; a dynamic batcher, as Triton's, gives each
  free model instance the queued requests, up to ``max_batch_size``, waiting at most
  ``max_queue_delay_ms`` after the oldest one for more to arrive. A request's latency runs
  from its *scheduled* arrival to its response, so time spent queued counts, and a late
  response never delays the next arrival (no coordinated omission).
- **offline**: every sample is there at the start; the instances take batches of
  ``max_batch_size`` until all are done: samples per second.

A run is valid only if it lasted its minimum duration and query count, the achieved rate is
within 5% of the target (server), and there were enough queries for the tail percentile
(:mod:`infertune.measure.early_stopping`); otherwise it is invalid and says why.
:func:`max_qps_at_slo` searches the rate for the highest one whose p99 meets a latency
objective.

The model instances are plain callables (``predict(batch)``), one per instance, called from
threads of their own: the runtimes release the GIL while they compute. Nothing here imports
a runtime.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from infertune.measure.early_stopping import meets_latency_target, min_queries

__all__ = [
    "BatchPolicy",
    "OfflineResult",
    "ServerResult",
    "ServerSettings",
    "SloSearch",
    "max_qps_at_slo",
    "meets_slo",
    "poisson_arrivals",
    "run_offline",
    "run_server",
    "sample_count",
    "take",
]

Predict = Callable[[Any], Any]
#: The requests' inputs: one array, or one array per model input (first axis: samples).
Samples = np.ndarray | Sequence[np.ndarray]
#: The achieved rate may fall this far below the target before a server run is invalid.
RATE_TOLERANCE = 0.05


@dataclass(frozen=True)
class BatchPolicy:
    """The dynamic batcher's settings.

    Attributes:
        max_batch_size: Most requests in one call.
        max_queue_delay_ms: How long a free instance may wait after the oldest queued
            request for more requests to fill a batch (0: take what is queued now).
    """

    max_batch_size: int = 1
    max_queue_delay_ms: float = 0.0

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if self.max_queue_delay_ms < 0:
            raise ValueError("max_queue_delay_ms must not be negative")


@dataclass(frozen=True)
class ServerSettings:
    """One server run.

    Attributes:
        target_qps: Mean arrival rate of the Poisson schedule.
        batching: The dynamic batcher.
        min_duration_s: The schedule spans at least this long.
        percentile: The tail percentile the run must be able to state (sets the minimum
            query count, 662 for p99).
        seed: Seed of the arrival schedule and of the samples each request carries.
    """

    target_qps: float
    batching: BatchPolicy = field(default_factory=BatchPolicy)
    min_duration_s: float = 2.0
    percentile: float = 0.99
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.target_qps > 0:
            raise ValueError("target_qps must be positive")

    @property
    def query_count(self) -> int:
        """Queries in the schedule: enough for the duration and for the percentile."""
        spanning = math.ceil(self.target_qps * self.min_duration_s) + 1  # n arrivals, n-1 gaps
        return max(min_queries(self.percentile), spanning)


@dataclass(frozen=True)
class ServerResult:
    """What a server run measured; latencies in milliseconds."""

    target_qps: float
    achieved_qps: float
    queries: int
    duration_s: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    mean_batch_size: float
    wake_delay_p99_ms: float
    """How late an idle batcher took the request it waited for (counted in latency anyway)."""
    valid: bool
    invalid_reason: str | None
    latencies_ms: np.ndarray = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """The figures as JSON-ready values (no per-query latencies)."""
        return {
            "scenario": "server",
            "target_qps": round(self.target_qps, 3),
            "achieved_qps": round(self.achieved_qps, 3),
            "queries": self.queries,
            "duration_s": round(self.duration_s, 3),
            "latency_p50_ms": round(self.latency_p50_ms, 4),
            "latency_p95_ms": round(self.latency_p95_ms, 4),
            "latency_p99_ms": round(self.latency_p99_ms, 4),
            "mean_batch_size": round(self.mean_batch_size, 3),
            "wake_delay_p99_ms": round(self.wake_delay_p99_ms, 4),
            "valid": self.valid,
            "invalid_reason": self.invalid_reason,
        }


@dataclass(frozen=True)
class OfflineResult:
    """What an offline run measured."""

    samples: int
    duration_s: float
    throughput_sps: float
    batch_size: int
    valid: bool
    invalid_reason: str | None
    call_latencies_ms: np.ndarray = field(repr=False)
    """How long each call (one batch) took."""

    def summary(self) -> dict[str, Any]:
        """The figures as JSON-ready values."""
        return {
            "scenario": "offline",
            "samples": self.samples,
            "duration_s": round(self.duration_s, 3),
            "throughput_sps": round(self.throughput_sps, 3),
            "batch_size": self.batch_size,
            "valid": self.valid,
            "invalid_reason": self.invalid_reason,
        }


def poisson_arrivals(rate: float, count: int, seed: int) -> np.ndarray:
    """Scheduled arrival offsets in seconds: ``count`` exponential gaps of mean ``1/rate``.

    The gaps are rescaled so the schedule's own rate is exactly ``rate`` (a few hundred
    random gaps would otherwise miss it by several percent, and the run would be judged
    against a rate it was never offered).
    """
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, size=count)
    arrivals: np.ndarray = np.cumsum(gaps) - gaps[0]  # the first request at time 0
    if count > 1 and arrivals[-1] > 0:
        arrivals *= (count - 1) / (rate * arrivals[-1])
    return arrivals


class _Arrivals:
    """The arrival schedule as the server's queue: request ``i`` is queued from ``scheduled[i]``.

    The schedule is fixed before the run, so no generator thread has to put requests in a
    queue: a free instance looks at the clock and takes the requests that have arrived. One
    free instance at a time waits for arrivals (the leader, holding the lock); the others wait
    for the lock, so the next free one leads as soon as a batch leaves. That is a Triton-style
    dynamic batcher with a shared queue, minus a thread that would compete with the model
    instances for the GIL and the cores on every request (on a small machine that thread
    measured the harness, not the model).
    """

    def __init__(self, scheduled: np.ndarray, policy: BatchPolicy, clock: Callable[[], float]):
        self.scheduled = scheduled
        self.policy = policy
        self.clock = clock
        self.next = 0
        self.stopped = False
        self.lock = threading.Lock()
        #: How late the waiting leader saw each request it was waiting for (harness lag).
        self.wake_delays: list[float] = []

    def stop(self) -> None:
        self.stopped = True

    def take(self) -> range:
        """The next batch for a free instance (request indices); empty when all are taken."""
        scheduled, policy, clock = self.scheduled, self.policy, self.clock
        count = len(scheduled)
        with self.lock:
            first = self.next
            if first >= count or self.stopped:
                return range(0)
            oldest = float(scheduled[first])
            if clock() < oldest:
                _sleep_until(oldest, clock)  # idle: wait for the next arrival
                self.wake_delays.append(clock() - oldest)
            last = min(first + policy.max_batch_size, count) - 1
            if policy.max_queue_delay_ms > 0 and last > first:
                # Wait for more requests: until the batch is full or the oldest has waited
                # the delay, whichever comes first (both times are known in advance).
                full_at = float(scheduled[last])
                _sleep_until(min(full_at, oldest + policy.max_queue_delay_ms / 1000.0), clock)
            arrived = int(np.searchsorted(scheduled, clock(), side="right"))
            end = max(first + 1, min(arrived, last + 1))
            self.next = end
            return range(first, end)


def sample_count(samples: Samples) -> int:
    """How many samples there are (the first axis)."""
    return len(samples) if isinstance(samples, np.ndarray) else len(samples[0])


def take(samples: Samples, indices: np.ndarray) -> Any:
    """The samples at ``indices``: an array, or one array per input."""
    if isinstance(samples, np.ndarray):
        return samples[indices]
    return [np.ascontiguousarray(x[indices]) for x in samples]


def _sleep_until(deadline: float, clock: Callable[[], float]) -> None:
    """Sleep until the deadline, never spinning.

    ``time.sleep`` wakes some 0.05-0.1 ms late; that lag is counted in the requests'
    latency, as a real server's wake-up is. Spinning to wake on time would take a core (and
    the GIL) from the model instances, which on a small machine costs far more.
    """
    left = deadline - clock()
    while left > 0:
        time.sleep(left)
        left = deadline - clock()


#: The interpreter's thread switch interval during a run. At Python's default (5 ms) a
#: thread may keep the GIL that long while another waits for it to record a response or
#: hand out a batch: milliseconds of false queueing in every tail percentile.
SWITCH_INTERVAL_S = 0.0002


@contextlib.contextmanager
def _quick_switching() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def run_server(
    instances: Sequence[Predict],
    samples: Samples,
    settings: ServerSettings,
    batch_of: Callable[[Any], Any] | None = None,
) -> ServerResult:
    """Run the server scenario once: a Poisson schedule against ``instances``.

    Args:
        instances: One ``predict(batch)`` per model instance (each called from its own
            thread, never concurrently with itself).
        samples: The requests' inputs (one sample each, drawn from these by the seed).
        settings: Rate, batcher, duration, percentile.
        batch_of: Turns the stacked samples of a batch into what ``predict`` takes (e.g.
            pads to a fixed size); default: the stacked samples.
    """
    if not instances:
        raise ValueError("at least one model instance is needed")
    count = settings.query_count
    arrivals = poisson_arrivals(settings.target_qps, count, settings.seed)
    picks = np.random.default_rng(settings.seed + 1).integers(0, sample_count(samples), size=count)
    done = np.full(count, np.nan)
    batch_sizes: list[int] = []
    errors: list[BaseException] = []
    clock = time.perf_counter
    start = clock() + 0.02  # let the instance threads start
    scheduled = start + arrivals
    queue = _Arrivals(scheduled, settings.batching, clock)

    def serve(predict: Predict) -> None:
        while True:
            batch = queue.take()
            if not batch:
                return
            stacked = take(samples, picks[batch.start : batch.stop])
            try:
                predict(batch_of(stacked) if batch_of else stacked)
            except BaseException as exc:
                errors.append(exc)
                queue.stop()
                return
            done[batch.start : batch.stop] = clock()
            batch_sizes.append(len(batch))

    threads = [threading.Thread(target=serve, args=(p,), daemon=True) for p in instances]
    with _quick_switching():
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return _server_result(settings, scheduled, queue.wake_delays, done, batch_sizes)


def _server_result(
    settings: ServerSettings,
    scheduled: np.ndarray,
    wake_delays: list[float],
    done: np.ndarray,
    batch_sizes: list[int],
) -> ServerResult:
    latencies = (done - scheduled) * 1000.0
    count = len(latencies)
    # The rate the system kept up with: queries over the time from the first arrival to the
    # last response (an overloaded system finishes late, so this falls below the target).
    span = float(np.nanmax(done) - scheduled[0])
    achieved = (count - 1) / span if span > 0 else 0.0
    p50, p95, p99 = (float(v) for v in np.percentile(latencies, [50, 95, 99]))
    duration = float(scheduled[-1] - scheduled[0])
    reason = None
    if duration < settings.min_duration_s * 0.999:
        reason = (
            f"the schedule lasted {duration:.2f} s, under the minimum {settings.min_duration_s:g} s"
        )
    elif count < min_queries(settings.percentile):
        reason = f"{count} queries, under the {min_queries(settings.percentile)} needed"
    elif achieved < settings.target_qps * (1 - RATE_TOLERANCE):
        reason = (
            f"achieved {achieved:.1f} queries/s, more than {RATE_TOLERANCE:.0%} under the "
            f"target {settings.target_qps:.1f}: the system could not keep up"
        )
    return ServerResult(
        target_qps=settings.target_qps,
        achieved_qps=achieved,
        queries=count,
        duration_s=span,
        latency_p50_ms=p50,
        latency_p95_ms=p95,
        latency_p99_ms=p99,
        mean_batch_size=float(np.mean(batch_sizes)) if batch_sizes else 0.0,
        wake_delay_p99_ms=float(np.percentile(wake_delays, 99)) * 1000.0 if wake_delays else 0.0,
        valid=reason is None,
        invalid_reason=reason,
        latencies_ms=latencies,
    )


def run_offline(
    instances: Sequence[Predict],
    samples: Samples,
    batch_size: int,
    min_duration_s: float = 2.0,
    min_samples: int = 1024,
    batch_of: Callable[[Any], Any] | None = None,
) -> OfflineResult:
    """Run the offline scenario: every sample there at the start, batches of ``batch_size``.

    The sample pool is cycled until both minimums are met, and the number of samples is
    fixed before the run (as LoadGen's offline query), so the duration is what is measured.
    """
    if not instances:
        raise ValueError("at least one model instance is needed")
    # Size the run from a short calibration, so it lasts about min_duration_s. The fastest
    # of a few calls: one slow call (a busy moment) would make the run too short to count.
    total = sample_count(samples)
    probe = take(samples, np.arange(batch_size) % total)
    first = batch_of(probe) if batch_of else probe
    instances[0](first)
    per_batch = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        instances[0](first)
        per_batch = min(per_batch, max(time.perf_counter() - t0, 1e-6))
    batches_needed = math.ceil(min_duration_s * len(instances) / per_batch * 1.2)
    total_batches = max(batches_needed, math.ceil(min_samples / batch_size))
    pool = [
        take(samples, np.arange(i * batch_size, (i + 1) * batch_size) % total)
        for i in range(min(total_batches, 16))
    ]
    if batch_of:
        pool = [batch_of(b) for b in pool]
    lock = threading.Lock()
    next_batch = [0]
    errors: list[BaseException] = []
    calls: list[float] = []

    def work(predict: Predict) -> None:
        clock = time.perf_counter
        while True:
            with lock:
                index = next_batch[0]
                if index >= total_batches or errors:
                    return
                next_batch[0] += 1
            try:
                t0 = clock()
                predict(pool[index % len(pool)])
                calls.append((clock() - t0) * 1000.0)
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=work, args=(p,), daemon=True) for p in instances]
    with _quick_switching():
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        duration = time.perf_counter() - started
    if errors:
        raise errors[0]
    count = total_batches * batch_size
    reason = None
    if duration < min_duration_s * 0.9:
        reason = f"the run lasted {duration:.2f} s, under the minimum {min_duration_s:g} s"
    return OfflineResult(
        samples=count,
        duration_s=duration,
        throughput_sps=count / duration,
        batch_size=batch_size,
        valid=reason is None,
        invalid_reason=reason,
        call_latencies_ms=np.asarray(calls),
    )


@dataclass(frozen=True)
class SloSearch:
    """What the search for the highest rate under a p99 objective found.

    Attributes:
        slo_p99_ms: The objective.
        max_qps_at_slo: Highest tried rate whose run was valid and whose p99 is shown to
            be under the objective (0 when none was).
        best: That run.
        runs: Every run, in the order tried (the rate-vs-p99 curve).
    """

    slo_p99_ms: float
    max_qps_at_slo: float
    best: ServerResult | None
    runs: list[ServerResult]

    def summary(self) -> dict[str, Any]:
        """The figures as JSON-ready values, the curve included."""
        best = self.best.summary() if self.best else {}
        return {
            **best,
            "scenario": "server",
            "slo_p99_ms": self.slo_p99_ms,
            "max_qps_at_slo": round(self.max_qps_at_slo, 3),
            "curve": [
                {
                    "target_qps": round(r.target_qps, 3),
                    "achieved_qps": round(r.achieved_qps, 3),
                    "latency_p99_ms": round(r.latency_p99_ms, 4),
                    "valid": r.valid,
                }
                for r in self.runs
            ],
        }


def meets_slo(result: ServerResult, slo_p99_ms: float) -> bool:
    """Valid, and its p99 shown to be under the objective with early stopping's confidence."""
    if not result.valid:
        return False
    met, _ = meets_latency_target(result.latencies_ms.tolist(), slo_p99_ms, 0.99)
    return met


def max_qps_at_slo(
    run_at: Callable[[float], ServerResult],
    slo_p99_ms: float,
    ceiling_qps: float,
    steps: int = 7,
    precision: float = 0.03,
    floor_qps: float = 0.0,
    growth: float = 1.25,
) -> SloSearch:
    """The highest rate whose p99 meets ``slo_p99_ms``: a bounded search over the rate.

    Starts just under ``ceiling_qps``, an estimate of the most the system can take (its
    offline throughput). Until a rate fails, each passing rate is raised by ``growth``: a
    short offline run can underestimate what the instances sustain under load, and the
    estimate must not cap the answer. Once a rate has failed, the bracket is bisected.

    Args:
        run_at: Runs the server scenario at a rate.
        slo_p99_ms: The latency objective.
        ceiling_qps: The estimate of the highest sustainable rate; the search starts at
            90% of it.
        steps: Most runs after the first.
        precision: Stop when the bracket is this narrow, relative to the rate.
        floor_qps: The lowest rate tried (a run lasts at least 662 queries, so low rates
            are slow to time); if it fails too, no rate met the objective.
        growth: Factor by which a passing rate is raised while no rate has failed.
    """
    runs: list[ServerResult] = []
    best: ServerResult | None = None
    low, high = 0.0, math.inf  # highest passing rate, lowest failing rate
    rate = ceiling_qps * 0.9
    for _ in range(steps + 1):
        result = run_at(rate)
        runs.append(result)
        if meets_slo(result, slo_p99_ms):
            best = result if best is None or rate > best.target_qps else best
            low = rate
        else:
            high = rate
        if math.isinf(high):
            rate = low * growth
            continue
        if high - low <= precision * high or (low == 0 and rate <= floor_qps):
            break
        rate = (low + high) / 2 if low > 0 else max(high / 2, floor_qps)
    return SloSearch(
        slo_p99_ms=slo_p99_ms,
        max_qps_at_slo=best.target_qps if best else 0.0,
        best=best,
        runs=runs,
    )
