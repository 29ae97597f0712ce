"""Terminal output: progress of long steps on stderr, result tables on stdout."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

__all__ = [
    "Reporter",
    "bench_table",
    "describe_config",
    "format_every",
    "front_caption",
    "front_table",
    "registry_tables",
    "schedules_table",
    "stderr",
    "stdout",
    "studies_table",
    "trials_table",
]

# Piped output (files, CI logs) gets room for the tables instead of rich's 80 columns.
stdout = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
stderr = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 140)


class Reporter:
    """Shows engine events: steps as lines, progress as live bars, warnings in yellow.

    Everything goes to stderr so that ``--json`` output on stdout stays clean.
    """

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=stderr,
            transient=True,
        )
        self._tasks: dict[str, TaskID] = {}
        self._logged: dict[str, int] = {}
        # In a terminal the current step is one live status line; in a log, each step is
        # printed once.
        self._status = self._progress.add_task("", total=None, visible=False)

    def __enter__(self) -> Reporter:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def trials(
        self,
        total: int,
        done: int,
        scenario: str = "single_stream",
        slo_p99_ms: float | None = None,
    ) -> Any:
        """A progress bar over a study's trial budget; returns the per-trial callback.

        Each finished trial gets a line with its scenario's headline figure: p95 latency,
        samples per second (offline), or the highest rate meeting the p99 objective.
        """
        task = self._progress.add_task("trials", total=total, completed=done)
        state = {"done": done}

        def on_trial(trial: Any) -> None:
            attrs = trial.user_attrs
            if not attrs.get("uncounted_repeat"):  # such a repeat does not use the budget
                state["done"] += 1
            self._progress.update(task, completed=state["done"])
            fig = attrs.get("figures") or {}
            knobs = describe_config(attrs.get("config"))
            if trial.state.name == "COMPLETE":
                speedup = attrs.get("speedup_p95") or 0.0
                if slo_p99_ms is not None and fig.get("max_qps_at_slo") is not None:
                    headline = f"{fig['max_qps_at_slo']:.0f} q/s at p99 <= {slo_p99_ms:g} ms"
                elif scenario == "offline" and fig.get("throughput_sps") is not None:
                    headline = f"{fig['throughput_sps']:.0f} samples/s"
                else:
                    headline = f"p95 {fig['latency_p95_ms']:.3f} ms"
                tail = f"{headline} ({speedup:.2f}x), {_quality_words(fig)}" + (
                    "" if attrs.get("feasible") else " [yellow]infeasible[/]"
                )
            else:
                tail = attrs.get("fail_reason") or attrs.get("pruned_reason") or ""
            if attrs.get("duplicate_of") is not None:
                counted = "" if attrs.get("uncounted_repeat") else ", counted"
                tail += f" (same as trial {attrs['duplicate_of']}: not measured again{counted})"
            self._progress.console.print(
                f"trial {trial.number:>3} {trial.state.name:<8} {knobs:<34} {tail}"
            )

        return on_trial

    def __call__(self, event: dict[str, Any]) -> None:
        """Show one engine event."""
        kind = event.get("event")
        if kind == "warning":
            self._progress.console.print(f"[yellow]warning:[/] {event['message']}")
        elif kind == "step" and not self.quiet:
            if stderr.is_terminal:
                self._progress.update(
                    self._status, description=f"[dim]{event['task']}[/]", visible=True
                )
            else:
                self._progress.console.print(f"· {event['task']}")
        elif kind == "progress":
            name = str(event["task"])
            total = event.get("total")
            if not stderr.is_terminal and total:
                # In a log, a line per quarter of a long step instead of a live bar.
                quarter = int(4 * float(event.get("completed", 0)) / float(total))
                if quarter > self._logged.get(name, 0):
                    self._logged[name] = quarter
                    self._progress.console.print(f"· {name}: {25 * quarter}%")
            if name not in self._tasks:
                self._tasks[name] = self._progress.add_task(name, total=total)
            self._progress.update(
                self._tasks[name], completed=event.get("completed", 0), total=total
            )


def _is_regression(figures: dict[str, Any]) -> bool:
    """Figures of a regression model: an MAE and no accuracy."""
    return figures.get("accuracy") is None and figures.get("mae") is not None


def _quality_words(figures: dict[str, Any]) -> str:
    if _is_regression(figures):
        return f"MAE {_fmt(figures.get('mae'), 4)}"
    return f"accuracy {_fmt(figures.get('accuracy'), 4)}"


def _quality_columns(figures: dict[str, Any]) -> tuple[str, str]:
    """The two quality columns of a front: accuracy and agreement, or their regression peers."""
    return ("mae", "rel_mae_vs_fp32") if _is_regression(figures) else ("accuracy", "agreement")


def _fmt(value: Any, digits: int = 3, suffix: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def bench_table(result: dict[str, Any]) -> Table:
    """The bench result as a two-column table."""
    cfg = result["config"]
    table = Table(
        title=f"infertune bench — {result['model']}", show_header=False, title_justify="left"
    )
    table.add_column("figure", style="bold")
    table.add_column("value")
    threads = cfg["threads"] if cfg["threads"] is not None else "default (all cores)"
    table.add_row(
        "configuration",
        f"runtime={cfg['runtime']}  precision={cfg['precision']}  "
        f"prune_ratio={cfg['prune_ratio']}  batch_size={cfg['batch_size']}  "
        f"threads={threads}",
    )
    m = result["measurement"]
    if result["valid"]:
        per_call = f" per call of {cfg['batch_size']}" if cfg["batch_size"] != 1 else ""
        table.add_row(
            f"latency p50 / p90 / p95 / p99{per_call}",
            " / ".join(_fmt(result[f"latency_p{p}_ms"]) for p in (50, 90, 95, 99)) + " ms",
        )
        bounds = [
            _fmt(m.get(f"latency_p{p}_bound_ms")) + " ms"
            if m.get(f"latency_p{p}_bound_ms") is not None
            else f"needs {need} calls"
            for p, need in ((95, 130), (99, 662))
        ]
        if result.get("scenario", "single_stream") == "single_stream":
            table.add_row("p95 / p99 under (99% confidence)", " / ".join(bounds))
        table.add_row(
            "latency mean ± std",
            f"{_fmt(result['latency_mean_ms'])} ± {_fmt(m['latency_std_ms'])} ms",
        )
        table.add_row("throughput", f"{result['throughput_sps']:.1f} samples/s")
    else:
        table.add_row("latency", f"[red]INVALID[/]: {result['invalid_reason']}")
    if m.get("serving"):
        unit = "queries" if result.get("scenario") == "server" else "calls"
        table.add_row("timed", f"{m['timed_calls']} {unit} in {m['timed_s']:.2f} s")
    else:
        load = f"; load {m['load_s']:.2f} s" if m.get("load_s") is not None else ""
        table.add_row(
            "timed calls", f"{m['timed_calls']} in {m['timed_s']:.2f} s (after warm-up{load})"
        )
    from infertune.measure.accuracy import describe_task  # numpy: only bench needs it

    task = result["task"]
    table.add_row("task", describe_task(task))
    if task["kind"] == "classification":
        table.add_row(
            "accuracy (top-1)", f"{result['accuracy']:.4f} on {result['eval_samples']} samples"
        )
        table.add_row("agreement with fp32", _fmt(result["agreement"], 4))
    else:
        table.add_row(
            "MAE / RMSE / R²",
            f"{_fmt(result['mae'], 5)} / {_fmt(result.get('rmse'), 5)} / "
            f"{_fmt(result.get('r2'), 4)} on {result['eval_samples']} samples",
        )
        table.add_row(
            "MAE vs fp32 model",
            f"{_fmt(result['reference_mae'], 5)} "
            f"({_fmt(result.get('rel_mae_vs_fp32'), 4)} of the fp32 model's MAE)",
        )
    table.add_row("quality", _fmt(result.get("quality"), 4))
    table.add_row("model size", f"{result['model_size_mb']:.3f} MiB")
    if result.get("gflops") is not None:
        share = (
            "" if result["peak_pct"] is None else f" = {result['peak_pct']:.1f}% of nominal peak"
        )
        table.add_row(
            "compute",
            f"{result['macs'] / 1e6:.1f}M MACs/sample · {result['gflops']:.1f} GFLOP/s{share}",
        )
    table.add_row("peak memory (worker RSS)", f"{result['peak_memory_mb']:.0f} MiB")
    serving = m.get("serving")
    if serving:
        table.add_row("scenario", _serving_words(result, serving))
    if result.get("cost_per_million") is not None:
        table.add_row("cost", f"${result['cost_per_million']:.4f} per million inferences")
    contention = m.get("contention")
    if contention:
        state = "[yellow]disturbed[/]" if contention["disturbed"] else "quiet"
        table.add_row(
            "machine while timing",
            f"{state}: other processes {contention['other_cores']:.2f} cores, steal "
            f"{contention['steal_pct']:.1f}%, {contention['attempts']} attempt(s)",
        )
    variant = result["variant"]
    pruning = variant["pruning"]
    if pruning:
        table.add_row(
            "parameters",
            f"{pruning['params_before']:,} → {pruning['params_after']:,}"
            f" (fine-tuned {pruning['finetune_epochs']} epochs)",
        )
    elif variant["params"]:
        table.add_row("parameters", f"{variant['params']:,}")
    if variant["cache_hit"]:
        origin = "cache hit"
    elif variant["build_s"]:
        origin = f"built in {variant['build_s']:.1f} s"
    else:
        origin = "the source model"
    table.add_row("variant", f"{origin} — {variant['path']}")
    settings = ", ".join(f"{k}={v}" for k, v in m["runtime_settings"].items())
    table.add_row("runtime settings", settings)
    fp = result["fingerprint"]
    table.add_row(
        "host",
        f"{fp['hardware']['cpu_model']} · {fp['hardware']['usable_cores']} "
        f"cores · hardware id {fp['hardware_id']}",
    )
    return table


def _serving_words(result: dict[str, Any], serving: dict[str, Any]) -> str:
    """The load a result was measured under, in one line."""
    who = f"{serving['instances']} instance(s) x {serving['threads_per_instance'] or 'all'} threads"
    if result["scenario"] == "offline":
        return f"offline: {who}, batches of {serving['max_batch_size']}"
    words = (
        f"server: {who}, batches up to {serving['max_batch_size']} "
        f"(queue delay {serving['max_queue_delay_ms']:g} ms, mean batch "
        f"{serving.get('mean_batch_size', 0):.2f})"
    )
    if result.get("max_qps_at_slo") is not None:
        words += (
            f"; max {result['max_qps_at_slo']:.1f} queries/s at p99 <= {result['slo_p99_ms']:g} ms"
        )
    elif result.get("achieved_qps") is not None:
        words += f"; {result['achieved_qps']:.1f} of {result['target_qps']:.1f} queries/s"
    return words


def describe_config(config: dict[str, Any] | None) -> str:
    """A configuration in a few words; default batch size and threads are left out."""
    if not config:
        return "—"
    words = f"{config['runtime']} {config['precision']}"
    if config["prune_ratio"]:
        words += f", prune {config['prune_ratio']:g}"
    if config["batch_size"] != 1:
        words += f", batch {config['batch_size']}"
    if config["threads"] is not None:
        words += f", {config['threads']} thr"
    return words


def _with_interval(value: Any, interval: Any, digits: int = 3) -> str:
    """``0.235 [0.231\u20130.240]``: a median with its confidence interval (dimmed)."""
    text = _fmt(value, digits)
    if interval:
        span = f"[{_fmt(interval[0], digits)}\u2013{_fmt(interval[1], digits)}]"  # an en dash
        text += " [dim]" + escape(span) + "[/]"
    return text


def front_caption(front: dict[str, Any]) -> str:
    """How sure the front is: the verification's method and coverage, or that it has none."""
    check = front.get("verification")
    if not front["verified"] or not check:
        return (
            "[dim]single measurements from the search: no intervals, and differences under "
            "~5% may be noise (run `infertune verify`)[/]"
        )
    lines = [
        "[dim]"
        + escape(f"p95 [interval]: {check['method']}; tie: no objective tells them apart")
        + "[/]"
    ]
    if check.get("warning"):
        lines.append(f"[yellow]warning:[/] {escape(check['warning'])}")
    if check.get("disturbed_timings"):
        lines.append(
            f"[yellow]warning:[/] {check['disturbed_timings']} of the verification's timings "
            "were disturbed by other processes even after re-timing (the machine was busy): "
            "intervals may be wide or shifted; verify again on a quiet machine"
        )
    dropped = front.get("dropped_by_verification") or []
    if dropped:
        lines.append(
            "[dim]dropped by verification: "
            + ", ".join(
                f"#{d['number']}"
                + (
                    f" (surely dominated by {', '.join(f'#{n}' for n in d['dominated_by'])})"
                    if d.get("dominated_by")
                    else ""
                )
                for d in dropped
            )
            + "[/]"
        )
    return "\n".join(lines)


