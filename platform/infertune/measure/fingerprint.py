"""Hardware/software fingerprint: latency figures only compare on the same machine and stack."""

from __future__ import annotations

import os
import platform
import sys
from functools import lru_cache
from importlib import metadata
from typing import Any

from infertune.exceptions import ConfigurationError
from infertune.hashing import json_sha256

#: CPU flags that change which kernels run (vector width, int8 dot products, matrix units).
RELEVANT_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "sve",
    "sve2",
    "i8mm",
    "bf16",
)
LIBRARIES = (
    "tensorflow-cpu",
    "tensorflow",
    "keras",
    "ai-edge-litert",
    "openvino",
    "nncf",
    "onnxruntime",
    "tf2onnx",
    "numpy",
)


def cpu_model_and_flags() -> tuple[str, list[str]]:
    """The CPU's model name and feature flags (from /proc/cpuinfo where it exists)."""
    model: str = platform.processor() or platform.machine()
    flags: list[str] = []
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model") and model in ("", platform.machine(), "x86_64"):
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = value.split()
    except OSError:
        pass
    return model, flags


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that decide what runs (no import needed)."""
    return dict(_library_versions())


@lru_cache(maxsize=1)
def _library_versions() -> dict[str, str]:
    # Read once per process: package metadata lookups cost milliseconds each, and cache
    # keys ask for them on every trial.
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def check_threads(threads: int | None, instances: int = 1) -> None:
    """Refuse a thread setting this host cannot give (called where a measurement runs).

    Raises:
        ConfigurationError: ``threads`` (times ``instances``) exceeds the cores this process
            may run on.
    """
    cores = usable_cores()
    if threads is not None and threads > cores:
        raise ConfigurationError(
            f"threads={threads} exceeds the {cores} usable cores of this machine: measure it "
            f"with threads between 1 and {cores}, or leave threads unset for the runtime's "
            "default."
        )
    # Unset threads mean the runtime's default, all cores, for every instance.
    each = threads or cores
    if instances > 1 and instances * each > cores:
        raise ConfigurationError(
            f"instances={instances} x threads={threads or f'all {cores}'} needs "
            f"{instances * each} cores; this machine has {cores} usable: set threads so "
            "that instances x threads <= cores."
        )


@lru_cache(maxsize=1)
def fingerprint() -> dict[str, Any]:
    """The host's fingerprint; ``hardware_id`` changes only when the hardware does."""
    model, flags = cpu_model_and_flags()
    usable = usable_cores()
    hardware = {
        "cpu_model": model,
        "cpu_flags": sorted(f for f in flags if f in RELEVANT_FLAGS),
        "logical_cores": os.cpu_count() or 1,
        "usable_cores": usable,
        "machine": platform.machine(),
    }
    try:
        import psutil

        hardware["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover
        pass
    software = {
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "libraries": library_versions(),
    }
    return {
        "hardware_id": json_sha256(hardware)[:12],
        "software_id": json_sha256(software)[:12],
        "hardware": hardware,
        "software": software,
    }
