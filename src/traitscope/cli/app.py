"""The ``traitscope`` command: thin wrappers that parse arguments and call the library."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape  # a message is text, never markup ("ray[serve]")

from traitscope.errors import TraitscopeError

app = typer.Typer(
    name="traitscope",
    help=(
        "Extract, validate, monitor and steer behavioural trait vectors in language models.\n\n"
        "Typical session: `traitscope traits` (what is bundled), `traitscope extract optimism` "
        "(vectors + validation), `traitscope steer optimism --run RUN --prompt ...`.\n\n"
        "Layers: 'all', '8', '6-10', '30%-60%'. Positions: 'response[:]', 'response[:5]', 'prompt[-1]'. "
        "Layer i is the output of block i (hidden_states[i+1])."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def emit_json(obj: Any) -> None:
    """Print machine-readable output on stdout (no rich markup)."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def main() -> None:
    """Entry point: bad input becomes one line on stderr and exit code 2, never a traceback."""
    from traitscope.cli import commands  # noqa: F401  (registers the commands)

    try:
        app()
    except TraitscopeError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted; finished work is on disk and a re-run resumes from it")
        sys.exit(130)
