"""`traitscope reproduce detection`: re-run the research log's detection findings and write
their section of docs/REPRODUCTION.md (plots in docs/reproduction/)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer
from rich.table import Table

from traitscope.cli.app import app, console, emit_json
from traitscope.models.registry import DEFAULT_MODEL

reproduce_app = typer.Typer(
    help="Reproduce the research log's findings on the models at hand and write docs/REPRODUCTION.md.",
    no_args_is_help=True,
)
app.add_typer(reproduce_app, name="reproduce")

VERDICT_STYLE = {"holds": "green", "holds weaker": "yellow", "does not hold": "red", "cannot test here": "dim"}


def _command_line() -> str:
    """The command as typed, for the report (``traitscope`` however it was launched)."""
    return " ".join(["traitscope", *(shlex.quote(a) for a in sys.argv[1:])])


@reproduce_app.command("detection")
def detection(
    quick: bool = typer.Option(
        False, "--quick", help="≤ 15 min on a 2-core CPU: prompt[-1] (no generation), every 3rd layer, fewer scenarios."
    ),
    out: Path = typer.Option(
        Path("runs/reproduce"), "--out", help="Run directories (resumed on a re-run) and results JSON."
    ),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Model under test (the instruct model)."),
    base_model: str = typer.Option(
        "gemma3-270m", "--base-model", help="Source model for the base → instruct transfer."
    ),
    report: Path = typer.Option(
        Path("docs/REPRODUCTION.md"), "--report", help="Report to (re)write; plots go to <its folder>/reproduction/."
    ),
    traits: str | None = typer.Option(None, help="Comma list of traits [default: every bundled trait]."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary (verdict per finding)."),
) -> None:
    """Methods table, cross-language/topic/domain matrices, components, natural vs instruction
    elicitation and base → instruct transfer, each with the log's number, ours and a verdict."""
    from traitscope.cli.extract_cmd import split_list
    from traitscope.progress import rich_reporter
    from traitscope.reproduce import FULL, QUICK, DetectionConfig, publish, run_detection, save_results
    from traitscope.traits import load_trait

    names = split_list(traits, "traits") if traits else None
    for name in names or ():
        load_trait(name)  # a bad name fails before any model loads
    profile = QUICK if quick else FULL
    cfg = DetectionConfig(
        profile=profile, out=out, model=model, base_model=base_model, command=_command_line(), traits=names
    )
    with rich_reporter() as rep:
        results = run_detection(cfg, reporter=rep)
    json_path = save_results(out / f"detection-{profile.name}.json", results)
    written = publish(results, report)
    summary = {
        "profile": profile.name,
        "wall_seconds": round(results["meta"]["wall_seconds"], 1),
        "report": str(written["report"]),
        "results": str(json_path),
        "verdicts": {k: f["verdict"] for k, f in results["findings"].items()},
    }
    if json_out:
        emit_json(summary)
        return
    table = Table(title=f"reproduce detection ({profile.name}, {summary['wall_seconds'] / 60:.1f} min)")
    table.add_column("finding")
    table.add_column("headline: log → ours")
    table.add_column("verdict")
    for key, f in results["findings"].items():
        head = f["checks"][0] if f["checks"] else None
        style = VERDICT_STYLE[f["verdict"]]
        table.add_row(key, f"{head['log']} → {head['ours_text']}" if head else "—", f"[{style}]{f['verdict']}[/]")
    console.print(table)
    console.print(f"report: [bold]{written['report']}[/]  results: {json_path}")


@reproduce_app.command("steering")
def steering(
    quick: bool = typer.Option(
        False, "--quick", help="≤ 20 min on a 2-core CPU: fewer layers, ratios and questions, shorter answers."
    ),
    out: Path = typer.Option(
        Path("runs/reproduce"), "--out", help="Run directories (resumed on a re-run) and results JSON."
    ),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Model under test (the instruct model)."),
    base_model: str = typer.Option("gemma3-270m", "--base-model", help="Source model for cross-model steering."),
    report: Path = typer.Option(
        Path("docs/REPRODUCTION.md"), "--report", help="Report to (re)write; plots go to <its folder>/reproduction/."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary (verdict per finding)."),
) -> None:
    """Ratio law, multi-layer, metrics vs steering, detection vs control, refusal dynamics, jailbreaks and
    cross-model steering, each with the log's number, ours and a verdict."""
    from traitscope.progress import rich_reporter
    from traitscope.reproduce.steering_findings import reproduce_steering

    with rich_reporter() as rep:
        results = reproduce_steering(out, quick, model, report, rep, base_model=base_model, command=_command_line())
    verdicts = {k: f["verdict"] for k, f in results["findings"].items()}
    if json_out:
        emit_json(
            {
                "profile": results["meta"]["profile"],
                "wall_seconds": round(results["meta"]["wall_seconds"], 1),
                "report": str(report),
                "verdicts": verdicts,
            }
        )
        return
    table = Table(
        title=f"reproduce steering ({results['meta']['profile']}, {results['meta']['wall_seconds'] / 60:.1f} min)"
    )
    for col in ("finding", "headline: log → ours", "verdict"):
        table.add_column(col)
    for key, f in results["findings"].items():
        head = f["checks"][0] if f["checks"] else None
        table.add_row(
            key,
            f"{head['log']} → {head['ours_text']}" if head else "—",
            f"[{VERDICT_STYLE[f['verdict']]}]{f['verdict']}[/]",
        )
    console.print(table)
