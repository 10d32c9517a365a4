"""Ground-floor spec parsers shared by every package: layer specs and position specs.

Pure string <-> value conversions with no torch and no model, so ``store`` (which names files
after positions) and ``activations`` (which selects tokens by them) can both depend on them."""

from traitscope.specs.layers import format_layers, parse_layers
from traitscope.specs.positions import DEFAULT_POSITION, Position, parse_position, position_from_slug

__all__ = ["DEFAULT_POSITION", "Position", "format_layers", "parse_layers", "parse_position", "position_from_slug"]
