"""Inference runtimes behind one small interface, and the registry that names them."""

from infertune.runtimes._base import Calibration, Precision, Runner, RuntimeBackend
from infertune.runtimes.registry import backend_names, get_backend, register

__all__ = [
    "Calibration",
    "Precision",
    "Runner",
    "RuntimeBackend",
    "backend_names",
    "get_backend",
    "register",
]
