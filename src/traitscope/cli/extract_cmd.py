"""`traitscope traits`, `traitscope extract`, `traitscope transfer-matrix`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from traitscope.cli.app import app, console, emit_json
from traitscope.cli.common import ADAPTER_OPT, DEVICE_MAP_OPT, MAX_MEMORY_OPT, load, print_best, run_dir, split_list
from traitscope.models.registry import DEFAULT_MODEL


@app.command()
def traits(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the bundled traits with their scenario counts and tags."""
    from traitscope.traits import bundled_names, load_trait

    rows = []
    for name in bundled_names():
        t = load_trait(name)
        rows.append(
            {
                "name": name,
                "elicitation": t.elicitation,
                "template": t.template,
                **t.counts(),
                "steering_questions": len(t.steering_questions),
                "tags": {tag: t.tag_values(tag) for tag in t.tag_names()},
            }
        )
    if json_out:
        emit_json(rows)
        return
    table = Table(title="bundled traits (a trait folder of your own works anywhere a name does)")
    for col in ("name", "elicitation", "positive", "negative", "questions", "tags"):
        table.add_column(col)
    for r in rows:
        tags = ", ".join(
            f"{k} ({len(v)})" if len(v) > 4 else f"{k}: {'/'.join(sorted(v))}" for k, v in r["tags"].items()
        )
        table.add_row(
            r["name"], r["elicitation"], str(r["positive"]), str(r["negative"]), str(r["steering_questions"]), tags
        )
    console.print(table)


@app.command()
def extract(
    adapter: Path | None = ADAPTER_OPT,
    trait: str = typer.Argument(..., help="Bundled trait name or a trait folder (traitscope or trait-interp layout)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Bundled alias, local directory or HF id."),
    layers: str = typer.Option("all", help="Layer spec: all, 8, 6-10, 30%-60%, or a comma list."),
    components: str = typer.Option("residual,attn_out,mlp_out,v", help="Sites: residual, attn_out, mlp_out, k, v."),
    methods: str = typer.Option(
        "mean_diff,probe,gradient,random", help="Methods: mean_diff, probe, gradient, random, pca_diff, ica."
    ),
    position: str = typer.Option(
        "response[:]",
        help="Tokens to average: response[:], response[:5], prompt[-1], all[:]. A prompt[...] position skips generation.",
    ),
    out: Path | None = typer.Option(None, "--out", help="Run directory [default: runs/<model>/<trait>]."),
    max_new_tokens: int = typer.Option(32, help="Rollout length in tokens."),
    temperature: float = typer.Option(0.0, help="0 = greedy; > 0 samples (seeded)."),
    seed: int = typer.Option(0, help="Seed for sampling, splits and methods."),
    folds: int = typer.Option(5, help="Cross-validation folds (grouped by minimal pair)."),
    stratify_tag: str | None = typer.Option(None, help="Also stratify folds by this scenario tag."),
    limit: int | None = typer.Option(None, help="Use only the first N scenarios of each polarity."),
    batch_size: int = typer.Option(16, help="Batch size for generation and capture."),
    force: bool = typer.Option(
        False,
        "--force",
        "--fresh",
        help="Start the run directory over instead of resuming (needed after changing model or settings).",
    ),
    vet: str | None = typer.Option(
        None, help="Drop rollouts a judge says do not show their polarity (lexicon, api, local)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary (best layer per method and site)."),
    device_map: str | None = DEVICE_MAP_OPT,
    max_memory: str | None = MAX_MEMORY_OPT,
) -> None:
    """Extract and validate trait vectors: rollouts -> activations -> vectors -> evaluation.json.

    Interrupted runs resume: re-run the same command."""
    from traitscope.extraction import ExtractConfig
    from traitscope.extraction import extract as run_extract
    from traitscope.judges.vetting import vetter_for
    from traitscope.progress import rich_reporter
    from traitscope.traits import load_trait

    t = load_trait(trait)  # checked before any model loads
    config = ExtractConfig(
        model=model, layers=layers, sites=split_list(components, "components"), methods=split_list(methods, "methods"),
        position=position, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, batch_size=batch_size,
        folds=folds, stratify_tag=stratify_tag, limit=limit, vet=vet or "none",
    )  # fmt: skip
    config.validate(trait=t)
    rd = run_dir(out, model, t.name, adapter=adapter)
    with console.status(f"loading {model}"):
        lm = load(model, device_map, max_memory, adapter)
    with rich_reporter() as rep:
        result = run_extract(lm, t, rd, config, reporter=rep, vetter=vetter_for(vet, t, lm), force=force)
    summary = result.summary(t.name, lm.name, vet)
    if json_out:
        emit_json(summary)
        return
    print_best(
        result.best,
        f"{t.name} on {lm.name}: best layer per site/method ({result.n_kept} rollouts, {config.folds}-fold CV)",
    )
    console.print(f"run directory: [bold]{result.run_dir}[/] ({result.seconds:.0f} s)")


@app.command("transfer-matrix")
def transfer_matrix_cmd(
    trait: str = typer.Argument(..., help="Bundled trait name or trait folder."),
    split_by: str = typer.Option(
        ..., "--split-by", help="Scenario tag whose groups to train/test across (topic, lang, domain)."
    ),
    method: str = typer.Option("probe", help="Extraction method."),
    site: str = typer.Option("residual", help="Site."),
    layer: int | None = typer.Option(None, help="Layer [default: the method's best layer in evaluation.json]."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m"),
    run: Path | None = typer.Option(
        None, "--run", help="Run directory from `extract` [default: runs/<model>/<trait>]."
    ),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Train on each tag group, test on every other: accuracy/AUROC matrix and the same- vs cross-group drop."""
    from traitscope.extraction.transfer import transfer_from_run
    from traitscope.traits import load_trait

    t = load_trait(trait)
    result = transfer_from_run(run_dir(run, model, t.name), t, split_by, method, site, layer)
    if json_out:
        emit_json(result)
        return
    _print_transfer(result)


def _print_transfer(r: dict) -> None:
    table = Table(title=f"{r['trait']}: {r['method']} @ {r['site']} L{r['layer']}, accuracy (AUROC) — train ↓ test →")
    table.add_column("train \\ test")
    groups = r["groups"]
    for g in groups:
        table.add_column(f"{g} (n={r['sizes'][g]})", justify="right")
    for i, g in enumerate(groups):
        cells = [
            f"{r['accuracy'][i][j]:.1%} ({r['auroc'][i][j]:.2f})" + ("*" if i == j else "") for j in range(len(groups))
        ]
        table.add_row(g, *cells)
    console.print(table)
    a = r["averages"]["accuracy"]
    console.print(
        f"same-group {a['same_group']:.1%} (* = k-fold within group), cross-group {a['cross_group']:.1%}, "
        f"drop {a['drop']:.1%}"
    )
