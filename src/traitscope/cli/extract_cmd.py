"""`traitscope traits`, `traitscope extract`, `traitscope transfer-matrix`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from traitscope.cli.app import ADAPTER_OPT, app, console, emit_json
from traitscope.errors import TraitscopeError
from traitscope.models.registry import DEFAULT_MODEL, model_slug


def split_list(value: str, what: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise TraitscopeError(f"--{what} is empty; give a comma-separated list")
    return items


def default_run(model: str, trait: str, run_root: Path = Path("runs"), adapter: Path | None = None) -> Path:
    """``<root>/<model>/<trait>``; with an adapter ``<root>/<model>+<adapter folder>/<trait>``, so a
    finetuned model's runs never overwrite the base model's."""
    slug = model_slug(model) + (f"+{Path(adapter).name}" if adapter else "")
    return run_root / slug / Path(trait).name


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
    fresh: bool = typer.Option(False, help="Delete the run directory first instead of resuming."),
    vet: str | None = typer.Option(None, help="Drop rollouts a judge says do not show their polarity (lexicon, api, local)."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary (best layer per method and site)."),
) -> None:
    """Extract and validate trait vectors: rollouts -> activations -> vectors -> evaluation.json.

    Interrupted runs resume: re-run the same command."""
    from traitscope.extraction import ExtractConfig
    from traitscope.extraction import extract as run_extract
    from traitscope.extraction.progress import rich_reporter
    from traitscope.models import load_model
    from traitscope.traits import load_trait

    t = load_trait(trait)  # checked before any model loads
    config = ExtractConfig(
        model=model,
        layers=layers,
        sites=split_list(components, "components"),
        methods=split_list(methods, "methods"),
        position=position,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        batch_size=batch_size,
        folds=folds,
        stratify_tag=stratify_tag,
        limit=limit,
    )
    config.validate()
    if stratify_tag and stratify_tag not in t.tag_names():
        raise TraitscopeError(f"--stratify-tag {stratify_tag!r}: trait {t.name} has tags {t.tag_names()}")
    run_dir = out or default_run(model, t.name, adapter=adapter)
    with console.status(f"loading {model}"):
        lm = load_model(model, adapter=adapter)
    vetter = None
    if vet:
        from traitscope.judges.registry import get_judge
        from traitscope.judges.vetting import vetter as make_vetter

        vetter = make_vetter(get_judge(vet, trait=t, lm=lm))
    with rich_reporter() as rep:
        result = run_extract(lm, t, run_dir, config, reporter=rep, vetter=vetter, fresh=fresh)
    summary = {
        "trait": t.name,
        "model": lm.name,
        "run_dir": str(result.run_dir),
        "rollouts": result.n_rollouts,
        "kept": result.n_kept,
        "vetted_by": vet,
        "seconds": round(result.seconds, 1),
        "best": {
            k: {
                m: v[m]
                for m in (
                    "layer",
                    "auroc",
                    "auroc_sd",
                    "accuracy",
                    "effect_size",
                    "polarity_correct",
                    "random_auroc_p95",
                )
            }
            for k, v in result.best.items()
        },
    }
    if json_out:
        emit_json(summary)
        return
    print_best(
        result.best,
        f"{t.name} on {lm.name}: best layer per site/method ({result.n_kept} rollouts, {config.folds}-fold CV)",
    )
    console.print(f"run directory: [bold]{result.run_dir}[/] ({result.seconds:.0f} s)")


def print_best(best: dict, title: str) -> None:
    table = Table(title=title)
    for col in ("site/method", "layer", "AUROC", "accuracy", "effect size d", "polarity", "random p95 AUROC"):
        table.add_column(col, justify="right" if col != "site/method" else "left")
    for key, r in sorted(best.items()):
        table.add_row(
            key,
            str(r["layer"]),
            f"{r['auroc']:.3f} ± {r['auroc_sd']:.3f}",
            f"{r['accuracy']:.3f} ± {r['accuracy_sd']:.3f}",
            f"{r['effect_size']:.2f}",
            "ok" if r["polarity_correct"] else "[red]flipped[/]",
            f"{r['random_auroc_p95']:.3f}",
        )
    console.print(table)


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
    import torch

    from traitscope.evaluation import transfer_matrix
    from traitscope.extraction import load_evaluation
    from traitscope.extraction.activations import load_site
    from traitscope.extraction.pipeline import read_rollouts
    from traitscope.methods import METHODS
    from traitscope.store import RunDir
    from traitscope.traits import load_trait

    t = load_trait(trait)
    if method not in METHODS:
        raise TraitscopeError(f"unknown method {method!r}; valid: {', '.join(METHODS)}")
    if split_by not in t.tag_names():
        raise TraitscopeError(f"--split-by {split_by!r}: trait {t.name} has tags {t.tag_names()}")
    run_dir = run or default_run(model, t.name)
    ev = load_evaluation(run_dir)
    act_dir = RunDir(run_dir).activations(_slug(ev["position"]))
    if not (act_dir / f"{site}.safetensors").exists():
        raise TraitscopeError(f"{act_dir}: no activations for site {site!r}; extract with --components including it")
    acts, _, ids, layers = load_site(act_dir, site)
    if layer is None:
        cands = [r for r in ev["results"] if r["site"] == site and r["method"] == method]
        layer = max(cands, key=lambda r: r["auroc"])["layer"] if cands else layers[len(layers) // 2]
    if layer not in layers:
        raise TraitscopeError(f"layer {layer} was not extracted; available: {layers[0]}-{layers[-1]}")
    by_id = {r["id"]: r for r in read_rollouts(run_dir)}
    rows = [by_id[i] for i in ids]
    y = torch.tensor([1 if r["polarity"] == "positive" else 0 for r in rows])
    tags = [r["tags"].get(split_by, "") for r in rows]
    if len(set(tags) - {""}) < 2:
        raise TraitscopeError(
            f"the run {run_dir} holds only one {split_by!r} group ({sorted(set(tags))}); extract without --limit "
            "so every group is present"
        )
    tm = transfer_matrix(
        acts[:, layers.index(layer)],
        y,
        tags,
        method,
        groups=[r["pair"] or r["id"] for r in rows],
        pairs=[r["pair"] for r in rows],
    )
    result = {
        "trait": t.name,
        "split_by": split_by,
        "method": method,
        "site": site,
        "layer": layer,
        "groups": tm.groups,
        "sizes": tm.sizes,
        "accuracy": tm.accuracy,
        "auroc": tm.auroc,
        "averages": {"accuracy": tm.averages("accuracy"), "auroc": tm.averages("auroc")},
    }
    if json_out:
        emit_json(result)
        return
    table = Table(title=f"{t.name}: {method} @ {site} L{layer}, accuracy (AUROC) — train ↓ test →")
    table.add_column("train \\ test")
    for g in tm.groups:
        table.add_column(f"{g} (n={tm.sizes[g]})", justify="right")
    for i, g in enumerate(tm.groups):
        table.add_row(
            g,
            *[
                f"{tm.accuracy[i][j]:.1%} ({tm.auroc[i][j]:.2f})" + ("*" if i == j else "")
                for j in range(len(tm.groups))
            ],
        )
    console.print(table)
    a = tm.averages("accuracy")
    console.print(
        f"same-group {a['same_group']:.1%} (* = k-fold within group), cross-group {a['cross_group']:.1%}, "
        f"drop {a['drop']:.1%}"
    )


def _slug(position: str) -> str:
    from traitscope.activations import parse_position

    return parse_position(position).slug
