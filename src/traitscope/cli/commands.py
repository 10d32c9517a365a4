"""Registers every sub-command on the Typer app (one module per area)."""

import traitscope.cli.finetune_cmd  # noqa: F401  (finetune, shift, screen, diff, reproduce finetune)
from traitscope.cli import (  # noqa: F401
    extract_cmd,
    judge_cmd,
    models_cmd,
    monitor_cmd,
    reproduce_cmd,
    run_cmd,
    serve_cmd,
    steer_cmd,
    sweep_cmd,
    view_cmd,
)
