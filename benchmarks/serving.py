"""Serving under load: a `serving` study's best point against the single-stream winner.

Runs two studies of ``demo:digits-midcnn`` in throwaway databases (built variants are shared
with the default home): the ``quick`` space (single stream, p95 latency) and the shipped
``serving`` space (server scenario: the highest rate whose p99 meets 10 ms, with batching,
queue delay and instances x threads). The single-stream winner (lowest verified p95 within
the quality constraint) is deployed as it is: batch 1, one instance. Both are then served
side by side, interleaved, ``--repeats`` times: each repeat searches the highest Poisson rate
whose p99 meets the objective (MLPerf's server rules). Medians are compared, and the
rate-vs-p99 curves of both are drawn in ``docs/serving-curve.png``.

    python benchmarks/serving.py [--model demo:digits-midcnn] [--trials 24] [--repeats 3]

Prints a table and writes ``benchmarks/results/serving-<model>.json``.
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

from _results import write_results

from infertune.config import load_settings
from infertune.knobs.spec import InferenceConfig
from infertune.measure.engine import Engine
from infertune.measure.window import MeasurementWindow
from infertune.space.loader import load_space
from infertune.space.schema import Scenario, ScenarioSpec

DOCS = Path(__file__).resolve().parents[1] / "docs"


def study_front(model: str, space: str, trials: int, tmp: Path) -> dict[str, Any]:
    """Run ``infertune tune``; its (verified) front as JSON."""
    command = [
        sys.executable, "-m", "infertune",
        "--db-url", f"sqlite:///{tmp / 'studies.db'}",
        "--mlflow-uri", f"sqlite:///{tmp / 'mlflow.db'}",
        "tune", model, "--space", space, "--trials", str(trials),
        "--study", f"serving-bench-{space}", "--json",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"tune --space {space} failed: {done.stderr.strip()[-800:]}")
    front: dict[str, Any] = json.loads(done.stdout)
    return front


def best_point(front: dict[str, Any], figure: str, lowest: bool) -> dict[str, Any]:
    """The front point with the best ``figure`` (feasible points only are on the front)."""
    points = [p for p in front["points"] if p["figures"].get(figure)]
    if not points:
        sys.exit(f"the front has no point with {figure}")
    pick = min if lowest else max
    return pick(points, key=lambda p: p["figures"][figure])


def curve(engine: Engine, subject: Any, config: InferenceConfig, rates: list[float]) -> list[Any]:
    """p99 at each rate (one server run per rate)."""
    points = []
    variant = engine.variant(subject, config)
    window = MeasurementWindow()
    for rate in rates:
        scenario = ScenarioSpec(name=Scenario.SERVER, target_qps=rate, min_duration_s=1.0)
        timing = engine.time(subject, variant, config, window, scenario)
        points.append(
            {
                "target_qps": rate,
                "achieved_qps": timing.achieved_qps,
                "latency_p99_ms": (timing.serving or {}).get("latency_p99_ms"),
                "valid": timing.valid,
            }
        )
        print(f"    {config.label():<48} {rate:>8.1f} q/s  p99 {points[-1]['latency_p99_ms']}")
    return points


def plot(curves: dict[str, list[dict[str, Any]]], slo: float, out: Path) -> None:
    """Rate vs p99 for each configuration, the objective as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for name, points in curves.items():
        xs = [p["target_qps"] for p in points if p["latency_p99_ms"] is not None]
        ys = [p["latency_p99_ms"] for p in points if p["latency_p99_ms"] is not None]
        ax.plot(xs, ys, marker="o", label=name)
    ax.axhline(slo, color="grey", linestyle="--", label=f"objective: p99 <= {slo:g} ms")
    ax.set_yscale("log")
    ax.set_xlabel("offered rate (queries per second, Poisson arrivals)")
    ax.set_ylabel("p99 latency (ms, from scheduled arrival)")
    ax.set_title("demo:digits-midcnn under load: rate vs p99")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo:digits-midcnn")
    parser.add_argument("--trials", type=int, default=24, help="trials of the serving study")
    parser.add_argument("--quick-trials", type=int, default=27)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--plot", type=Path, default=DOCS / "serving-curve.png")
    args = parser.parse_args()
    serving_space = load_space("serving")[0]
    scenario = serving_space.measurement.scenario
    slo = scenario.slo_p99_ms
    assert slo is not None

    with tempfile.TemporaryDirectory(prefix="infertune-serving-") as tmp:
        print(f"{args.model}: quick study (single stream, {args.quick_trials} trials) ...")
        single = best_point(
            study_front(args.model, "quick", args.quick_trials, Path(tmp)), "latency_p95_ms", True
        )
        print(f"{args.model}: serving study ({args.trials} trials) ...")
        serving = best_point(
            study_front(args.model, "serving", args.trials, Path(tmp)), "max_qps_at_slo", False
        )
    configs = {
        "single-stream winner, as deployed": InferenceConfig.parse(**single["config"]),
        "serving study's best": InferenceConfig.parse(**serving["config"]),
    }
    runs: dict[str, list[Any]] = {name: [] for name in configs}
    window = MeasurementWindow()
    with Engine(load_settings()) as engine:
        subject = engine.resolve(args.model)
        for repeat in range(args.repeats):
            for name, config in configs.items():
                result = engine.bench(subject, config, window, scenario=scenario)
                runs[name].append(result)
                print(
                    f"  [{repeat + 1}/{args.repeats}] {name:<36} {config.label():<48} "
                    f"max {result.max_qps_at_slo or 0:.1f} q/s at p99 <= {slo:g} ms",
                    flush=True,
                )
        ceiling = max(r.max_qps_at_slo or 0 for results in runs.values() for r in results)
        rates = [round(ceiling * f, 1) for f in (0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.1, 1.25)]
        curves = {
            f"{name}: {config.label()}": curve(engine, subject, config, rates)
            for name, config in configs.items()
        }
    rows = {}
    for name, results in runs.items():
        rates_met = [r.max_qps_at_slo or 0.0 for r in results]
        rows[name] = {
            "config": configs[name].model_dump(mode="json"),
            "label": configs[name].label(),
            "max_qps_at_slo": statistics.median(rates_met),
            "max_qps_at_slo_spread": [min(rates_met), max(rates_met)],
            "cost_per_million": statistics.median(r.cost_per_million or 0.0 for r in results),
            "quality": results[0].quality,
            "all_valid": all(r.valid for r in results),
        }
    single_row, serving_row = rows.values()
    gain = serving_row["max_qps_at_slo"] / single_row["max_qps_at_slo"]
    print(f"\n{args.model}: requests per second at p99 <= {slo:g} ms, medians of {args.repeats}")
    for name, row in rows.items():
        print(
            f"{name:<36} {row['label']:<48} {row['max_qps_at_slo']:>9.1f} q/s  "
            f"${row['cost_per_million']:.4f}/M  quality {row['quality']:.4f}"
        )
    print(f"serving study's best: {gain:.2f}x the rate of the single-stream winner")
    plot(curves, slo, args.plot)
    write_results(
        args.out,
        "serving",
        args.model,
        {
            "slo_p99_ms": slo,
            "trials": args.trials,
            "quick_trials": args.quick_trials,
            "repeats": args.repeats,
            "single_stream_front_best": single,
            "serving_front_best": serving,
            "rows": rows,
            "gain": gain,
            "curves": curves,
        },
    )


if __name__ == "__main__":
    main()
