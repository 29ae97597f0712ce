"""Fixtures of this folder: the multi-input/multi-output models (tests/multiio.py)."""

from tests.multiio import multiio  # noqa: F401
