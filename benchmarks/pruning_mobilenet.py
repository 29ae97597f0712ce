"""Graph-aware structured pruning on a residual, depthwise network: MobileNetV2 on digits.

Trains a MobileNetV2 (``weights=None``: nothing is downloaded) on scikit-learn's digits
upsampled to 96x96 for a few epochs, in a child process (TensorFlow stays out of this one).
Batch-norm momentum is lowered to 0.9: Keras' 0.999 leaves the moving statistics far from
the data after a short run. Then, through the engine (the same builds and isolated timing
as ``infertune bench``), times LiteRT fp32 and int8 unpruned and at prune ratio 0.5 with
fine-tuning, interleaved over ``--repeats`` rounds, and reports medians.

    python benchmarks/pruning_mobilenet.py [--alpha 0.5] [--epochs 6] [--repeats 3]
        [--study-trials 27]

With ``--study-trials N``, a ``quick`` study of the same model and data runs too (N trials,
``--finetune-epochs`` after pruning) and its verified front is checked for an int8 point
pruned by half within one accuracy point of the baseline.

Prints a table and writes ``benchmarks/results/pruning-mobilenet-mobilenetv2-<alpha>.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from _results import write_results

from infertune.config import load_settings
from infertune.knobs.spec import InferenceConfig
from infertune.measure.engine import Engine
from infertune.measure.window import MeasurementWindow
from infertune.space.loader import BUILTIN_DIR

CONFIGS = [
    {"runtime": "tflite", "precision": "fp32"},  # the reference: first
    {"runtime": "tflite", "precision": "fp32", "prune_ratio": 0.5},
    {"runtime": "tflite", "precision": "int8"},
    {"runtime": "tflite", "precision": "int8", "prune_ratio": 0.5},
]


def _train(out_dir: str, alpha: float, epochs: int, seed: int) -> dict[str, Any]:
    """Train and save the model and its data (runs in a spawned child process)."""
    import numpy as np

    from infertune.models.demo_training import digits_splits
    from infertune.workers.tfsetup import import_tensorflow

    import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)
    x_train, x_eval, y_train, y_eval = digits_splits(96, seed)
    model = keras.applications.MobileNetV2(
        input_shape=(96, 96, 1), alpha=alpha, weights=None, classes=10
    )
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "BatchNormalization":
            layer["config"]["momentum"] = 0.9
    model = keras.Model.from_config(config)
    steps = epochs * -(-len(x_train) // 32)
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-3, steps)),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    started = time.monotonic()
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=2)
    train_s = time.monotonic() - started
    _, accuracy = model.evaluate(x_eval, y_eval, verbose=0)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.optimizer = None
    model.save(out / "model.keras")
    np.savez(out / "train.npz", x=x_train, y=y_train)
    np.savez(out / "eval.npz", x=x_eval, y=y_eval)
    return {"keras_eval_accuracy": float(accuracy), "train_s": round(train_s, 1)}


def quick_study(work: Path, trials: int, finetune_epochs: int) -> dict[str, Any]:
    """A ``quick`` study of the trained model: is int8 + prune 0.5 on its verified front, and
    how far is its accuracy from the baseline's?"""
    space = yaml.safe_load((BUILTIN_DIR / "quick.yaml").read_text())
    space["finetune_epochs"] = finetune_epochs
    space_path = work / "quick.yaml"
    space_path.write_text(yaml.safe_dump(space))
    command = [
        sys.executable, "-m", "infertune",
        "--db-url", f"sqlite:///{work / 'studies.db'}",
        "--mlflow-uri", f"sqlite:///{work / 'mlflow.db'}",
        "tune", str(work / "model.keras"), "--data", str(work / "eval.npz"),
        "--train-data", str(work / "train.npz"), "--space", str(space_path),
        "--trials", str(trials), "--study", "mobilenet-quick", "--json",
    ]  # fmt: skip
    print(f"quick study ({trials} trials) ...", flush=True)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"tune failed: {done.stderr.strip()[-800:]}")
    front = json.loads(done.stdout)
    baseline = front["baseline"]["accuracy"]
    halves = [
        p
        for p in front["points"]
        if p["config"]["precision"] == "int8" and abs(p["config"]["prune_ratio"] - 0.5) < 1e-6
    ]
    best = max(halves, key=lambda p: p["figures"]["accuracy"], default=None)
    result = {
        "trials": trials,
        "finetune_epochs": finetune_epochs,
        "baseline_accuracy": baseline,
        "front": [
            {
                "config": p["config"],
                "accuracy": p["figures"]["accuracy"],
                "p95": p["figures"]["latency_p95_ms"],
            }
            for p in front["points"]
        ],
        "int8_prune_half_on_front": best is not None,
        "int8_prune_half_accuracy": best["figures"]["accuracy"] if best else None,
        "int8_prune_half_drop_points": (
            100 * (baseline - best["figures"]["accuracy"]) if best else None
        ),
    }
    print(
        "quick study: int8 + prune 0.5 "
        + (
            f"on the front at accuracy {result['int8_prune_half_accuracy']:.4f} "
            f"({result['int8_prune_half_drop_points']:+.2f} points below the baseline's "
            f"{baseline:.4f})"
            if best
            else "not on the front"
        ),
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--study-trials", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-duration", type=float, default=2.0)
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "infertune-bench-pruning"
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    work = args.work / f"mobilenetv2-{args.alpha}"
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        trained = pool.apply(_train, (str(work), args.alpha, args.epochs, 0))
    print(f"trained: {trained}", flush=True)

    window = MeasurementWindow(min_duration_s=args.min_duration, min_calls=200)
    configs = [InferenceConfig.parse(**c) for c in CONFIGS]
    runs: dict[str, list[Any]] = {c.label(): [] for c in configs}
    with Engine(load_settings()) as engine:
        subject = engine.resolve(str(work / "model.keras"), work / "eval.npz", work / "train.npz")
        for repeat in range(args.repeats):
            for config in configs:
                result = engine.bench(subject, config, window, args.finetune_epochs)
                runs[config.label()].append(result)
                print(
                    f"[{repeat + 1}/{args.repeats}] {config.label():<40} "
                    f"p50 {result.latency_p50_ms:.3f} ms  accuracy {result.accuracy:.4f}",
                    flush=True,
                )
    study = (
        quick_study(work, args.study_trials, args.finetune_epochs) if args.study_trials else None
    )
    base = statistics.median(r.latency_p50_ms for r in runs[configs[0].label()])
    rows = []
    for config in configs:
        results = runs[config.label()]
        p50s = [r.latency_p50_ms for r in results]
        first = results[0]
        rows.append(
            {
                "config": config.model_dump(mode="json"),
                "label": config.label(),
                "latency_p50_ms": statistics.median(p50s),
                "latency_p50_spread_ms": [min(p50s), max(p50s)],
                "speedup_vs_unpruned_fp32": base / statistics.median(p50s),
                "accuracy": first.accuracy,
                "agreement": first.agreement,
                "model_size_mb": first.model_size_mb,
                "macs": first.macs,
                "params": first.variant.params,
                "all_valid": all(r.valid for r in results),
            }
        )
    print(f"\nMobileNetV2 alpha {args.alpha} on 96x96 digits, medians of {args.repeats}")
    print(f"{'configuration':<40} {'p50 ms':>8} {'x fp32':>7} {'accuracy':>9} {'MB':>7}")
    for row in rows:
        print(
            f"{row['label']:<40} {row['latency_p50_ms']:>8.3f} "
            f"{row['speedup_vs_unpruned_fp32']:>7.2f} {row['accuracy']:>9.4f} "
            f"{row['model_size_mb']:>7.3f}"
        )
    write_results(
        args.out,
        "pruning-mobilenet",
        f"mobilenetv2-{args.alpha}",
        {
            "alpha": args.alpha,
            "train_epochs": args.epochs,
            "finetune_epochs": args.finetune_epochs,
            "repeats": args.repeats,
            **trained,
            "rows": rows,
            "quick_study": study,
        },
    )


if __name__ == "__main__":
    main()
