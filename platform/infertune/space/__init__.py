"""Search spaces: which knob values a study explores, what it optimizes, what it requires."""

from infertune.space.loader import load_space
from infertune.space.schema import Direction, Figure, SearchSpace

__all__ = ["Direction", "Figure", "SearchSpace", "load_space"]
