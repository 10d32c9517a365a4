"""`traitscope steer`, `traitscope steer-eval`, `traitscope export-cv`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from traitscope.cli.app import app, console, emit_json
from traitscope.cli.common import ADAPTER_OPT, POSITION_OPT, RUN_OPT, floats, run_dir
from traitscope.errors import TraitscopeError
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
) -> None:
    """Answer a prompt unsteered and steered, side by side."""
    from traitscope.activations import parse_layers
    from traitscope.generation import SamplingConfig, generate_ids
    from traitscope.models import load_model
    from traitscope.steering import SteeringSpec, build_terms
    from traitscope.steering import steer as steer_ctx
    from traitscope.store.runs import load_run_vectors
    from traitscope.traits import load_trait

    t = load_trait(trait)
    if not prompt.strip():
        raise TraitscopeError("--prompt is empty")
    if ratio is not None and coef is not None:
        raise TraitscopeError("give --ratio or --coef, not both")
    vset = load_run_vectors(run_dir(run, model, t.name), site, method, position)
    with console.status(f"loading {model}"):
        lm = load_model(model, adapter=adapter)
    vset.check_model(lm.n_layers, lm.hidden_size, lm.site_dim(site), lm.name)
    chosen = parse_layers(layers, lm.n_layers)
    strength = None if coef is not None else (0.3 if ratio is None else ratio)
    terms = build_terms(vset, chosen, strength, coef, "single" if len(chosen) == 1 else mode)
    if t.steering_direction == "negative":  # push away from the trait
        terms = [type(x)(x.site, x.layer, x.vector, -float(x.coef)) for x in terms]
    ids = [lm.prompt_ids(prompt)]
    cfg = SamplingConfig(max_new_tokens=max_new_tokens)
    plain = lm.tokenizer.decode(generate_ids(lm, ids, cfg)[0], skip_special_tokens=True).strip()
    with steer_ctx(lm, SteeringSpec(terms, scope=scope, op="ablate" if ablate else "add")):
        steered = lm.tokenizer.decode(generate_ids(lm, ids, cfg)[0], skip_special_tokens=True).strip()
    info = {
        "prompt": prompt,
        "unsteered": plain,
        "steered": steered,
        "site": site,
        "method": method,
        "op": "ablate" if ablate else "add",
        "scope": scope,
        "coefs": {str(x.layer): round(float(x.coef), 3) for x in terms},
    }
    if json_out:
        emit_json(info)
        return
    table = Table(
        title=f"{t.name}: {site}/{method} layers {chosen} " + ("ablated" if ablate else f"coefs {info['coefs']}"),
        show_lines=True,
    )
    table.add_column("unsteered", ratio=1)
    table.add_column("steered", ratio=1)
    table.add_row(plain, steered)
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
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Answer the trait's steering questions under each configuration and score them.

    Appends to <run>/steering/results.jsonl; a re-run skips configurations already there."""
    from traitscope.activations import parse_layers
    from traitscope.models import load_model
    from traitscope.progress import rich_reporter
    from traitscope.steering.evaluate import best_config, evaluate_configs, grid, search_ratios
    from traitscope.store.runs import load_run_vectors
    from traitscope.traits import load_trait

    t = load_trait(trait)
    rd = run_dir(run, model, t.name)
    ratio_list = floats(ratios, "ratios")
    from traitscope.steering.spec import MODES, check_ratio

    for r in ratio_list:
        check_ratio(r)
    if mode not in MODES:
        raise TraitscopeError(f"--mode {mode!r} is not valid; use one of: {', '.join(MODES)}")
    load_run_vectors(rd, site, method, position)  # fail before loading the model
    with console.status(f"loading {model}"):
        lm = load_model(model, adapter=adapter)
    chosen = parse_layers(layers, lm.n_layers)
    from traitscope.judges.registry import get_judge

    j = get_judge(judge, trait=t, run_dir=rd.root, lm=lm)
    qs = t.steering_questions[:questions] if questions else t.steering_questions
    kw = dict(questions=qs, max_new_tokens=max_new_tokens, batch_size=batch_size)
    with rich_reporter() as rep:
        if search:
            rows = search_ratios(
                lm,
                t,
                rd,
                method,
                site,
                chosen,
                j,
                start=ratio_list[0],
                floor=floor,
                reporter=rep,
                position=position,
                **kw,
            )
        else:
            configs = grid(method, site, chosen, ratio_list, mode, position)
            rows = evaluate_configs(lm, t, rd, configs, j, reporter=rep, **kw)
    best = best_config(rows, floor)
    summary = [
        {
            "config": r["config"]["label"],
            "layers": r["config"]["layers"],
            "ratio": r["config"]["ratio"],
            "mode": r["config"]["mode"],
            "coefs": r["config"]["coefs"],
            "trait_mean": r["trait_mean"],
            "coherence_mean": r["coherence_mean"],
            "delta": r["delta"],
            "n": r["n"],
        }
        for r in rows
    ]
    if json_out:
        emit_json(
            {
                "trait": t.name,
                "judge": getattr(j, "name", judge),
                "floor": floor,
                "configs": summary,
                "best": None if best is None else best["config"]["label"],
                "best_config": None
                if best is None
                else {k: best[k] for k in ("trait_mean", "coherence_mean", "delta")}
                | {
                    "label": best["config"]["label"],
                    "layers": best["config"]["layers"],
                    "ratio": best["config"]["ratio"],
                },
            }
        )
        return
    table = Table(title=f"{t.name} steering on {lm.name} (judge: {getattr(j, 'name', judge)}, {len(qs)} questions)")
    for col in ("configuration", "trait", "coherence", "delta", "n"):
        table.add_column(col, justify="left" if col == "configuration" else "right")
    fmt = lambda v: "—" if v is None else f"{v:.1f}"  # noqa: E731
    for r in summary:
        style = "bold green" if best is not None and r["config"] == best["config"]["label"] else None
        table.add_row(
            r["config"],
            fmt(r["trait_mean"]),
            fmt(r["coherence_mean"]),
            "—" if r["delta"] is None else f"{r['delta']:+.1f}",
            str(r["n"]),
            style=style,
        )
    console.print(table)
    console.print(
        f"best with coherence ≥ {floor:g}: "
        + (best["config"]["label"] if best else "none")
        + f"\nresults: {rd.steering_results}"
    )


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
