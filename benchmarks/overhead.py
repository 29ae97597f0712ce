"""Platform overhead and front stability of a real study, run through the CLI.

Runs ``infertune tune`` twice in a fresh home folder (the demo model is shared, not
retrained): a *cold* study that builds every variant, then a *warm* study with the same
space under another name, where every variant and accuracy comes from the cache. For each,
the trials' wall time is split into build, accuracy, timing, sampling/storage, tracking and
process start (``infertune.tuning.phases``), with the variant cache hit rate. Then
``infertune verify`` runs twice on the cold study: is the verified front the same set?

Goal (issue 4): sampling/storage + tracking + process start < 5% of a trial's wall time.

    python benchmarks/overhead.py [--model demo:digits-midcnn] [--trials 15] [--space quick]

Prints a table and writes ``benchmarks/results/overhead-<model>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _results import write_results

from infertune.config import load_settings
from infertune.measure.engine import Engine
from infertune.tuning import queries
from infertune.tuning.phases import PHASES

CLI = [sys.executable, "-m", "infertune"]


def run_cli(home: Path, *args: str) -> tuple[dict[str, Any], float]:
    """Run one CLI command with ``--json``; its parsed output and wall seconds."""
    start = time.perf_counter()
    done = subprocess.run(
        [*CLI, "--home", str(home), *args, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout), wall


def study_overhead(home: Path, name: str) -> dict[str, Any]:
    """The phase split and cache hit rate of one study in ``home``."""
    url = f"sqlite:///{home / 'infertune.db'}"
    return queries.overhead(queries.load(name, url))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo:digits-midcnn")
    parser.add_argument("--space", default="quick")
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    settings = load_settings()
    if args.model.startswith("demo:"):
        with Engine(settings) as engine:  # train the demo once, outside the figures
            engine.resolve(args.model)
    with tempfile.TemporaryDirectory(prefix="infertune-overhead-") as tmp:
        home = Path(tmp)
        if settings.demo_dir.is_dir():
            os.symlink(settings.demo_dir, home / "demo")
        studies: dict[str, Any] = {}
        for kind in ("cold", "warm"):
            name = f"overhead-{kind}"
            print(f"{kind} study: {args.trials} trials of {args.model} ...", flush=True)
            _, wall = run_cli(
                home,
                "tune",
                args.model,
                "--space",
                args.space,
                "--trials",
                str(args.trials),
                "--study",
                name,
                "--no-verify",
            )
            studies[kind] = {"cli_wall_s": wall, **study_overhead(home, name)}
        verifications = []
        for round_ in (1, 2):
            print(f"verify round {round_} ...", flush=True)
            shown, wall = run_cli(home, "verify", "overhead-cold")
            verifications.append(
                {"wall_s": wall, "kept": sorted(p["number"] for p in shown["points"])}
            )
    same_front = verifications[0]["kept"] == verifications[1]["kept"]

    print(f"\n{args.model}, space {args.space}, {args.trials} trials: share of trial wall time")
    header = f"{'study':<6} {'wall s':>7} " + " ".join(f"{p:>16}" for p in PHASES)
    print(header + f" {'overhead':>9} {'cache hits':>10}")
    for kind, s in studies.items():
        shares = " ".join(f"{100 * s['share'][p]:>9.1f}% {s['seconds'][p]:>5.1f}s" for p in PHASES)
        hit_rate = s["variant_cache_hit_rate"]
        print(
            f"{kind:<6} {s['wall_s']:>7.1f} {shares} {100 * s['overhead_share']:>8.1f}% "
            f"{'-' if hit_rate is None else f'{100 * hit_rate:.0f}%':>10}"
        )
    for i, v in enumerate(verifications, 1):
        print(f"verify {i}: kept trials {v['kept']} ({v['wall_s']:.0f} s)")
    print(f"verified front the same set both times: {same_front}")
    write_results(
        args.out,
        "overhead",
        args.model,
        {
            "space": args.space,
            "trials": args.trials,
            "studies": studies,
            "verifications": verifications,
            "verified_front_stable": same_front,
            "goal_overhead_share": 0.05,
        },
    )


if __name__ == "__main__":
    main()