#: Under load, the figure a front is read by, and its column head.
_LOAD_FIGURES = {
    "max_qps_at_slo": "max q/s at SLO",
    "achieved_qps": "achieved q/s",
    "throughput_sps": "samples/s",
}


def front_table(front: dict[str, Any]) -> Table:
    """The front, one configuration per row, with the baseline for reference.

    A verified front shows each p95 with its confidence interval and the kept points each
    one is tied with; the caption says how the intervals were made and how sure they are.
    """
    state = (
        f"verified {front['verified_at']}"
        if front["verified"]
        else "[yellow]not verified[/] (run `infertune verify`)"
    )
    table = Table(
        title=f"Pareto front — study {front['study']} ({state})",
        title_justify="left",
        caption=front_caption(front),
        caption_justify="left",
    )
    table.add_column("trial", justify="right")
    table.add_column("configuration")
    base = front["baseline"]
    sample: dict[str, Any] = base or next((p["figures"] for p in front["points"]), {})
    quality, versus = _quality_columns(sample)
    heads = ("MAE", "vs fp32") if quality == "mae" else ("accuracy", "agree")
    p95_head = escape("p95 ms [interval]") if front["verified"] else "p95 ms"
    load = next((f for f in _LOAD_FIGURES if f in front.get("objectives", {})), None)
    load_heads = (_LOAD_FIGURES[load],) if load else ()
    speedup_head = "speed-up" if load else "speed-up (p95)"
    for name in ("p50 ms", p95_head, *load_heads, speedup_head, *heads, "MiB"):
        table.add_column(name, justify="right")
    table.add_column("tied with")
    check = front.get("verification") or {}
    if base:
        table.add_row(
            "base",
            "tf fp32 (baseline)",
            _fmt(base["latency_p50_ms"]),
            _with_interval(
                base["latency_p95_ms"],
                (check.get("baseline_intervals") or {}).get("latency_p95_ms"),
            ),
            *((_fmt(base.get(load), 1),) if load else ()),
            "1.00x",
            _fmt(base.get(quality), 4),
            _fmt(base.get(versus), 4),
            _fmt(base["model_size_mb"]),
            "",
            style="dim",
        )
    for point in front["points"]:
        fig = point["figures"]
        intervals = point.get("intervals") or {}
        table.add_row(
            str(point["number"]),
            describe_config(point["config"]),
            _fmt(fig["latency_p50_ms"]),
            _with_interval(fig["latency_p95_ms"], intervals.get("latency_p95_ms")),
            *((_with_interval(fig.get(load), intervals.get(load), 1),) if load else ()),
            _fmt(point["speedup_p95"], 2, "x"),
            _fmt(fig.get(quality), 4),
            _fmt(fig.get(versus), 4),
            _fmt(fig["model_size_mb"]),
            "tie: " + ", ".join(f"#{n}" for n in point["ties_with"])
            if point.get("ties_with")
            else "",
        )
    return table


