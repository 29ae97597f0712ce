"""The caller side of the worker protocol: start, talk to, time out and kill a worker."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable
from enum import StrEnum
from typing import Any, cast

from pydantic import ValidationError

from infertune.exceptions import (
    TRANSPORTABLE_ERRORS,
    WorkerCrashed,
    WorkerError,
    WorkerTimeout,
)
from infertune.workers.protocol import Request, ResponseT

EventHandler = Callable[[dict[str, Any]], None]

_LIVE_WORKERS: weakref.WeakSet[WorkerProcess] = weakref.WeakSet()


class WorkerRole(StrEnum):
    """What a worker process is for (it only names the process in messages)."""

    TOOLS = "tools"
    """Inspection, pruning, fine-tuning, conversion, demo training (TensorFlow, default threads)."""
    MEASURE = "measure"
    """Timing and predictions of one runtime with one thread setting."""


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


class WorkerProcess:
    """One worker process, started on first use and reused for further requests.

    Args:
        role: What the worker is for (used in messages).
        threads: Thread setting applied to the runtime inside the worker (``None``: default).
            TensorFlow reads it at start-up, so a worker serves one setting for its lifetime.
    """

    def __init__(self, role: WorkerRole, threads: int | None = None) -> None:
        self.role = role
        self.threads = threads
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None
        self._buffer = b""
        self._spawned_at = 0.0
        self.startup_s = 0.0
        """Seconds spent starting processes and importing runtimes, over this worker's life."""

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """Whether the process is running."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id, once started."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start the process (no-op if it is running)."""
        if self.alive:
            return
        self._discard()
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self.threads is not None:
            env["INFERTUNE_WORKER_THREADS"] = str(self.threads)
        else:
            env.pop("INFERTUNE_WORKER_THREADS", None)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "infertune.workers.server"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            # Own session: Ctrl-C in the terminal reaches the caller only, which then
            # decides; killing the group also ends anything the worker started.
            start_new_session=True,
        )
        self._buffer = b""
        self._spawned_at = time.monotonic()
        _LIVE_WORKERS.add(self)

    def close(self) -> None:
        """Stop the process: politely (stdin closed), then by force."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.close()
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        self._discard()

    def kill(self) -> None:
        """Kill the process and everything it started."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def _discard(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ------------------------------------------------------------------------

    def request(
        self,
        request: Request[ResponseT],
        *,
        timeout: float,
        on_event: EventHandler | None = None,
    ) -> ResponseT:
        """Run one typed operation in the worker and return its typed answer.

        Args:
            request: The operation's request (see :mod:`infertune.workers.protocol`).
            timeout: Seconds the whole operation may take; past it the worker is killed.
            on_event: Receives progress and warning events as they arrive.

        Raises:
            WorkerError: The answer does not fit the operation's response (or see
                :meth:`call` for the other failures).
        """
        raw = self.call(
            request.op, request.model_dump(mode="json"), timeout=timeout, on_event=on_event
        )
        try:
            return cast(ResponseT, type(request).response.model_validate(raw))
        except ValidationError as exc:
            raise WorkerError(
                f"The {self.role} worker answered '{request.op}' with an unexpected result: "
                f"{exc.errors()[0]['loc']} {exc.errors()[0]['msg']}"
            ) from None

    def call(
        self,
        op: str,
        params: dict[str, Any] | None = None,
        *,
        timeout: float,
        on_event: EventHandler | None = None,
    ) -> Any:
        """Run one operation in the worker and return its result.

        Args:
            op: Operation name (see ``infertune.workers.server.HANDLERS``).
            params: The request's fields as JSON (prefer :meth:`request`, which builds them
                from a typed request).
            timeout: Seconds the whole operation may take; past it the worker is killed.
            on_event: Receives progress and warning events as they arrive.

        Raises:
            WorkerTimeout: The operation outlasted ``timeout``; the worker was killed.
            WorkerCrashed: The worker exited during the operation.
            InfertuneError: The operation raised an infertune error (re-raised as its class).
            WorkerError: The operation raised any other exception.
        """
        self.start()
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        line = json.dumps({"op": op, "params": params or {}}) + "\n"
        deadline = time.monotonic() + timeout
        answered = False
        try:
            try:
                proc.stdin.write(line.encode())
                proc.stdin.flush()
            except BrokenPipeError:
                raise self._crashed(op) from None
            while True:
                event = self._next_event(op, deadline, timeout)
                kind = event.get("event")
                if kind == "ready":
                    self.startup_s += time.monotonic() - self._spawned_at
                    continue
                self.startup_s += float(event.get("startup_s", 0.0))
                if kind in ("result", "error"):
                    answered = True
                    if kind == "error":
                        raise self._error_from(op, event)
                    return event.get("result")
                if on_event is not None:
                    on_event(event)
        finally:
            # A worker that answered is in a known state and stays; one left mid-request
            # (timeout, crash, Ctrl-C, a failing event handler) is killed, so the next
            # request starts a fresh process instead of reading a stale answer.
            if not answered:
                self.kill()

    def _next_event(self, op: str, deadline: float, timeout: float) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.kill()
                    raise WorkerTimeout(
                        f"The {self.role} worker did not finish '{op}' within {timeout:.0f} s "
                        "and was killed; raise the time limit if the model is just slow."
                    )
                if not selector.select(remaining):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise self._crashed(op)
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\n", 1)
        try:
            event: dict[str, Any] = json.loads(raw)
        except json.JSONDecodeError:
            raise WorkerError(
                f"The {self.role} worker sent an unreadable answer to '{op}': {raw[:200]!r}"
            ) from None
        return event

    def _crashed(self, op: str) -> WorkerCrashed:
        proc = self._proc
        assert proc is not None
        try:
            returncode = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            returncode = proc.returncode
        tail = self.stderr_tail()
        detail = f"; last output: {tail}" if tail else ""
        return WorkerCrashed(
            f"The {self.role} worker exited with {_describe_exit(returncode)} "
            f"while running '{op}'{detail}"
        )

    def _error_from(self, op: str, event: dict[str, Any]) -> Exception:
        message = str(event.get("message", "unknown error"))
        cls = TRANSPORTABLE_ERRORS.get(str(event.get("type")))
        if cls is not None:
            return cls(message)
        return WorkerError(f"'{op}' failed in the {self.role} worker: {message}")

    def stderr_tail(self, lines: int = 3, limit: int = 400) -> str:
        """The last non-empty lines the worker wrote to stderr, joined on one line."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0, os.SEEK_END)
        size = self._stderr.tell()
        self._stderr.seek(max(0, size - 16384))
        text = self._stderr.read().decode(errors="replace")
        tail = [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]
        return " | ".join(tail)[-limit:]


@atexit.register
def _kill_leftover_workers() -> None:
    for worker in list(_LIVE_WORKERS):
        worker.kill()
