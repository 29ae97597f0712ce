"""infertune: find the fastest inference configuration for the accuracy you can afford.

Importing the package is cheap on purpose: TensorFlow, LiteRT and the other runtimes are
imported only by worker-side modules (in worker processes), so the CLI starts fast and a
measurement process carries no runtime but its own. Entry points: the ``infertune`` command
(:mod:`infertune.cli`) and the subpackages' public names (each lists them in ``__all__``).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
