"""`traitscope run`: the main job, end to end, on one trait."""

from __future__ import annotations

from pathlib import Path

import typer

from traitscope.cli.app import ADAPTER_OPT, app, console
from traitscope.cli.extract_cmd import default_run, print_best
from traitscope.models.registry import DEFAULT_MODEL


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
) -> None:
    """Extract -> validation table -> short steering evaluation -> monitoring -> report.html.

    Each stage resumes from what is on disk, so an interrupted run picks up where it stopped."""
    from traitscope.activations import parse_layers
    from traitscope.cli.steer_cmd import _floats
    from traitscope.extraction import ExtractConfig, extract
    from traitscope.extraction.progress import rich_reporter
    from traitscope.judges.registry import get_judge
    from traitscope.models import load_model
    from traitscope.monitor import GenerationConfig, load_bank, monitor_prompts, write_trace
    from traitscope.prompts import load_prompt_set
    from traitscope.report.html import write_report
    from traitscope.steering.evaluate import SteerConfig, best_config, evaluate_configs
    from traitscope.steering.spec import check_ratio
    from traitscope.store import RunDir
    from traitscope.traits import load_trait

    t = load_trait(trait)
    ratio_list = [check_ratio(r) for r in _floats(ratios, "ratios")]
    pset = load_prompt_set(prompt_set or ("harmful" if t.name == "refusal" else "neutral"))
    run_dir = out or default_run(model, t.name, adapter=adapter)
    with console.status(f"loading {model}"):
        lm = load_model(model, adapter=adapter)
    layers = parse_layers(steer_layers, lm.n_layers)
    with rich_reporter() as rep:
        result = extract(lm, t, run_dir, ExtractConfig(model=model), reporter=rep)
    print_best(result.best, f"{t.name}: held-out detection, best layer per site/method ({result.n_kept} rollouts)")

    j = get_judge(judge, trait=t, run_dir=run_dir, lm=lm)
    configs = [SteerConfig("probe", "residual", (), baseline=True)] + [
        SteerConfig("probe", "residual", (layer,), ratio=r) for layer in layers for r in ratio_list
    ]
    with rich_reporter() as rep:
        rows = evaluate_configs(
            lm, t, run_dir, configs, j, questions=t.steering_questions[:questions], max_new_tokens=40, reporter=rep
        )
    best = best_config(rows)
    base = rows[0]
    console.print(
        f"steering ({getattr(j, 'name', judge)} judge, {questions} questions): baseline trait "
        f"{base['trait_mean']:.1f}; best: "
        + (
            f"{best['config']['label']} trait {best['trait_mean']:.1f} (delta {best['delta']:+.1f}), "
            f"coherence {best['coherence_mean']:.1f}"
            if best
            else "no configuration kept coherence ≥ 75"
        )
    )

    run_path = Path(run_dir)  # <root>/<model-slug>/<trait>, as the monitor expects
    bank = load_bank(lm, run_path.parent.parent, [run_path.name], model_slug=run_path.parent.name)
    with console.status(f"monitoring prompt set {pset.name}"):
        traces = monitor_prompts(lm, pset.prompts[:4], bank, GenerationConfig(max_new_tokens=40), pset.name)
    mon_dir = RunDir(Path(run_dir)).monitor(pset.name)
    for trace in traces:
        write_trace(mon_dir / f"{trace['id']}.json", trace)
    report = write_report(RunDir(Path(run_dir)).report, _evaluation(run_dir), rows, traces, best)
    console.print(
        f"\nreport: [bold]{report}[/]\nrun directory: {run_dir}\ndashboard: traitscope view {Path(run_dir).parent.parent}"
    )


def _evaluation(run_dir: Path) -> dict:
    from traitscope.extraction import load_evaluation

    return load_evaluation(run_dir)
