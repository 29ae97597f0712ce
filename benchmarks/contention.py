"""Measurements on a busy machine: is contention detected, and does pinning steady timings?

Three parts, on ``demo:digits-midcnn`` (all in one run, interleaved where compared):

1. **Pinning**: single-thread configurations timed ``--repeats`` times with the timing worker
   pinned to one core (``INFERTUNE_PIN_CORES=auto``, the default) and not pinned (``off``),
   interleaved; coefficient of variation (CV) of p50 across repeats for each. Goals (issue
   16): single-thread p50 CV <= 3%, two-thread p50 CV <= 5% on the quiet machine.
2. **Detection**: ``--windows`` timing windows, every other one with a synthetic background
   load (a process burning one core, started and stopped here), each timed once (no
   re-timing); how many loaded windows were flagged *disturbed* (detected/total) and how
   many quiet ones were (false alarms).
3. **Front under load** (``--fronts N``, default 0): the ``quick`` study's verified front,
   once quiet and N times with the background load running; is it the same set each time,
   or does the run say it was disturbed?

    python benchmarks/contention.py [--repeats 10] [--windows 20] [--fronts 0]

Prints tables and writes ``benchmarks/results/contention-<model>.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _results import write_results

from infertune.config import load_settings
from infertune.knobs.spec import InferenceConfig
from infertune.measure.engine import Engine
from infertune.measure.window import MeasurementWindow

SINGLE = [
    {"runtime": "tflite", "precision": "fp32", "threads": 1},
    {"runtime": "tflite", "precision": "int8", "threads": 1},
    {"runtime": "openvino", "precision": "int8", "threads": 1},
]
TWO = [{"runtime": "tflite", "precision": "fp32", "threads": 2}]


def cv(values: list[float]) -> float:
    """Coefficient of variation in percent."""
    return 100 * statistics.stdev(values) / statistics.mean(values) if len(values) > 1 else 0.0


def _burn(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


class Burner:
    """A process burning one core while in use (bounded: it stops by itself)."""

    def __init__(self, seconds: float = 600.0) -> None:
        self.seconds = seconds
        self.proc: multiprocessing.Process | None = None

    def __enter__(self) -> Burner:
        self.proc = multiprocessing.get_context("spawn").Process(target=_burn, args=(self.seconds,))
        self.proc.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.join()


def pinning(model: str, repeats: int) -> dict[str, Any]:
    """CV of p50 pinned and not pinned, interleaved."""
    window = MeasurementWindow(disturbed_retries=2)
    settings = load_settings()
    configs = [InferenceConfig.parse(**c) for c in SINGLE + TWO]
    engines: dict[str, Engine] = {}
    for mode in ("auto", "off"):
        os.environ["INFERTUNE_PIN_CORES"] = mode  # the engine's workers inherit it
        engines[mode] = Engine(settings).__enter__()
    os.environ.pop("INFERTUNE_PIN_CORES", None)
    runs: dict[tuple[str, str], list[Any]] = {}
    try:
        subject = engines["auto"].resolve(model)
        variants = {c.label(): engines["auto"].variant(subject, c) for c in configs}
        for repeat in range(repeats):
            for config in configs:
                for mode, engine in engines.items():
                    timing = engine.time(subject, variants[config.label()], config, window)
                    runs.setdefault((config.label(), mode), []).append(timing)
            print(f"  pinning round {repeat + 1}/{repeats}", flush=True)
    finally:
        for engine in engines.values():
            engine.__exit__(None, None, None)
    rows = []
    for config in configs:
        row: dict[str, Any] = {"label": config.label(), "threads": config.threads}
        for mode in ("auto", "off"):
            timings = [t for t in runs[config.label(), mode] if t.valid]
            p50 = [t.latency_p50_ms for t in timings]
            row[mode] = {
                "p50_ms": p50,
                "median_p50_ms": statistics.median(p50),
                "cv_p50_pct": cv(p50),
                "disturbed": sum(bool((t.contention or {}).get("disturbed")) for t in timings),
                "pinned_cores": timings[0].runtime_settings.get("pinned_cores"),
            }
        rows.append(row)
    return {"repeats": repeats, "rows": rows}


def detection(model: str, windows: int) -> dict[str, Any]:
    """Every other window under a one-core background load; which were flagged."""
    window = MeasurementWindow(min_duration_s=1.0, disturbed_retries=0)
    config = InferenceConfig.parse(runtime="tflite", precision="fp32", threads=1)
    seen = []
    with Engine(load_settings()) as engine:
        subject = engine.resolve(model)
        variant = engine.variant(subject, config)
        engine.time(subject, variant, config, window)  # load and warm the worker
        for index in range(windows):
            loaded = index % 2 == 1
            if loaded:
                with Burner():
                    timing = engine.time(subject, variant, config, window)
            else:
                timing = engine.time(subject, variant, config, window)
            contention = timing.contention or {}
            seen.append(
                {
                    "loaded": loaded,
                    "disturbed": bool(contention.get("disturbed")),
                    "other_cores": contention.get("other_cores"),
                    "p50_ms": timing.latency_p50_ms,
                }
            )
    loaded_runs = [s for s in seen if s["loaded"]]
    quiet_runs = [s for s in seen if not s["loaded"]]
    return {
        "windows": seen,
        "detected": sum(s["disturbed"] for s in loaded_runs),
        "loaded": len(loaded_runs),
        "false_alarms": sum(s["disturbed"] for s in quiet_runs),
        "quiet": len(quiet_runs),
        "median_p50_quiet_ms": statistics.median(s["p50_ms"] for s in quiet_runs),
        "median_p50_loaded_ms": statistics.median(s["p50_ms"] for s in loaded_runs),
    }


def front_set(model: str, tmp: Path, name: str) -> dict[str, Any]:
    """One verified quick study: the configurations on its front, and whether disturbed."""
    command = [
        sys.executable, "-m", "infertune",
        "--db-url", f"sqlite:///{tmp / 'studies.db'}",
        "--mlflow-uri", f"sqlite:///{tmp / 'mlflow.db'}",
        "tune", model, "--space", "quick", "--trials", "27", "--study", name, "--json",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"tune failed: {done.stderr.strip()[-600:]}")
    front = json.loads(done.stdout)
    configs = sorted(json.dumps(p["config"], sort_keys=True) for p in front["points"])
    check = front.get("verification") or {}
    return {"configs": configs, "disturbed_timings": check.get("disturbed_timings", 0)}


def fronts(model: str, count: int) -> dict[str, Any]:
    """The quick study's front quiet, then ``count`` times under the background load."""
    with tempfile.TemporaryDirectory(prefix="infertune-contention-") as tmp:
        quiet = front_set(model, Path(tmp), "quiet")
        loaded = []
        for index in range(count):
            with Burner(seconds=3600):
                loaded.append(front_set(model, Path(tmp), f"loaded-{index}"))
            print(f"  front under load {index + 1}/{count}", flush=True)
    same = sum(run["configs"] == quiet["configs"] for run in loaded)
    # A run whose front differs must say it was disturbed (issue 16's goal).
    said = sum(run["configs"] == quiet["configs"] or run["disturbed_timings"] > 0 for run in loaded)
    return {
        "quiet": quiet,
        "loaded": loaded,
        "same_front": same,
        "same_or_said_disturbed": said,
        "runs": count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo:digits-midcnn")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--windows", type=int, default=20)
    parser.add_argument("--fronts", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    print(f"{args.model}: pinning ({args.repeats} interleaved repeats) ...")
    pin = pinning(args.model, args.repeats)
    print(f"\n{'configuration':<44} {'pinned p50 CV':>14} {'unpinned p50 CV':>16} {'p50 ms':>8}")
    for row in pin["rows"]:
        print(
            f"{row['label']:<44} {row['auto']['cv_p50_pct']:>13.1f}% "
            f"{row['off']['cv_p50_pct']:>15.1f}% {row['auto']['median_p50_ms']:>8.3f}"
        )
    print(f"\ndetection: {args.windows} windows, every other one with a core burning beside it")
    found = detection(args.model, args.windows)
    print(
        f"detected {found['detected']}/{found['loaded']} loaded windows; "
        f"false alarms {found['false_alarms']}/{found['quiet']} quiet windows; "
        f"median p50 {found['median_p50_quiet_ms']:.3f} ms quiet, "
        f"{found['median_p50_loaded_ms']:.3f} ms loaded"
    )
    front = None
    if args.fronts:
        print(f"\nfronts: the quick study quiet, then {args.fronts} times under load ...")
        front = fronts(args.model, args.fronts)
        print(
            f"same front as the quiet run: {front['same_front']}/{front['runs']}; same or "
            f"said disturbed: {front['same_or_said_disturbed']}/{front['runs']}"
        )
    write_results(
        args.out,
        "contention",
        args.model,
        {"pinning": pin, "detection": found, "fronts": front},
    )


if __name__ == "__main__":
    main()
