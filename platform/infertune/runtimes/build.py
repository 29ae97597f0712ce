"""The build worker's operation: a runtime's artifact from a (pruned) Keras model."""

from __future__ import annotations

from pathlib import Path

from infertune.runtimes._base import Calibration, Precision
from infertune.runtimes.registry import get_backend
from infertune.workers.protocol import BuildRequest, BuildResult
from infertune.workers.server import WorkerContext


def build_op(ctx: WorkerContext, request: BuildRequest) -> BuildResult:
    """Worker operation ``variant.build``: write ``request.runtime``'s artifact.

    Runs in the tools worker (the builds' process): conversions may leak memory or crash, and
    a worker is cheap to replace.
    """
    backend = get_backend(request.runtime)
    calibration = request.calibration
    facts = backend.build(
        Path(request.source),
        request.source_format,
        Path(request.out_path),
        Precision(request.precision),
        (
            Calibration(Path(calibration.path), tuple(calibration.x_keys), calibration.samples)
            if calibration is not None
            else None
        ),
        progress=lambda task: ctx.progress(task, 0, None),
    )
    size = int(facts.pop("size_bytes"))
    return BuildResult(size_bytes=size, details=facts)