def trials_table(study_name: str, rows: list[dict[str, Any]]) -> Table:
    """Every trial of a study; failed, pruned and infeasible ones dimmed, with the reason."""
    table = Table(title=f"Trials — study {study_name}", title_justify="left")
    regression = any(_is_regression(row["figures"] or {}) for row in rows)
    quality = "mae" if regression else "accuracy"
    for name in (
        "trial",
        "state",
        "configuration",
        "p95 ms",
        "speed-up (p95)",
        "MAE" if regression else "accuracy",
        "% peak",
        "note",
    ):
        table.add_column(name, justify="right" if name in ("trial", "p95 ms", "% peak") else "left")
    for row in rows:
        fig = row["figures"] or {}
        note = row["fail_reason"] or row["pruned_reason"] or "; ".join(row["violations"] or [])
        style = "dim" if row["state"] != "COMPLETE" or row["feasible"] is False else None
        table.add_row(
            str(row["number"]),
            row["state"],
            describe_config(row["config"]),
            _fmt(fig.get("latency_p95_ms")),
            _fmt(row["speedup_p95"], 2, "x"),
            _fmt(fig.get(quality), 4),
            _fmt(fig.get("peak_pct"), 1),
            note,
            style=style,
        )
    return table


def studies_table(studies: list[dict[str, Any]]) -> Table:
    """One row per study."""
    table = Table(title="Studies", title_justify="left")
    for name in (
        "study",
        "model",
        "complete",
        "pruned",
        "failed",
        "running",
        "front",
        "best speed-up (p95)",
        "verified",
        "hardware",
    ):
        table.add_column(name)
    for s in studies:
        t = s["trials"]
        table.add_row(
            s["study"],
            str(s["model"]),
            str(t["COMPLETE"]),
            str(t["PRUNED"]),
            str(t["FAIL"]),
            str(t["RUNNING"]),
            str(s["front_size"]),
            _fmt(s["best_speedup_p95"], 2, "x"),
            "yes" if s["verified"] else "no",
            str(s["hardware_id"]),
        )
    return table


