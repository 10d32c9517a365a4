"""`traitscope reproduce detection|steering`: re-run the research log's findings and write their
section of docs/REPRODUCTION.md (plots in docs/reproduction/). Argument parsing plus one call to
:func:`traitscope.reproduce.reproduce`."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from traitscope.cli.app import app, console, emit_json
from traitscope.models.registry import DEFAULT_MODEL
from traitscope.reproduce.common.profiles import DEFAULT_BASE_MODEL, DEFAULT_OUT

reproduce_app = typer.Typer(
    help="Reproduce the research log's findings on the models at hand and write docs/REPRODUCTION.md.",
    no_args_is_help=True,
)
app.add_typer(reproduce_app, name="reproduce")

VERDICT_STYLE = {
    "holds": "green",
    "holds weaker": "yellow",
    "inconclusive": "cyan",
    "does not hold": "red",
    "cannot test here": "dim",
}

OUT = typer.Option(DEFAULT_OUT, "--out", help="Run directories (resumed on a re-run) and results JSON.")
MODEL = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Model under test (the instruct model).")
BASE_MODEL = typer.Option(DEFAULT_BASE_MODEL, "--base-model", help="Source model for the cross-model findings.")
REPORT = typer.Option(
    Path("docs/REPRODUCTION.md"), "--report", help="Report to (re)write; plots go to <its folder>/reproduction/."
)
SIZES = typer.Option(
    None, "--sizes", help="JSON object of profile fields to replace (e.g. a tiny smoke-test profile).", hidden=True
)
JSON_OUT = typer.Option(False, "--json", help="Print a JSON summary (verdict per finding).")


def _register(section: str, quick_help: str, doc: str) -> None:
    """``traitscope reproduce <section>``: the same options for both twins (``--traits`` is the
    detection reproduction's only; the steering one runs on optimism and refusal)."""

    def command(
        quick: bool = typer.Option(False, "--quick", help=quick_help),
        out: Path = OUT,
        model: str = MODEL,
        base_model: str = BASE_MODEL,
        report: Path = REPORT,
        traits: str | None = typer.Option(
            None, help="Comma list of traits [default: every bundled trait].", hidden=section != "detection"
        ),
        sizes: Path | None = SIZES,
        json_out: bool = JSON_OUT,
    ) -> None:
        from traitscope.cli.common import split_list
        from traitscope.errors import TraitscopeError

        if traits and section != "detection":
            raise TraitscopeError(f"--traits applies to `reproduce detection` only, not `reproduce {section}`")
        names = tuple(split_list(traits, "traits")) if traits else None
        _reproduce(section, quick, sizes, out, model, base_model, report, json_out, names)

    command.__doc__ = doc
    reproduce_app.command(section)(command)


_register(
    "detection",
    "≤ 15 min on a 2-core CPU: prompt[-1] (no generation), every 3rd layer, fewer scenarios.",
    """Methods table, cross-language/topic/domain matrices, components, natural vs instruction
    elicitation and base → instruct transfer, each with the log's number, ours and a verdict.""",
)
_register(
    "steering",
    "≤ 20 min on a 2-core CPU: fewer layers, ratios and questions, shorter answers.",
    """Ratio law, multi-layer, metrics vs steering, detection vs control, refusal dynamics, jailbreaks and
    cross-model steering, each with the log's number, ours and a verdict.""",
)


def _reproduce(
    section: str,
    quick: bool,
    sizes: Path | None,
    out: Path,
    model: str,
    base_model: str,
    report: Path,
    json_out: bool,
    traits: tuple[str, ...] | None = None,
) -> None:
    from traitscope.progress import rich_reporter
    from traitscope.reproduce import profile_for, reproduce
    from traitscope.reproduce.common import Setup
    from traitscope.traits import load_trait

    profile = profile_for(section, "quick" if quick else "full", sizes)
    for name in traits or ():
        load_trait(name)  # a bad name fails before any model loads
    with rich_reporter() as rep:
        setup = Setup(out, model, base_model, _command_line(), traits, rep)
        results, written = reproduce(section, profile, setup, report)
    _show(section, results, written, json_out)


def _command_line() -> str:
    """The command as typed, for the report (``traitscope`` however it was launched)."""
    return " ".join(["traitscope", *(shlex.quote(a) for a in sys.argv[1:])])


def _show(section: str, results: dict[str, Any], written: dict[str, Path], json_out: bool) -> None:
    meta = results["meta"]
    if json_out:
        emit_json(
            {
                "profile": meta["profile"],
                "wall_seconds": round(meta["wall_seconds"], 1),
                "report": str(written["report"]),
                "results": str(written["results"]),
                "verdicts": {k: f["verdict"] for k, f in results["findings"].items()},
            }
        )
        return
    table = Table(title=f"reproduce {section} ({meta['profile']}, {meta['wall_seconds'] / 60:.1f} min)")
    for col in ("finding", "headline: log → ours", "verdict"):
        table.add_column(col)
    for key, f in results["findings"].items():
        head = f["checks"][0] if f["checks"] else None
        style = VERDICT_STYLE[f["verdict"]]
        table.add_row(key, f"{head['log']} → {head['ours_text']}" if head else "—", f"[{style}]{f['verdict']}[/]")
    console.print(table)
    console.print(f"report: [bold]{written['report']}[/]  results: {written['results']}")
