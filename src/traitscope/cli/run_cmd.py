"""`traitscope run`: the main job, end to end, on one trait."""

from __future__ import annotations

from pathlib import Path

import typer

from traitscope.cli.app import app, console
from traitscope.cli.common import (
    ADAPTER_OPT,
    DEVICE_MAP_OPT,
    MAX_MEMORY_OPT,
    floats,
    load,
    print_best,
    run_dir,
    split_list,
)
from traitscope.models.registry import DEFAULT_MODEL


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "n/a (judge gave no score)" if value is None else format(value, spec)


@app.command()
def run(
    adapter: Path | None = ADAPTER_OPT,
    trait: str = typer.Argument(..., help="Bundled trait name or trait folder."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m"),
    out: Path | None = typer.Option(None, "--out", help="Run directory [default: runs/<model>/<trait>]."),
    steer_layers: str = typer.Option("25%,33%,45%", help="Layers for the short steering evaluation."),
    ratios: str = typer.Option("0.15,0.3,0.45", help="Perturbation ratios for the short steering evaluation."),
    questions: int = typer.Option(6, help="Steering questions to answer per configuration."),
    prompt_set: str | None = typer.Option(
        None, help="Bundled prompt set to monitor [default: harmful for refusal, else neutral]."
    ),
    judge: str = typer.Option("default", help="Judge for the steering evaluation."),
    layers: str = typer.Option("all", help="Layers to extract (layer spec)."),
    components: str = typer.Option("residual,attn_out,mlp_out,v", help="Sites to extract."),
    limit: int | None = typer.Option(None, help="Use only the first N scenarios of each polarity (a quick look)."),
    device_map: str | None = DEVICE_MAP_OPT,
    max_memory: str | None = MAX_MEMORY_OPT,
) -> None:
    """Extract -> validation table -> short steering evaluation -> monitoring -> report.html.

    Each stage resumes from what is on disk, so an interrupted run picks up where it stopped."""
    from traitscope.extraction import ExtractConfig
    from traitscope.pipeline import run_trait
    from traitscope.progress import rich_reporter
    from traitscope.prompts import load_prompt_set
    from traitscope.traits import load_trait

    t = load_trait(trait)
    ratio_list = floats(ratios, "ratios")
    if prompt_set:
        load_prompt_set(prompt_set)  # a bad name fails before the model loads
    config = ExtractConfig(model=model, layers=layers, sites=split_list(components, "components"), limit=limit)
    config.validate()
    rd = run_dir(out, model, t.name, adapter=adapter)
    with console.status(f"loading {model}"):
        lm = load(model, device_map, max_memory, adapter)
    with rich_reporter() as rep:
        res = run_trait(lm, t, rd, config, steer_layers, ratio_list, questions, judge, prompt_set, reporter=rep)
    ex, best, base = res.extraction, res.best_steering, res.steering[0]
    print_best(ex.best, f"{t.name}: held-out detection, best layer per site/method ({ex.n_kept} rollouts)")
    found = (
        f"{best['config']['label']} trait {_fmt(best['trait_mean'])} (delta {_fmt(best['delta'], '+.1f')}), "
        f"coherence {_fmt(best['coherence_mean'])}"
        if best
        else "no configuration kept coherence ≥ 75"
    )
    console.print(
        f"steering ({res.judge} judge, {questions} questions): baseline trait {_fmt(base['trait_mean'])}; best: {found}"
    )
    console.print(
        f"\nreport: [bold]{res.report}[/]\nrun directory: {rd.root}\ndashboard: traitscope view {rd.root.parent.parent}"
    )
