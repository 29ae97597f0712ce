"""Measurement: latency/throughput timing, accuracy, and the host fingerprint.

The caller side (:class:`Engine`) and the worker side (``runner``) share this package, so
its names load on first use: a measurement worker that imports ``infertune.measure.runner``
does not pay for the engine's imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infertune._lazy import lazy_getattr

if TYPE_CHECKING:
    from infertune.measure.engine import Engine, Subject
    from infertune.measure.fingerprint import check_threads, library_versions, usable_cores
    from infertune.measure.variants import Variant
    from infertune.measure.window import MeasurementWindow

__all__ = [
    "Engine",
    "MeasurementWindow",
    "Subject",
    "Variant",
    "check_threads",
    "library_versions",
    "usable_cores",
]

_MODULE_OF = {
    "Engine": "engine",
    "MeasurementWindow": "window",
    "Subject": "engine",
    "Variant": "variants",
    "check_threads": "fingerprint",
    "library_versions": "fingerprint",
    "usable_cores": "fingerprint",
}


__getattr__ = lazy_getattr(__name__, _MODULE_OF)
