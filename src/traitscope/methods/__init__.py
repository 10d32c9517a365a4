"""Extraction methods: pure functions from activations and labels to unit vectors per layer."""

from traitscope.methods.base import Fit, orient, unit
from traitscope.methods.vectors import DEFAULT_METHODS, METHODS, gradient, ica, mean_diff, pca_diff, probe, random

__all__ = [
    "DEFAULT_METHODS",
    "METHODS",
    "Fit",
    "gradient",
    "ica",
    "mean_diff",
    "orient",
    "pca_diff",
    "probe",
    "random",
    "unit",
]
