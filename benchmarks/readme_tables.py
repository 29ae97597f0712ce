"""Print the README's benchmark tables (markdown) from the JSON in benchmarks/results.

    python benchmarks/readme_tables.py [--model demo:digits-midcnn]

Paste the output into README.md's "Measured on this project's machine" section, so the
README always shows the latest measured numbers with their date and machine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def load(name: str, model: str) -> dict[str, Any] | None:
    """One results file, or None if that benchmark has not run."""
    path = RESULTS / f"{name}-{model.replace(':', '-')}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def machine(result: dict[str, Any]) -> str:
    """Where and when a result was measured."""
    hw = result["fingerprint"]["hardware"]
    libs = result["fingerprint"]["software"]["libraries"]
    flags = ", ".join(f for f in hw["cpu_flags"] if f.startswith(("avx", "amx", "fma")))
    return (
        f"{hw['cpu_model']}, {hw['usable_cores']} cores ({flags}), tensorflow-cpu "
        f"{libs.get('tensorflow-cpu', '?')}, ai-edge-litert {libs.get('ai-edge-litert', '?')}, "
        f"measured {result['measured_at'][:10]}"
    )


def speedup(model: str) -> None:
    """The knob-by-knob table."""
    result = load("speedup", model)
    if result is None:
        return
    print(f"Speed-up ({machine(result)}):\n")
    print("| configuration | p50 ms | p95 ms | speed-up (p50) | accuracy | agreement | size MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in result["rows"]:
        print(
            f"| {r['label']} | {r['latency_p50_ms']:.2f} | {r['latency_p95_ms']:.2f} | "
            f"{r['speedup_vs_baseline']:.2f}x | {r['accuracy']:.4f} | {r['agreement']:.4f} | "
            f"{r['model_size_mb']:.3f} |"
        )
    print()


def best(models: list[str]) -> None:
    """The tuned best within a 1% accuracy drop, per demo model."""
    rows = [(m, load("best-speedup", m)) for m in models]
    rows = [(m, r) for m, r in rows if r is not None]
    if not rows:
        return
    print(f"Tuned best within a 1% accuracy drop ({machine(rows[0][1])}):\n")
    print(
        "| model | tuned best (verified) | p50 ms | accuracy | vs baseline p50 / p95 | "
        "vs LiteRT fp32 p50 / p95 | tuned best, tf/tflite only | vs it p50 / p95 |"
    )
    print("|---|---|---:|---:|---:|---:|---|---:|")
    for model, result in rows:
        b = result["rows"]["tuned best"]
        base = result["rows"]["baseline (tf fp32)"]
        before = result["rows"].get("tuned best, tf/tflite")
        versus = (
            (
                f"{before['label']} ({before['latency_p50_ms']:.3f} ms) | "
                f"{b['speedup_p50_vs_before']:.2f}x / {b['speedup_p95_vs_before']:.2f}x"
            )
            if before
            else "— | —"
        )
        print(
            f"| {model} | {b['label']} | {b['latency_p50_ms']:.3f} | {b['accuracy']:.4f} "
            f"(baseline {base['accuracy']:.4f}) | {b['speedup_p50_vs_baseline']:.2f}x / "
            f"{b['speedup_p95_vs_baseline']:.2f}x | {b['speedup_p50_vs_by']:.2f}x / "
            f"{b['speedup_p95_vs_by']:.2f}x | {versus} |"
        )
    print()


def search(model: str) -> None:
    """Hypervolume ratio per sampler and budget."""
    result = load("search-efficiency", model)
    if result is None:
        return
    budgets = sorted({r["budget"] for r in result["rows"]})
    print(
        f"Search efficiency ({result['configurations']} configurations, {result['seeds']} "
        f"seeds; {machine(result)}):\n"
    )
    print("| sampler | " + " | ".join(f"{b} trials" for b in budgets) + " |")
    print("|---|" + "---:|" * len(budgets))
    for sampler in dict.fromkeys(r["sampler"] for r in result["rows"]):
        cells = []
        for b in budgets:
            (r,) = [x for x in result["rows"] if x["sampler"] == sampler and x["budget"] == b]
            cells.append(
                f"{r['hv_ratio_mean']:.3f} ({r['hv_ratio_min']:.2f}-{r['hv_ratio_max']:.2f})"
            )
        print(f"| {sampler} | " + " | ".join(cells) + " |")
    print()


def repeatability(model: str) -> None:
    """CV of p50/p95 per window."""
    result = load("repeatability", model)
    if result is None:
        return
    names = [f"{w['min_duration_s']:g} s / {w['min_calls']} calls" for w in result["windows"]]
    print(f"Repeatability, CV of p50 / p95 over {result['repeats']} repeats ({machine(result)}):\n")
    print("| configuration | p50 ms | fresh processes | " + " | ".join(names) + " |")
    print("|---|---:|---:|" + "---:|" * len(names))
    for r in result["rows"]:
        p50 = sorted(r["fresh"]["p50_ms"])[len(r["fresh"]["p50_ms"]) // 2]
        cells = [f"{w['cv_p50_pct']:.1f}% / {w['cv_p95_pct']:.1f}%" for w in r["warm"]]
        fresh = f"{r['fresh']['cv_p50_pct']:.1f}% / {r['fresh']['cv_p95_pct']:.1f}%"
        print(f"| {r['label']} | {p50:.2f} | {fresh} | " + " | ".join(cells) + " |")
    print()


def overhead(model: str) -> None:
    """Where a study's trial time goes."""
    result = load("overhead", model)
    if result is None:
        return
    phases = ("build", "accuracy", "timing", "sampling_storage", "tracking", "process_start")
    where = machine(result)
    print(f"Platform overhead, {result['trials']} trials of `{result['space']}` ({where}):\n")
    print("| study | wall s | " + " | ".join(phases) + " | overhead | variant cache hits |")
    print("|---|---:|" + "---:|" * (len(phases) + 2))
    for kind, s in result["studies"].items():
        cells = [f"{100 * s['share'][p]:.1f}%" for p in phases]
        hits = s["variant_cache_hit_rate"]
        print(
            f"| {kind} | {s['wall_s']:.1f} | "
            + " | ".join(cells)
            + f" | **{100 * s['overhead_share']:.1f}%** | "
            + ("—" if hits is None else f"{100 * hits:.0f}%")
            + " |"
        )
    kept = [v["kept"] for v in result["verifications"]]
    print(
        f"\nVerify run twice kept trials {kept[0]} and {kept[1]}: "
        f"{'the same set' if result['verified_front_stable'] else 'different sets'}.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo:digits-midcnn")
    parser.add_argument("--models", default="demo:digits-cnn,demo:digits-midcnn")
    args = parser.parse_args()
    speedup(args.model)
    best(args.models.split(","))
    search(args.model)
    repeatability(args.model)
    overhead(args.model)


if __name__ == "__main__":
    main()
