"""Terminal output: progress of long steps on stderr, result tables on stdout."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
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

stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)


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

    def __call__(self, event: dict[str, Any]) -> None:
        """Show one engine event."""
        kind = event.get("event")
        if kind == "warning":
            self._progress.console.print(f"[yellow]warning:[/] {event['message']}")
        elif kind == "step" and not self.quiet:
            self._progress.console.print(f"[dim]· {event['task']}[/]")
        elif kind == "progress":
            name = str(event["task"])
            total = event.get("total")
            if name not in self._tasks:
                self._tasks[name] = self._progress.add_task(name, total=total)
            self._progress.update(
                self._tasks[name], completed=event.get("completed", 0), total=total
            )


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
        table.add_row(
            "latency p50 / p90 / p95 / p99",
            " / ".join(_fmt(result[f"latency_p{p}_ms"]) for p in (50, 90, 95, 99)) + " ms",
        )
        table.add_row(
            "latency mean ± std",
            f"{_fmt(result['latency_mean_ms'])} ± {_fmt(m['latency_std_ms'])} ms",
        )
        table.add_row("throughput", f"{result['throughput_sps']:.1f} samples/s")
    else:
        table.add_row("latency", f"[red]INVALID[/]: {result['invalid_reason']}")
    table.add_row(
        "timed calls",
        f"{m['timed_calls']} in {m['timed_s']:.2f} s (after warm-up; load {m['load_s']:.2f} s)",
    )
    task = result["task"]
    if task["kind"] == "classification":
        table.add_row(
            "accuracy (top-1)", f"{result['accuracy']:.4f} on {result['eval_samples']} samples"
        )
        table.add_row("agreement with fp32", _fmt(result["agreement"], 4))
    else:
        table.add_row("MAE", _fmt(result["mae"], 5))
        table.add_row("MAE vs fp32 model", _fmt(result["reference_mae"], 5))
    table.add_row("model size", f"{result['model_size_mb']:.3f} MiB")
    table.add_row("peak memory (worker RSS)", f"{result['peak_memory_mb']:.0f} MiB")
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
    origin = "cache hit" if variant["cache_hit"] else f"built in {variant['build_s']:.1f} s"
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
