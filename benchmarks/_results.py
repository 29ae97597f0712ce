"""What every benchmark does with its numbers: stamp them and write them as JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from infertune.measure.fingerprint import fingerprint


def write_results(out_dir: Path, name: str, model: str, payload: dict[str, Any]) -> Path:
    """Write ``<out_dir>/<name>-<model>.json`` with the time and host fingerprint added."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{name}-{model.replace(':', '-')}.json"
    stamped = {
        "model": model,
        **payload,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "fingerprint": fingerprint(),
    }
    out.write_text(json.dumps(stamped, indent=2))
    print(f"\nwrote {out}")
    return out
