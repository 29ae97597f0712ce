"""Inference knobs: what a configuration is, and how each knob changes the artifact."""

from infertune.knobs.spec import ArtifactFamily, InferenceConfig, Precision, Runtime

__all__ = ["ArtifactFamily", "InferenceConfig", "Precision", "Runtime"]
