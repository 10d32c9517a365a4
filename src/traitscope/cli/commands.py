"""Registers every sub-command on the Typer app (one module per area)."""

import traitscope.cli.finetune_cmd  # noqa: F401  (finetune, shift, screen, diff)
from traitscope.cli import extract_cmd, judge_cmd, models_cmd, monitor_cmd, reproduce_cmd, run_cmd, steer_cmd, view_cmd  # noqa: F401
