"""Repeatability: how much the same configuration's latency moves between measurements.

Each configuration is timed ``--repeats`` times in fresh worker processes (a new engine per
repeat, ``bench``'s default window) and ``--repeats`` times within one warm process for each
of several measurement windows (interleaved: every configuration once per round). Reported:
coefficient of variation (std / mean) of p50 and p95 across repeats, per window, which is
what the shipped window defaults are chosen from.
Goal (issue 4): CV <= 3%.

    python benchmarks/repeatability.py [--model demo:digits-midcnn] [--repeats 5]
        [--windows 0.5:50,1:100,3:500]

Prints a table and writes ``benchmarks/results/repeatability-<model>.json``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from _results import write_results

from infertune.config import load_settings
from infertune.knobs.spec import InferenceConfig
from infertune.measure.engine import Engine
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


def parse_windows(text: str) -> list[MeasurementWindow]:
    """``SECONDS:CALLS,...`` as measurement windows (warm-up as in a study's search)."""
    windows = []
    for item in text.split(","):
        seconds, calls = item.split(":")
        windows.append(
            MeasurementWindow(warmup_s=0.2, min_duration_s=float(seconds), min_calls=int(calls))
        )
    return windows


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """CV of p50/p95 over valid runs."""
    p50 = [r.latency_p50_ms for r in runs if r.valid]
    p95 = [r.latency_p95_ms for r in runs if r.valid]
    return {
        "p50_ms": p50,
        "p95_ms": p95,
        "cv_p50_pct": cv(p50),
        "cv_p95_pct": cv(p95),
        "timed_calls": [r.get("timed_calls") for r in runs],
        "valid": f"{len(p50)}/{len(runs)}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo:digits-midcnn")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--windows", default="0.5:50,1:100,3:500")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    default_window = MeasurementWindow()  # the defaults of `infertune bench`
    windows = parse_windows(args.windows)
    configs = [InferenceConfig.parse(**c) for c in CONFIGS]
    labels = [c.label() for c in configs]
    fresh: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
    warm: dict[tuple[str, int], list[dict[str, Any]]] = {
        (label, w): [] for label in labels for w in range(len(windows))
    }
    settings = load_settings()
    for repeat in range(args.repeats):
        for config in configs:
            with Engine(settings) as engine:  # new worker processes each time
                subject = engine.resolve(args.model)
                fresh[config.label()].append(
                    engine.time(subject, engine.variant(subject, config), config, default_window)
                )
        print(f"fresh-process round {repeat + 1}/{args.repeats} done", flush=True)
    with Engine(settings) as engine:
        subject = engine.resolve(args.model)
        variants = {c.label(): engine.variant(subject, c) for c in configs}
        for repeat in range(args.repeats):
            for w, window in enumerate(windows):
                for config in configs:
                    warm[config.label(), w].append(
                        engine.time(subject, variants[config.label()], config, window)
                    )
            print(f"warm round {repeat + 1}/{args.repeats} done", flush=True)
    rows = []
    for label, config in zip(labels, configs, strict=True):
        rows.append(
            {
                "label": label,
                "config": config.model_dump(mode="json"),
                "fresh": summarize(fresh[label]),
                "warm": [
                    {"window": windows[w].model_dump(), **summarize(warm[label, w])}
                    for w in range(len(windows))
                ],
            }
        )
    print(
        f"\n{args.model}: CV over {args.repeats} repeats; fresh processes with bench's window "
        f"({default_window.min_duration_s:g} s / {default_window.min_calls} calls), warm "
        "process per window"
    )
    window_names = [f"{w.min_duration_s:g}s/{w.min_calls}" for w in windows]
    header = f"{'configuration':<40} {'p50 ms':>7} {'fresh p50/p95':>14}" + "".join(
        f" {name + ' p50/p95':>17}" for name in window_names
    )
    print(header)
    for r in rows:
        cells = "".join(
            f" {w['cv_p50_pct']:>7.1f}%/{w['cv_p95_pct']:>6.1f}%" + " " for w in r["warm"]
        )
        print(
            f"{r['label']:<40} {statistics.median(r['fresh']['p50_ms']):>7.3f} "
            f"{r['fresh']['cv_p50_pct']:>5.1f}%/{r['fresh']['cv_p95_pct']:>6.1f}%{cells}"
        )
    medians = {
        name: {
            "median_cv_p50_pct": statistics.median(r["warm"][w]["cv_p50_pct"] for r in rows),
            "median_cv_p95_pct": statistics.median(r["warm"][w]["cv_p95_pct"] for r in rows),
        }
        for w, name in enumerate(window_names)
    }
    for name, m in medians.items():
        print(
            f"window {name}: median CV p50 {m['median_cv_p50_pct']:.1f}%, "
            f"p95 {m['median_cv_p95_pct']:.1f}%"
        )
    write_results(
        args.out,
        "repeatability",
        args.model,
        {
            "repeats": args.repeats,
            "fresh_window": default_window.model_dump(),
            "windows": [w.model_dump() for w in windows],
            "median_cv_by_window": medians,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