def registry_tables(view: dict[str, Any]) -> list[Table]:
    """A registered model's versions (with aliases) and its promotion history."""
    versions = Table(title=f"{view['registered_model']}: versions", title_justify="left")
    columns = ("version", "aliases", "study", "trial", "configuration", "p95 ms", "quality")
    for column in columns:
        versions.add_column(column)
    for v in view["versions"]:
        versions.add_row(
            v["version"],
            ", ".join(v["aliases"]) or "—",
            v["study"] or "—",
            v["trial"] or "—",
            describe_config(v["config"]),
            _fmt(_float(v["latency_p95_ms"])),
            # Accuracy for a classifier; MAE skill for a regression model (older: accuracy).
            _fmt(_float(v.get("quality") or v["accuracy"]), 4),
        )
    history = Table(title="promotion history", title_justify="left")
    for column in ("when", "action", "alias", "version", "was", "study/trial", "by", "reason"):
        history.add_column(column)
    for h in view["history"]:
        history.add_row(
            (h["at"] or "")[:19].replace("T", " "),
            h["action"] + (" (forced)" if h["forced"] else ""),
            h["alias"],
            h["version"],
            h["previous_version"] or "—",
            f"{h['study']} #{h['trial']}" if h["study"] else "—",
            h["actor"],
            h["reason"] or "—",
        )
    return [versions, history]


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def format_every(seconds: float) -> str:
    """An interval as the user would write it (6h, 30m, 90s)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def schedules_table(rows: list[dict[str, Any]]) -> Table:
    """Schedules with their next and last runs."""
    table = Table(
        title="schedules (they fire while `infertune scheduler` runs)", title_justify="left"
    )
    for column in ("study", "when", "trials", "auto-promote", "next run (UTC)", "last run"):
        table.add_column(column)
    for r in rows:
        when = r["cron"] or f"every {format_every(r['every_s'])}"
        last = r["last_run"]
        last_text = (
            f"{last['started_at'][:19]} {last['status']}"
            + (f": {last['decision']}" if last.get("decision") else "")
            if last
            else "—"
        )
        table.add_row(
            r["study"],
            when + (" (paused)" if r["paused"] else ""),
            str(r["trials"]),
            f"{r['auto_promote']}@{r['alias']} (>{r['min_gain']:.0%})"
            if r["auto_promote"]
            else "—",
            (r["next_run"] or "—")[:19],
            last_text,
        )
    return table
