"""The speed-up a study finds: its verified best within a 1% accuracy drop vs references.

For each demo model, ``infertune tune`` runs the ``quick`` space with the accuracy-drop
constraint set to 1% (in a throwaway database; built variants are shared with the default
home), and again restricted to TensorFlow and LiteRT (the runtimes infertune searched before
OpenVINO and ONNX Runtime were added). The fastest point of each verified front (p95) is then
timed, interleaved with (a) the baseline (tf fp32, batch 1, default threads) and (b) what a
user would pick by hand (LiteRT fp32, default threads), ``--repeats`` times; medians are
compared.

    python benchmarks/best_speedup.py [--models demo:digits-cnn,demo:digits-midcnn]
        [--trials 27] [--repeats 5]

Prints a table and writes ``benchmarks/results/best-speedup-<model>.json`` per model.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from _results import write_results

from infertune.config import load_settings
from infertune.knobs.spec import InferenceConfig
from infertune.measure.engine import Engine
from infertune.measure.window import MeasurementWindow
from infertune.space.loader import BUILTIN_DIR

MAX_DROP = 0.01


#: The space before OpenVINO and ONNX Runtime: TensorFlow and LiteRT with all its precisions.
BEFORE_KNOBS = {
    "runtime": {"type": "categorical", "choices": ["tf", "tflite"]},
    "precision": {
        "type": "categorical",
        "choices": ["fp32", "fp16", "int8_dynamic", "int8"],
        "when": {"runtime": ["tflite"]},
    },
}


def tuned_best(
    model: str, trials: int, tmp: Path, knobs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run the study; the fastest verified front point within the accuracy constraint."""
    space = yaml.safe_load((BUILTIN_DIR / "quick.yaml").read_text())
    space["constraints"] = {"max_accuracy_drop": MAX_DROP}
    space["knobs"].update(knobs or {})
    space_path = tmp / "quick-1pct.yaml"
    space_path.write_text(yaml.safe_dump(space))
    command = [
        sys.executable, "-m", "infertune",
        "--db-url", f"sqlite:///{tmp / 'studies.db'}",
        "--mlflow-uri", f"sqlite:///{tmp / 'mlflow.db'}",
        "tune", model, "--space", str(space_path), "--trials", str(trials),
        "--study", "best-speedup", "--json",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"tune failed: {done.stderr.strip()[-600:]}")
    front = json.loads(done.stdout)
    points = [p for p in front["points"] if p["figures"].get("latency_p95_ms")]
    if not points:
        sys.exit(f"{model}: no configuration within a {MAX_DROP:.0%} accuracy drop")
    best: dict[str, Any] = min(points, key=lambda p: p["figures"]["latency_p95_ms"])
    best["verified"] = front["verified"]
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="demo:digits-cnn,demo:digits-midcnn")
    parser.add_argument("--trials", type=int, default=27, help="trials of the quick study")
    parser.add_argument(
        "--before-trials", type=int, default=15, help="trials of the tf/tflite-only study"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    window = MeasurementWindow(min_duration_s=2.0, min_calls=200)
    for model in args.models.split(","):
        print(f"{model}: tuning ({args.trials} trials, accuracy drop <= {MAX_DROP:.0%}) ...")
        with tempfile.TemporaryDirectory(prefix="infertune-best-") as tmp:
            best = tuned_best(model, args.trials, Path(tmp))
        print(f"{model}: tuning tf/tflite only ({args.before_trials} trials) ...")
        with tempfile.TemporaryDirectory(prefix="infertune-best-") as tmp:
            before = tuned_best(model, args.before_trials, Path(tmp), BEFORE_KNOBS)
        references = {
            "baseline (tf fp32)": InferenceConfig(),
            "by hand (tflite fp32)": InferenceConfig.parse(runtime="tflite", precision="fp32"),
            "tuned best, tf/tflite": InferenceConfig.parse(**before["config"]),
            "tuned best": InferenceConfig.parse(**best["config"]),
        }
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in references}
        with Engine(load_settings()) as engine:
            subject = engine.resolve(model)
            for repeat in range(args.repeats):
                for name, config in references.items():
                    runs[name].append(engine.bench(subject, config, window))
                print(f"  timing round {repeat + 1}/{args.repeats} done", flush=True)
        rows = {}
        for name, results in runs.items():
            rows[name] = {
                "config": references[name].model_dump(mode="json"),
                "label": references[name].label(),
                "latency_p50_ms": statistics.median(r.latency_p50_ms for r in results),
                "latency_p95_ms": statistics.median(r.latency_p95_ms for r in results),
                "accuracy": results[0].accuracy,
                "all_valid": all(r.valid for r in results),
            }
        best_row = rows["tuned best"]
        for name, key in (
            ("baseline (tf fp32)", "baseline"),
            ("by hand (tflite fp32)", "by"),
            ("tuned best, tf/tflite", "before"),
        ):
            ref = rows[name]
            best_row[f"speedup_p50_vs_{key}"] = ref["latency_p50_ms"] / best_row["latency_p50_ms"]
            best_row[f"speedup_p95_vs_{key}"] = ref["latency_p95_ms"] / best_row["latency_p95_ms"]
        print(f"\n{model}: medians of {args.repeats} interleaved repeats")
        print(f"{'':<24} {'configuration':<42} {'p50 ms':>8} {'p95 ms':>8} {'accuracy':>9}")
        for name, row in rows.items():
            print(
                f"{name:<24} {row['label']:<42} {row['latency_p50_ms']:>8.3f} "
                f"{row['latency_p95_ms']:>8.3f} {row['accuracy']:>9.4f}"
            )
        print(
            f"tuned best: {best_row['speedup_p50_vs_baseline']:.2f}x (p50) / "
            f"{best_row['speedup_p95_vs_baseline']:.2f}x (p95) over the baseline, "
            f"{best_row['speedup_p50_vs_by']:.2f}x / {best_row['speedup_p95_vs_by']:.2f}x "
            f"over the hand pick, {best_row['speedup_p50_vs_before']:.2f}x / "
            f"{best_row['speedup_p95_vs_before']:.2f}x over the tf/tflite-only tuned best"
        )
        write_results(
            args.out,
            "best-speedup",
            model,
            {
                "max_accuracy_drop": MAX_DROP,
                "trials": args.trials,
                "before_trials": args.before_trials,
                "study_best_tf_tflite": before,
                "repeats": args.repeats,
                "window": window.model_dump(),
                "study_best": best,
                "rows": rows,
            },
        )


if __name__ == "__main__":
    main()
