"""Layer specs, position specs and activation capture."""

from traitscope.activations.capture import Captured, Example, capture
from traitscope.activations.layers import format_layers, parse_layers
from traitscope.activations.positions import Position, parse_position

__all__ = ["Captured", "Example", "Position", "capture", "format_layers", "parse_layers", "parse_position"]
