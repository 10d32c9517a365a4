"""Activation capture; the layer and position specs it takes live in :mod:`traitscope.specs`."""

from traitscope.activations.capture import Captured, Example, capture
from traitscope.specs import Position, format_layers, parse_layers, parse_position

__all__ = ["Captured", "Example", "Position", "capture", "format_layers", "parse_layers", "parse_position"]
