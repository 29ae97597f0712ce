"""Speed-up of hand-picked configurations over the baseline, measured interleaved.

Each configuration is built once (cached), then timed ``--repeats`` times in rounds
(A, B, C, A, B, C, ...) so that slow drifts of a shared machine hit every configuration
alike; the table shows medians over the repeats and the ratio to the baseline.

    python benchmarks/speedup.py [--model demo:digits-midcnn] [--repeats 5]

Prints a table and writes ``benchmarks/results/speedup-<model>.json``.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from _results import write_results

from infertune.config import load_settings
from infertune.knobs.spec import InferenceConfig
from infertune.measure.engine import Engine
from infertune.measure.window import MeasurementWindow

CONFIGS = [
    {"runtime": "tf", "precision": "fp32"},  # the baseline: first
    {"runtime": "tf", "precision": "fp32", "threads": 1},
    {"runtime": "tflite", "precision": "fp32"},
    {"runtime": "tflite", "precision": "fp16"},
    {"runtime": "tflite", "precision": "int8_dynamic"},
    {"runtime": "tflite", "precision": "int8"},
    {"runtime": "tflite", "precision": "fp32", "prune_ratio": 0.5},
    {"runtime": "tflite", "precision": "int8", "prune_ratio": 0.5},
    {"runtime": "openvino", "precision": "fp32"},
    {"runtime": "openvino", "precision": "bf16"},
    {"runtime": "openvino", "precision": "int8"},
    {"runtime": "openvino", "precision": "int8", "prune_ratio": 0.5},
    {"runtime": "onnxruntime", "precision": "fp32"},
    {"runtime": "onnxruntime", "precision": "int8"},
    {"runtime": "onnxruntime", "precision": "int8", "prune_ratio": 0.5},
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo:digits-midcnn")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-duration", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    window = MeasurementWindow(min_duration_s=args.min_duration, min_calls=200)
    configs = [InferenceConfig.parse(**c) for c in CONFIGS]
    runs: dict[str, list[dict]] = {c.label(): [] for c in configs}
    with Engine(load_settings()) as engine:
        subject = engine.resolve(args.model)
        for repeat in range(args.repeats):
            for config in configs:
                result = engine.bench(subject, config, window)
                runs[config.label()].append(result)
                print(
                    f"[{repeat + 1}/{args.repeats}] {config.label():<45} "
                    f"p50 {result.latency_p50_ms:.3f} ms",
                    flush=True,
                )
    rows = []
    base_p50 = statistics.median(r.latency_p50_ms for r in runs[configs[0].label()])
    for config in configs:
        results = runs[config.label()]
        p50s = [r.latency_p50_ms for r in results]
        p50 = statistics.median(p50s)
        rows.append(
            {
                "config": config.model_dump(mode="json"),
                "label": config.label(),
                "latency_p50_ms": p50,
                "latency_p50_spread_ms": [min(p50s), max(p50s)],
                "latency_p95_ms": statistics.median(r.latency_p95_ms for r in results),
                "throughput_sps": statistics.median(r.throughput_sps for r in results),
                "speedup_vs_baseline": base_p50 / p50,
                "accuracy": results[0].accuracy,
                "agreement": results[0].agreement,
                "model_size_mb": results[0].model_size_mb,
                "all_valid": all(r.valid for r in results),
            }
        )
    print(f"\n{args.model}, medians of {args.repeats} interleaved repeats")
    print(
        f"{'configuration':<45} {'p50 ms':>8} {'p95 ms':>8} {'speedup':>8} {'acc':>7} "
        f"{'agree':>7} {'MiB':>7}"
    )
    for row in rows:
        print(
            f"{row['label']:<45} {row['latency_p50_ms']:>8.3f} {row['latency_p95_ms']:>8.3f} "
            f"{row['speedup_vs_baseline']:>7.2f}x {row['accuracy']:>7.4f} "
            f"{row['agreement']:>7.4f} {row['model_size_mb']:>7.3f}"
        )
    write_results(
        args.out,
        "speedup",
        args.model,
        {
            "repeats": args.repeats,
            "window": window.model_dump(),
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
