"""Public names of a subpackage that load their module on first use (PEP 562)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["lazy_getattr"]


def lazy_getattr(package: str, module_of: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``package.<module_of[name]>`` when asked.

    A subpackage shared by the caller and the worker side (``measure``) or read by cheap
    commands (``tuning`` by ``infertune studies``) keeps its public names in ``__all__``
    without importing what they need until one is used.
    """

    def __getattr__(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__
