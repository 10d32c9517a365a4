"""`traitscope steer`, `traitscope steer-eval`, `traitscope export-cv`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from traitscope.cli.app import app, console, emit_json
from traitscope.cli.common import (
    ADAPTER_OPT,
    DEVICE_MAP_OPT,
    MAX_MEMORY_OPT,
    POSITION_OPT,
    RUN_OPT,
    floats,
    load,
    run_dir,
)
from traitscope.models.registry import DEFAULT_MODEL


@app.command()
def steer(
    adapter: Path | None = ADAPTER_OPT,
    trait: str = typer.Argument(..., help="Bundled trait name or trait folder."),
    prompt: str = typer.Option(..., "--prompt", "-p", help="What to ask the model."),
    run: Path | None = RUN_OPT,
    model: str = typer.Option(
        DEFAULT_MODEL,
        "--model",
        "-m",
        help="Model to steer (vectors from another model need the same width and depth).",
    ),
    method: str = typer.Option("probe", help="Which extracted vectors."),
    site: str = typer.Option("residual", help="Which site's vectors (and where to add them)."),
    position: str = POSITION_OPT,
    layers: str = typer.Option("30%", help="Layer spec; several layers share the ratio (see --mode)."),
    ratio: float | None = typer.Option(
        None, help="Perturbation ratio coef·‖v‖/‖h‖ (sweet spot ≈ 0.2-0.8) [default 0.3]."
    ),
    coef: float | None = typer.Option(None, help="Raw coefficient instead of a ratio."),
    mode: str = typer.Option("weighted", help="Multi-layer split: weighted (by effect size) or orthogonal."),
    scope: str = typer.Option("all", help="Tokens to steer: all, prompt, response."),
    ablate: bool = typer.Option(False, help="Project the direction out instead of adding it."),
    max_new_tokens: int = typer.Option(64),
    json_out: bool = typer.Option(False, "--json"),
    device_map: str | None = DEVICE_MAP_OPT,
    max_memory: str | None = MAX_MEMORY_OPT,
) -> None:
    """Answer a prompt unsteered and steered, side by side."""
    from traitscope.activations import parse_layers
    from traitscope.steering.compare import side_by_side
    from traitscope.store.runs import load_run_vectors
    from traitscope.traits import load_trait

    t = load_trait(trait)
    vset = load_run_vectors(run_dir(run, model, t.name), site, method, position)
    with console.status(f"loading {model}"):
        lm = load(model, device_map, max_memory, adapter)
    chosen = parse_layers(layers, lm.n_layers)
    info = side_by_side(lm, vset, prompt, chosen, ratio, coef, mode, scope, ablate, t.steering_sign, max_new_tokens)
    if json_out:
        emit_json(info)
        return
    what = "ablated" if ablate else f"coefs {info['coefs']}"
    table = Table(title=f"{t.name}: {site}/{method} layers {chosen} {what}", show_lines=True)
    table.add_column("unsteered", ratio=1)
    table.add_column("steered", ratio=1)
    table.add_row(info["unsteered"], info["steered"])
    console.print(table)


@app.command("steer-eval")
def steer_eval(
    adapter: Path | None = ADAPTER_OPT,
    trait: str = typer.Argument(..., help="Bundled trait name or trait folder."),
    run: Path | None = RUN_OPT,
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m"),
    method: str = typer.Option("probe"),
    site: str = typer.Option("residual"),
    position: str = POSITION_OPT,
    layers: str = typer.Option(
        "20%,30%,40%,50%,60%", help="Layers to sweep (each steered alone, or together with --mode)."
    ),
    ratios: str = typer.Option("0.1,0.2,0.3,0.5,0.8", help="Perturbation ratios to sweep."),
    mode: str = typer.Option("single", help="single: each layer alone; weighted/orthogonal: all layers together."),
    search: bool = typer.Option(
        False, help="Search a ratio per layer (up while coherent, down when not) instead of a grid."
    ),
    floor: float = typer.Option(75.0, help="Coherence floor for the search and the best configuration."),
    judge: str = typer.Option("default", help="Judge: default (offline), lexicon, embedding, local, api."),
    questions: int | None = typer.Option(None, help="Use only the first N steering questions."),
    max_new_tokens: int = typer.Option(48),
    batch_size: int = typer.Option(32),
    eval_kind: str = typer.Option(
        "judge", "--eval", help="judge: generate and judge; ab: judge-free A/B score (no generation); both."
    ),
    ab_format: str = typer.Option("answers", help="A/B format: answers (likelihoods) or letters ((A)/(B) choice)."),
    json_out: bool = typer.Option(False, "--json"),
    device_map: str | None = DEVICE_MAP_OPT,
    max_memory: str | None = MAX_MEMORY_OPT,
) -> None:
    """Answer the trait's steering questions under each configuration and score them.

    Appends to <run>/steering/results.jsonl; a re-run skips configurations already there. With
    --eval ab each configuration gets an A/B score from one forward pass per question instead, and a
    fluency cost (NLL delta: how much less probable, per token, the unsteered model's own answers to the
    steering questions become under that steering; above ~1 the 135M default model's answers break)."""
    from traitscope.progress import rich_reporter
    from traitscope.steering.session import SteerEvalPlan
    from traitscope.steering.session import steer_eval as run_steer_eval
    from traitscope.traits import load_trait

    t = load_trait(trait)
    rd = run_dir(run, model, t.name)
    plan = SteerEvalPlan(
        method=method, site=site, position=position, layers=layers, ratios=tuple(floats(ratios, "ratios")),
        mode=mode, search=search, floor=floor, judge=judge, questions=questions, max_new_tokens=max_new_tokens,
        batch_size=batch_size, eval_kind=eval_kind, ab_format=ab_format,
    )  # fmt: skip
    plan.check(rd, t)  # before the model loads
    with console.status(f"loading {model}"):
        lm = load(model, device_map, max_memory, adapter)
    with rich_reporter() as rep:
        res = run_steer_eval(lm, t, rd, plan, rep)
    if json_out:
        emit_json(_eval_json(t.name, res, floor))
        return
    _print_eval(t.name, lm.name, res, floor, rd)


def _eval_json(trait: str, res, floor: float) -> dict:
    best = res.best
    best_config = None
    if best is not None:
        best_config = {k: best[k] for k in ("trait_mean", "coherence_mean", "delta")} | {
            "label": best["config"]["label"], "layers": best["config"]["layers"], "ratio": best["config"]["ratio"],
        }  # fmt: skip
    return {
        "trait": trait,
        "judge": res.judge,
        "ab_source": res.ab_source or None,
        "floor": floor,
        "configs": res.summary,
        "best": None if best is None else best["config"]["label"],
        "best_config": best_config,
        "ab_picks": res.ab_picks,
        "ab_agreement": res.ab_agreement,
    }


def _print_eval(trait: str, model: str, res, floor: float, rd) -> None:
    if res.ab_source:
        console.print(f"A/B questions: {res.ab_source}")
    what = f"{res.n_questions} A/B questions" if res.judge.startswith("ab") else f"{res.n_questions} questions"
    table = Table(title=f"{trait} steering on {model} (judge: {res.judge}, {what})")
    for col in ("configuration", "trait", "coherence", "delta", "A/B", "A/B delta", "NLL delta", "n"):
        table.add_column(col, justify="left" if col == "configuration" else "right")

    def fmt(v: float | None, spec: str = ".1f") -> str:
        return "—" if v is None else format(v, spec)

    best_label = None if res.best is None else res.best["config"]["label"]
    for r in res.summary:
        table.add_row(
            r["config"], fmt(r["trait_mean"]), fmt(r["coherence_mean"]), fmt(r["delta"], "+.1f"),
            fmt(r["ab_score"], ".3f"), fmt(r["ab_delta"], "+.3f"), fmt(r["ab_nll_delta"], "+.3f"), str(r["n"]),
            style="bold green" if r["config"] == best_label else None,
        )  # fmt: skip
    console.print(table)
    if res.ab_picks:
        from traitscope.steering.ab import MAX_NLL_DELTA

        console.print(f"A/B picks to confirm by generation (NLL delta ≤ {MAX_NLL_DELTA:g}): {'; '.join(res.ab_picks)}")
    if res.ab_agreement:
        a = res.ab_agreement
        console.print(
            f"A/B delta vs judged delta over {a['n']:.0f} configurations: Spearman {a['spearman']:+.2f} (p {a['p']:.2f})"
        )
    console.print(f"best with coherence ≥ {floor:g}: {best_label or 'none'}\nresults: {rd.steering_results}")


@app.command("export-cv")
def export_cv(
    trait: str = typer.Argument(...),
    out: Path = typer.Option(..., "--out", help="GGUF file to write."),
    run: Path | None = RUN_OPT,
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m"),
    method: str = typer.Option("probe"),
    position: str = POSITION_OPT,
    layers: str = typer.Option("best", help="'best' (the run's best residual layer) or a layer spec."),
    ratio: float = typer.Option(0.3, help="Total perturbation ratio, split evenly over the exported layers."),
) -> None:
    """Export residual vectors as a llama.cpp control vector (repeng's GGUF format).

    llama.cpp adds every exported layer's direction, so a total ratio is split over the layers:
    the default (best layer, 0.3) steers like `traitscope steer --ratio 0.3` at that layer."""
    from traitscope.steering.control_vector import export_run_control_vector
    from traitscope.traits import load_trait

    t = load_trait(trait)
    written, each = export_run_control_vector(run_dir(run, model, t.name), out, method, position, layers, ratio)
    console.print(f"wrote {out}: layers {', '.join(map(str, written))}, ratio {each:g} each ({ratio:g} in total)")
