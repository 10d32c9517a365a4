"""Steering with trait vectors: specs, application hooks, batched sweeps, evaluation, GGUF export."""

from traitscope.steering.apply import steer
from traitscope.steering.calibrate import measure_act_norms
from traitscope.steering.spec import SteeringSpec, SteerTerm, build_terms, coef_for_ratio, layer_ratios, orthogonalise
from traitscope.steering.sweep import generate_rows

__all__ = [
    "SteerTerm",
    "SteeringSpec",
    "build_terms",
    "coef_for_ratio",
    "generate_rows",
    "layer_ratios",
    "measure_act_norms",
    "orthogonalise",
    "steer",
]
