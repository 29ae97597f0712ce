"""The worker side of the protocol: ``python -m infertune.workers.server``.

Reads one JSON request per line on stdin and answers on the original stdout with JSON lines:
any number of ``{"event": "progress" | "warning", ...}`` lines, then exactly one
``{"event": "result", "result": ...}`` or ``{"event": "error", ...}``. Anything else a library
prints to stdout is redirected to stderr so it cannot corrupt the protocol.

Each request is validated into its typed model (:mod:`infertune.workers.protocol`) before
its handler runs; the handler returns the typed response. Handlers are named
``"module:function"`` and imported on first use, so a LiteRT measurement worker never
imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import IO, Any

from pydantic import ValidationError

from infertune.exceptions import InfertuneError
from infertune.workers import startup
from infertune.workers.protocol import (
    REQUESTS,
    Done,
    Message,
    PingRequest,
    PingResult,
    SleepRequest,
)

#: Operation name -> "module:function". Each function takes ``ctx`` and the operation's
#: request model (:data:`infertune.workers.protocol.REQUESTS`) and returns its response.
HANDLERS: dict[str, str] = {
    "ping": "infertune.workers.server:ping",
    "sleep": "infertune.workers.server:sleep",
    "model.inspect": "infertune.models.inspect:inspect_model_op",
    "model.select_output": "infertune.models.inspect:select_output_op",
    "model.predict": "infertune.measure.runner:predict_op",
    "measure.load": "infertune.measure.runner:load_op",
    "measure.latency": "infertune.measure.runner:latency_op",
    "measure.serve": "infertune.measure.runner:serve_op",
    "variant.prune": "infertune.knobs.pruning:prune_op",
    "variant.build": "infertune.runtimes.build:build_op",
    "demo.train": "infertune.models.demo_training:train_op",
}


class WorkerContext:
    """Passed to every handler: reports progress and warnings back to the caller."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def emit(self, event: dict[str, Any]) -> None:
        """Send one protocol line to the caller."""
        self._out.write(json.dumps(event) + "\n")
        self._out.flush()

    def progress(self, task: str, completed: float, total: float | None = None) -> None:
        """Report progress of a long step (``task`` is a short description)."""
        self.emit({"event": "progress", "task": task, "completed": completed, "total": total})

    def warning(self, message: str) -> None:
        """Report something the user should know that does not stop the work."""
        self.emit({"event": "warning", "message": message})


def ping(ctx: WorkerContext, request: PingRequest) -> PingResult:
    """Answer with the worker's pid, thread setting and imported modules (health check)."""
    return PingResult(
        pid=os.getpid(),
        threads=os.environ.get("INFERTUNE_WORKER_THREADS"),
        imported=[name for name in request.modules if name in sys.modules],
    )


def sleep(ctx: WorkerContext, request: SleepRequest) -> Done:
    """Sleep, for diagnostics and for tests of the hang/kill path."""
    time.sleep(request.seconds)
    return Done()


_TRACEBACK_MARKERS = ("Traceback", 'File "', "defined at", "Stack trace", "Detected at node")


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line (TensorFlow errors carry whole tracebacks)."""
    kept = []
    for line in str(exc).strip().splitlines():
        if line.lstrip().startswith(_TRACEBACK_MARKERS):
            break
        kept.append(line.strip())
    text = " ".join(" ".join(kept).split())
    return (text[:limit] + ("…" if len(text) > limit else "")) or type(exc).__name__


def timed_import_handler(op: str) -> Callable[..., Any]:
    """The handler function of ``op``, its module imported on first use (start-up cost)."""
    try:
        target = HANDLERS[op]
    except KeyError:
        raise InfertuneError(f"Unknown worker operation '{op}'.") from None
    module_name, func_name = target.split(":")
    func: Callable[..., Any] = getattr(startup.timed_import(module_name), func_name)
    return func


def parse_request(op: str, params: dict[str, Any]) -> Message:
    """Validate ``params`` into ``op``'s request model.

    Raises:
        InfertuneError: ``op`` is not an operation.
        TypeError: ``params`` do not fit the request (a caller's bug, like a wrong keyword).
    """
    try:
        model = REQUESTS[op]
    except KeyError:
        raise InfertuneError(f"Unknown worker operation '{op}'.") from None
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise TypeError(f"invalid request for '{op}': {where}: {first['msg']}") from None


def serve(requests: IO[str], out: IO[str]) -> None:
    """Answer requests until stdin closes."""
    ctx = WorkerContext(out)
    ctx.emit({"event": "ready"})
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            parsed = parse_request(request["op"], request.get("params", {}))
            handler = timed_import_handler(request["op"])
            result = handler(ctx, parsed)
            answer = result.model_dump(mode="json")
            ctx.emit({"event": "result", "result": answer, "startup_s": startup.take()})
        except InfertuneError as exc:
            ctx.emit({"event": "error", "type": type(exc).__name__, "message": one_line(exc)})
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            ctx.emit(
                {
                    "event": "error",
                    "type": "unexpected",
                    "message": f"{type(exc).__name__}: {one_line(exc)}",
                }
            )


def _exit_with_parent() -> None:
    """End this worker if its caller dies (it runs in its own session, so no signal comes)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def main() -> None:
    """Entry point of a worker process."""
    _exit_with_parent()
    # Keep the protocol channel private: fd 1 becomes stderr for everything else.
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    with os.fdopen(protocol_fd, "w", buffering=1) as out:
        serve(sys.stdin, out)


if __name__ == "__main__":
    main()
