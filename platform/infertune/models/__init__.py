"""Models and data: user inputs, their checks, and the built-in demo catalogue.

These names are the caller side (no TensorFlow). The worker side, imported by worker
operations only, is ``inspect``, ``graph``, ``training`` and ``demo_training``.
"""

from infertune.models.data import Dataset, check_compatible, load_dataset
from infertune.models.demo import (
    DEMOS,
    DemoModel,
    DemoSpec,
    cached_demo,
    demo_names,
    parse_demo,
    publish_demo,
)
from infertune.models.sources import ModelFormat, ModelSource, check_model_path

__all__ = [
    "DEMOS",
    "Dataset",
    "DemoModel",
    "DemoSpec",
    "ModelFormat",
    "ModelSource",
    "cached_demo",
    "check_compatible",
    "check_model_path",
    "demo_names",
    "load_dataset",
    "parse_demo",
    "publish_demo",
]
