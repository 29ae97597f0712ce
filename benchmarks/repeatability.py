"""Repeatability: how much the same configuration's latency moves between measurements.

Each configuration is timed ``--repeats`` times in fresh worker processes (a new engine
per repeat) and ``--repeats`` times within one warm process, with the search window of a
study. Reported: coefficient of variation (std / mean) of p50 and p95 across repeats.
Goal (issue 4): CV <= 3%.

    python benchmarks/repeatability.py [--model demo:digits-midcnn] [--repeats 5]

Prints a table and writes ``benchmarks/results/repeatability-<model>.json``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from _results import write_results

from infertune.config import load_settings
from infertune.engine import Engine
from infertune.knobs.spec import InferenceConfig
from infertune.measure.window import MeasurementWindow

CONFIGS = [
    {"runtime": "tf", "precision": "fp32"},
    {"runtime": "tf", "precision": "fp32", "threads": 1},
    {"runtime": "tflite", "precision": "fp32"},
    {"runtime": "tflite", "precision": "fp32", "threads": 1},
    {"runtime": "tflite", "precision": "int8", "prune_ratio": 0.5},
]


def cv(values: list[float]) -> float:
    """Coefficient of variation in percent."""
    return 100 * statistics.stdev(values) / statistics.mean(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo:digits-midcnn")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    window = MeasurementWindow()  # the defaults of `infertune bench`
    configs = [InferenceConfig.parse(**c) for c in CONFIGS]
    fresh: dict[str, list[dict]] = {c.label(): [] for c in configs}
    warm: dict[str, list[dict]] = {c.label(): [] for c in configs}
    settings = load_settings()
    for repeat in range(args.repeats):
        for config in configs:
            with Engine(settings) as engine:  # new worker processes each time
                subject = engine.resolve(args.model)
                fresh[config.label()].append(
                    engine.time(subject, engine.variant(subject, config), config, window)
                )
        print(f"fresh-process round {repeat + 1}/{args.repeats} done", flush=True)
    with Engine(settings) as engine:
        subject = engine.resolve(args.model)
        for config in configs:
            variant = engine.variant(subject, config)
            for _ in range(args.repeats):
                warm[config.label()].append(engine.time(subject, variant, config, window))
    rows = []
    for config in configs:
        label = config.label()
        row = {"label": label, "config": config.model_dump(mode="json")}
        for name, runs in (("fresh", fresh[label]), ("warm", warm[label])):
            p50 = [r["latency_p50_ms"] for r in runs if r["valid"]]
            p95 = [r["latency_p95_ms"] for r in runs if r["valid"]]
            row[name] = {
                "p50_ms": p50,
                "p95_ms": p95,
                "cv_p50_pct": cv(p50),
                "cv_p95_pct": cv(p95),
                "valid": f"{len(p50)}/{len(runs)}",
            }
        rows.append(row)
    print(
        f"\n{args.model}: CV over {args.repeats} repeats, window {window.min_duration_s} s / "
        f"{window.min_calls} calls"
    )
    print(
        f"{'configuration':<45} {'p50 ms':>8} {'CV p50 fresh':>13} {'CV p95 fresh':>13} "
        f"{'CV p50 warm':>12} {'CV p95 warm':>12}"
    )
    for r in rows:
        print(
            f"{r['label']:<45} {statistics.median(r['fresh']['p50_ms']):>8.3f} "
            f"{r['fresh']['cv_p50_pct']:>12.1f}% {r['fresh']['cv_p95_pct']:>12.1f}% "
            f"{r['warm']['cv_p50_pct']:>11.1f}% {r['warm']['cv_p95_pct']:>11.1f}%"
        )
    write_results(
        args.out,
        "repeatability",
        args.model,
        {
            "repeats": args.repeats,
            "window": window.model_dump(),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
