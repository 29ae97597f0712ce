"""Built-in demo models, trained locally from scikit-learn's digits (no download).

``demo:digits-cnn``     a small CNN at 32x32 (a few M MACs): trains in seconds; for tests.
``demo:digits-midcnn``  a VGG-style CNN at 96x96 (~235M MACs): trains in about a minute or
                        two on two cores; latency differences between configurations are large.

Each is trained once with fixed seeds and cached under ``<home>/demo/<name>/`` with its
``train.npz`` and ``eval.npz`` splits. This module is the catalogue (caller side, no
TensorFlow); the training runs in a worker (:mod:`infertune.models.demo_training`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infertune.exceptions import InputError

#: Bump when a demo's architecture, data or training changes: cached copies are rebuilt.
DEMO_FORMAT = 2


@dataclass(frozen=True)
class DemoSpec:
    """How a demo model is built and trained."""

    name: str
    size: int
    blocks: tuple[int | str, ...]
    head: str
    epochs: int
    learning_rate: float
    description: str


DEMOS: dict[str, DemoSpec] = {
    spec.name: spec
    for spec in (
        DemoSpec(
            name="digits-cnn",
            size=32,
            blocks=(16, "pool", 32, "pool"),
            head="flatten-dense",
            epochs=8,
            learning_rate=2e-3,
            description="small CNN on 32x32 digits (~1.5M MACs), trains in seconds",
        ),
        DemoSpec(
            name="digits-midcnn",
            size=96,
            blocks=(16, 32, "pool", 64, 64, "pool", 128, "pool", 128),
            head="gap",
            epochs=3,
            learning_rate=3e-3,
            description="VGG-style CNN on 96x96 digits (~235M MACs), trains in a minute or two",
        ),
    )
}


@dataclass(frozen=True)
class DemoModel:
    """Files of a trained demo model."""

    name: str
    model_path: Path
    eval_path: Path
    train_path: Path
    info: dict[str, Any]


def demo_names() -> list[str]:
    """The demo model names, as accepted after ``demo:``."""
    return sorted(DEMOS)


def parse_demo(spec: str) -> DemoSpec:
    """Resolve ``demo:NAME`` to its spec, or a clear error listing the choices."""
    name = spec.removeprefix("demo:")
    if name not in DEMOS:
        choices = ", ".join(f"demo:{n}" for n in demo_names())
        raise InputError(f"Unknown demo model '{spec}'; choose one of {choices}.")
    return DEMOS[name]


def cached_demo(demo_dir: Path, spec: DemoSpec) -> DemoModel | None:
    """The trained demo if it is cached and current, else ``None``."""
    folder = demo_dir / spec.name
    info_path = folder / "info.json"
    if not info_path.is_file():
        return None
    info = json.loads(info_path.read_text())
    if info.get("format") != DEMO_FORMAT:
        return None
    return DemoModel(
        spec.name, folder / "model.keras", folder / "eval.npz", folder / "train.npz", info
    )


def publish_demo(demo_dir: Path, spec: DemoSpec, build_dir: Path) -> DemoModel:
    """Move a freshly trained demo into place (atomic: a half-written demo is never seen)."""
    final = demo_dir / spec.name
    if final.exists():
        shutil.rmtree(final)
    os.replace(build_dir, final)
    demo = cached_demo(demo_dir, spec)
    assert demo is not None
    return demo
