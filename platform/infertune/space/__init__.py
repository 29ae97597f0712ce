"""Search spaces: which knob values a study explores, what it optimizes, what it requires."""

from infertune.space.loader import load_space
from infertune.space.schema import SearchSpace

__all__ = ["SearchSpace", "load_space"]
