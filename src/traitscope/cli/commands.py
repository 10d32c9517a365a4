"""Registers every sub-command on the Typer app (one module per area)."""

from traitscope.cli import extract_cmd, models_cmd, steer_cmd  # noqa: F401
