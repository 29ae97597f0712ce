"""How far a configuration is from the hardware limit: achieved GFLOP/s, % of peak.

The model's MACs are counted in the worker (:func:`infertune.models.graph.count_macs`).

The peak is a nominal one, from what the CPU advertises: cores x fp32 vector lanes x 2
(a fused multiply-add is two operations) x FMA units x clock. int8 kernels get 2x that
rate (4x with VNNI dot products). It is an upper bound no real model reaches; the point is
the comparison between configurations and the headroom left. AMX and frequency boost are
not modelled.
"""

from __future__ import annotations

from infertune.measure.fingerprint import cpu_model_and_flags, usable_cores


def _clock_ghz() -> float | None:
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as fh:
            return int(fh.read().strip()) / 1e6
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("cpu MHz"):
                    return float(line.split(":")[1]) / 1000
    except (OSError, ValueError):
        pass
    return None


def peak_gflops_per_core() -> dict[str, float] | None:
    """Nominal fp32 and int8 peak per core, or ``None`` where the clock is unknown."""
    clock = _clock_ghz()
    if clock is None:
        return None
    flags = set(cpu_model_and_flags()[1])
    if "avx512f" in flags:
        lanes, fma_units = 16, 2
    elif "avx2" in flags or "avx" in flags:
        lanes, fma_units = 8, 2 if "fma" in flags else 1
    elif "asimd" in flags:
        lanes, fma_units = 4, 2
    else:
        lanes, fma_units = 4, 1
    fp32 = lanes * 2 * fma_units * clock
    int8_factor = 4 if flags & {"avx512_vnni", "avx_vnni", "asimddp"} else 2
    return {"fp32": fp32, "int8": fp32 * int8_factor, "clock_ghz": clock}


def efficiency(
    macs: int | None,
    batch_size: int,
    latency_mean_ms: float | None,
    precision: str,
    threads: int | None,
) -> dict[str, float | None]:
    """Achieved GFLOP/s and its share of the nominal peak of the cores in use."""
    if not macs or not latency_mean_ms:
        return {"gflops": None, "peak_pct": None}
    gflops = 2 * macs * batch_size / (latency_mean_ms / 1e3) / 1e9
    peak = peak_gflops_per_core()
    if peak is None:
        return {"gflops": gflops, "peak_pct": None}
    cores = threads or usable_cores()
    kind = "int8" if precision in ("int8", "int8_dynamic") else "fp32"
    return {"gflops": gflops, "peak_pct": 100 * gflops / (peak[kind] * cores)}
