"""infertune: find the fastest inference configuration for the accuracy you can afford.

Importing the package is cheap on purpose: TensorFlow and LiteRT are imported only inside the
worker processes and functions that need them, so the CLI starts fast and measurement
processes carry no runtime they do not use.
"""

__version__ = "0.1.0"
