"""Built variants, cached by content: the same model, knobs and libraries never build twice.

A variant is the artifact one configuration runs: the source model itself (``tf`` at
``prune_ratio=0``), a pruned ``.keras`` model, or a runtime's built artifact (a ``.tflite``
file, ...). Its cache key hashes the source model's content, the knobs that change the
artifact (precision, prune ratio, the runtime's artifact family), the data that shaped it
(fine-tuning and calibration sets) and the library versions that built it. ``batch_size``
and ``threads`` do not change the artifact and are not part of the key.

Entries are written to a temporary folder and renamed into place with ``meta.json`` inside,
so a crash never leaves a half-built entry, and two builders racing for one key both end up
with the same complete entry.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from infertune.exceptions import BuildError
from infertune.hashing import json_sha256, size_bytes
from infertune.runtimes import Precision, RuntimeBackend

#: Bump when the way variants are built changes: older cache entries are then not reused.
VARIANT_FORMAT = 3

#: Inputs sampled (evenly) from the calibration data for full-int8 quantization.
CALIBRATION_SAMPLES = 200

#: Builds a variant into the given folder; returns facts to keep in its ``meta.json``.
BuildFn = Callable[[Path], dict[str, Any]]


@dataclass(frozen=True)
class Variant:
    """A built (or source) artifact ready to run."""

    key: str
    family: str
    """The artifact family: ``keras`` or a built runtime's (``tflite``, ...)."""
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)
    cache_hit: bool = False
    build_s: float = 0.0

    @property
    def size_mb(self) -> float:
        """Size on disk in MiB."""
        return size_bytes(self.path) / 2**20


#: Libraries whose versions decide a pruned ``.keras`` variant's content.
KERAS_BUILD_LIBRARIES = ("tensorflow-cpu", "tensorflow", "keras")


def build_versions(libraries: tuple[str, ...] = KERAS_BUILD_LIBRARIES) -> dict[str, str]:
    """Installed versions of ``libraries`` (those missing are left out)."""
    return dict(_versions(libraries))


@lru_cache(maxsize=16)
def _versions(libraries: tuple[str, ...]) -> dict[str, str]:
    # Once per process: metadata lookups cost milliseconds, and keys are made every trial.
    found = {}
    for name in libraries:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def pruned_key(model_sha: str, ratio: float, finetune: dict[str, Any] | None) -> str:
    """Cache key of a pruned (and maybe fine-tuned) ``.keras`` variant.

    ``finetune`` holds everything that shapes the fine-tuning: data hash and array names,
    epochs, seed and the task (which picks the loss).
    """
    return json_sha256(
        {
            "format": VARIANT_FORMAT,
            "kind": "pruned",
            "model": model_sha,
            "prune_ratio": round(ratio, 4),
            "finetune": finetune,
            "versions": build_versions(),
        }
    )


def output_key(model_sha: str, output: str) -> str:
    """Cache key of a ``.keras`` model cut to its scored output ``output``."""
    return json_sha256(
        {
            "format": VARIANT_FORMAT,
            "kind": "output",
            "model": model_sha,
            "output": output,
            "versions": build_versions(),
        }
    )


def artifact_key(
    backend: RuntimeBackend,
    parent_key: str,
    precision: Precision,
    calibration: dict[str, Any] | None,
) -> str:
    """Cache key of ``backend``'s artifact built from ``parent_key``'s ``.keras`` variant.

    ``calibration`` (data hash and input array name) counts only where the backend
    calibrates at ``precision``. (For ``tflite`` the key is the one the cache used before
    runtimes were backends: its family is its former kind.)
    """
    return json_sha256(
        {
            "format": VARIANT_FORMAT,
            "kind": backend.family,
            "parent": parent_key,
            "precision": str(precision),
            "calibration": (
                {**(calibration or {}), "samples": CALIBRATION_SAMPLES}
                if backend.needs_calibration(precision)
                else None
            ),
            "versions": build_versions(backend.build_libraries),
        }
    )


class VariantCache:
    """The content-addressed folder of built variants (``<home>/variants``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, key: str) -> Path:
        """Where the entry for ``key`` lives."""
        return self.root / key[:24]

    def lookup(self, key: str, family: str) -> Variant | None:
        """A complete cached entry, or ``None``."""
        folder = self.folder(key)
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            return None
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != key:
            return None
        return Variant(key, family, folder / meta["artifact"], meta, cache_hit=True)

    def get_or_build(
        self,
        key: str,
        family: str,
        artifact_name: str,
        facts: dict[str, Any],
        build: BuildFn,
    ) -> Variant:
        """Return the cached variant for ``key``, building it first if needed.

        ``facts`` (what the variant is: precision, prune ratio, ...) go into its
        ``meta.json`` together with what ``build`` returns.
        """
        found = self.lookup(key, family)
        if found is not None:
            return found
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{key[:24]}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            started = time.monotonic()
            built = build(tmp / artifact_name)
            build_s = time.monotonic() - started
            meta = {
                "key": key,
                "artifact": artifact_name,
                "family": str(family),
                **facts,
                "build_s": round(build_s, 2),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "versions": build_versions(),
                **built,
            }
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
            final = self.folder(key)
            for attempt in range(2):
                try:
                    os.rename(tmp, final)
                    break
                except OSError as exc:
                    found = self.lookup(key, family)
                    if found is not None:
                        # Another builder finished the same key first: theirs is as good.
                        shutil.rmtree(tmp, ignore_errors=True)
                        return found
                    if attempt == 1 or not final.exists():
                        raise BuildError(
                            f"Cannot store the built variant in {final}: {exc}"
                        ) from exc
                    # An incomplete entry (no valid meta.json): move it aside, try again.
                    os.rename(final, self.root / f".trash-{uuid.uuid4().hex[:8]}")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return Variant(key, family, final / artifact_name, meta, cache_hit=False, build_s=build_s)
