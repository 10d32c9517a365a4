"""`traitscope finetune`: a LoRA finetune on OpenAI-format chat JSONL (loss on assistant tokens only)."""

from __future__ import annotations

from pathlib import Path

import typer

from traitscope.cli.app import app, console, emit_json
from traitscope.cli.common import ADAPTER_OPT
from traitscope.models.registry import DEFAULT_MODEL

# the names traitscope.finetune.bundled_sets() lists (spelled here: importing it loads torch at start-up)
BUNDLED_SETS = "a bundled set: gloomy, flattering, mixed, neutral"


@app.command()
def finetune(
    data: str = typer.Argument(..., help=f"Chat JSONL ({{'messages': [...]}} per line) or {BUNDLED_SETS}."),
    out: Path = typer.Option(..., "--out", "-o", help="Adapter folder to write (re-run the same command to resume)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Bundled alias, local directory or HF id."),
    rank: int = typer.Option(8, "--rank", help="LoRA rank."),
    alpha: float = typer.Option(16.0, "--alpha", help="LoRA alpha (scale = alpha / rank)."),
    epochs: int = typer.Option(2, "--epochs"),
    lr: float = typer.Option(2e-4, "--lr", help="AdamW learning rate."),
    batch_size: int = typer.Option(4, "--batch-size"),
    max_examples: int | None = typer.Option(None, "--max-examples", help="Train on the first N lines only."),
    seed: int = typer.Option(0, "--seed"),
    save_every: int = typer.Option(10, "--save-every", help="Optimizer steps between resumable checkpoints."),
    steer_train: str | None = typer.Option(
        None,
        "--steer-train",
        help="TRAIT:RATIO preventative steering during training only (e.g. optimism:-0.5; negative subtracts).",
    ),
    run_root: Path = typer.Option(
        Path("runs"), "--run-root", help="Where --steer-train finds <model>/<trait>/ vectors."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the provenance as JSON."),
) -> None:
    """LoRA-finetune a model; writes a peft adapter (safetensors), train_log.jsonl and provenance.json.

    Load the result anywhere with --adapter OUT (e.g. `traitscope monitor --adapter OUT ...`)."""
    from traitscope.finetune import FinetuneConfig, load_conversations
    from traitscope.finetune import finetune as run_finetune
    from traitscope.finetune.vectors import parse_steer_train, steer_train_spec
    from traitscope.models import load_model
    from traitscope.progress import rich_reporter

    cfg = FinetuneConfig(
        rank=rank, alpha=alpha, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, save_every=save_every
    ).validate()
    convs = load_conversations(data, max_examples)  # every line checked before any model loads
    if steer_train is not None:
        parse_steer_train(steer_train)
    with console.status(f"loading {model}"):
        lm = load_model(model)
    spec = steer_train_spec(lm, run_root, steer_train) if steer_train else None
    with rich_reporter() as rep:
        prov = run_finetune(lm, convs, out, cfg, spec, rep, data_name=str(data))
    if json_out:
        emit_json(prov)
        return
    console.print(
        f"adapter in [bold]{out}[/]: {prov['n_examples']} examples, {prov['steps']} steps, "
        f"loss {prov['first_loss']} -> {prov['final_loss']}"
        + (f"; steered in training only: {spec.describe}" if spec else "")
    )


def _models(model: str, adapter: Path):
    """The base model and the same model with the adapter merged in."""
    from traitscope.models import load_model

    with console.status(f"loading {model} and {model} + {adapter}"):
        tuned = load_model(model, adapter=adapter)
        return load_model(model), tuned


def _prompts(prompts: str | None, traits: tuple[str, ...]) -> list[str]:
    """A prompt set's texts, or by default the traits' steering questions (in order, no repeats)."""
    from traitscope.prompts import load_prompt_set
    from traitscope.traits import load_trait

    if prompts is not None:
        return [p.text for p in load_prompt_set(prompts).prompts]
    seen: dict[str, None] = {}
    for t in traits:
        seen.update(dict.fromkeys(load_trait(t).steering_questions))
    return list(seen)


@app.command()
def shift(
    traits: str = typer.Option(
        ..., "--traits", "-t", help="Comma-separated extracted traits, e.g. optimism,sycophancy."
    ),
    adapter: Path = typer.Option(..., "--adapter", help="Adapter folder from `traitscope finetune`."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="The base model the adapter was trained on."),
    run_root: Path = typer.Option(Path("runs"), "--run-root", help="Holds <model>/<trait>/ runs of the BASE model."),
    prompts: str | None = typer.Option(
        None, "--prompts", help="Prompt-set file or bundled set [default: the traits' steering questions]."
    ),
    judge: str = typer.Option("default", "--judge", help="Judge for trait expression (default, api, ...; none: skip)."),
    max_new_tokens: int = typer.Option(48, "--max-new-tokens", min=1, max=1024),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Finetuning shift along trait vectors (finetuned minus base, at prompt[-1] and over the
    response tokens teacher-forced through both), beside the judged change in trait expression."""
    from rich.table import Table

    from traitscope.cli.common import split_list
    from traitscope.finetune.shift import finetuning_shift

    names = split_list(traits, "traits")
    texts = _prompts(prompts, names)
    base, tuned = _models(model, adapter)
    scorer = None
    if judge != "none":
        from traitscope.judges.registry import get_judge

        scorer = get_judge(judge, lm=base)
    with console.status(f"answering {len(texts)} prompts with both models and measuring the shift"):
        result = finetuning_shift(base, tuned, run_root, names, texts, scorer, max_new_tokens)
    if json_out:
        emit_json(result)
        return
    table = Table(title=f"finetuning shift of {adapter} ({len(texts)} prompts)")
    for col in ("trait", "best layer", "shift prompt[-1]", "random p95", "shift response", "judged base", "judged ft"):
        table.add_column(col)
    for t, s in result["shift"].items():
        j = result.get("judged", {}).get(t, {})
        table.add_row(
            t,
            str(s["best_layer"]),
            f"{s['prompt_last']:+.3f}",
            f"{s['random_p95_prompt_last']:.3f}",
            "-" if s["response"] is None else f"{s['response']:+.3f}",
            str(j.get("base", "-")),
            str(j.get("finetuned", "-")),
        )
    console.print(table)


@app.command()
def screen(
    data: str = typer.Argument(..., help=f"Chat JSONL to screen, or {BUNDLED_SETS}."),
    traits: str = typer.Option(..., "--traits", "-t", help="Comma-separated extracted traits."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="The model you are about to finetune."),
    adapter: Path | None = ADAPTER_OPT,
    run_root: Path = typer.Option(Path("runs"), "--run-root", help="Holds <model>/<trait>/ run directories."),
    max_examples: int | None = typer.Option(None, "--max-examples", help="Screen the first N lines only."),
    max_new_tokens: int = typer.Option(48, "--max-new-tokens", min=1, max=1024),
    top: int = typer.Option(5, "--top", help="Rows to show at each end of the ranking."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Per sample: projection of the dataset's response minus the model's own answer (both teacher-forced).
    Positive pushes the model towards the trait; the ranking shows which samples to drop."""
    from traitscope.cli.common import split_list
    from traitscope.finetune import load_conversations
    from traitscope.finetune.screen import screen as run_screen
    from traitscope.models import load_model

    names = split_list(traits, "traits")
    convs = load_conversations(data, max_examples)
    with console.status(f"loading {model}"):
        lm = load_model(model, adapter=adapter)
    with console.status(f"screening {len(convs)} samples"):
        result = run_screen(lm, convs, run_root, names, max_new_tokens)
    if json_out:
        emit_json(result)
        return
    for t, r in result["traits"].items():
        console.print(f"[bold]{t}[/] (layer {r['layer']}): dataset mean difference {r['mean_difference']:+.3f}")
        shown = r["ranked"][:top] + ([] if len(r["ranked"]) <= 2 * top else r["ranked"][-top:])
        for row in shown:
            console.print(
                f"  {row['difference']:+8.3f}  line {row['line']:>4}  {row['response'][:90]}", highlight=False
            )


@app.command()
def diff(
    traits: str = typer.Option(..., "--traits", "-t", help="Comma-separated extracted traits."),
    prompt: str = typer.Option(..., "--prompt", "-p", help="The prompt both models read."),
    adapter: Path = typer.Option(..., "--adapter", help="Adapter folder from `traitscope finetune`."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="The base model the adapter was trained on."),
    run_root: Path = typer.Option(Path("runs"), "--run-root", help="Holds <model>/<trait>/ runs of the BASE model."),
    layers: str | None = typer.Option(None, "--layers", help="Layer spec [default: each trait's best layer]."),
    response: str | None = typer.Option(None, "--response", help="Read this answer instead of generating one."),
    max_new_tokens: int = typer.Option(48, "--max-new-tokens", min=1, max=4096),
    out: Path | None = typer.Option(None, "--out", help="Folder [default: the monitor's folder for this prompt]."),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Base and finetuned model token by token on the same tokens (the finetuned answer teacher-forced
    through the base model): writes <id>.diff.json beside the monitor's traces and <id>.diff.png."""
    from traitscope.cli.common import split_list
    from traitscope.cli.monitor_cmd import _prompt_set, default_out
    from traitscope.finetune.diff import diff_trace
    from traitscope.generation import SamplingConfig
    from traitscope.monitor import load_bank, write_trace
    from traitscope.report.diff_plots import plot_diff

    names = split_list(traits, "traits")
    pset = _prompt_set(prompt, None, response, None)
    base, tuned = _models(model, adapter)
    bank = load_bank(base, run_root, names, layers=layers)
    cfg = SamplingConfig(max_new_tokens=max_new_tokens).validate()
    with console.status("answering with the finetuned model, reading it with the base model"):
        result = diff_trace(base, tuned, bank, pset.prompts[0], cfg, pset.name)
    out_dir = out or default_out(run_root, base.slug, names, pset.name)
    path = write_trace(out_dir / f"{result['id']}.diff.json", result)
    png = plot_diff(result, out_dir / f"{result['id']}.diff.png")
    if json_out:
        emit_json({"file": str(path), "plot": str(png), "mean_delta_response": result["mean_delta_response"]})
        return
    console.print(f"[bold]finetuned answer:[/] {result['response']}", highlight=False)
    for t, by_layer in result["mean_delta_response"].items():
        for layer, v in by_layer.items():
            console.print(f"  {t} L{layer}: mean finetuned - base over the response {v:+.3f}")
    console.print(f"diff trace [bold]{path}[/], plot {png}; dashboard: traitscope view {run_root} (Diff)")


def register_reproduce() -> None:
    """`traitscope reproduce finetune`: one sub-command on the reproduce group."""
    from traitscope.cli.reproduce_cmd import _command_line, reproduce_app

    @reproduce_app.command("finetune")
    def reproduce_finetune(
        quick: bool = typer.Option(False, "--quick", help="The quick profile (a smoke test of every claim)."),
        out: Path = typer.Option(Path("runs/reproduce/finetune"), "--out", help="Runs, adapters and results."),
        model: str = typer.Option(DEFAULT_MODEL, "--model", "-m"),
        report: Path = typer.Option(Path("docs/REPRODUCTION.md"), "--report", help="Report whose section is replaced."),
        json_out: bool = typer.Option(False, "--json"),
    ) -> None:
        """At least 8 LoRA finetunes: finetuning shift vs judged behaviour, screening AUROC, preventative
        steering, neutral control, base-vs-finetuned dynamics; writes the `finetune` section of the report."""
        from traitscope.progress import rich_reporter
        from traitscope.reproduce.finetune import FULL, QUICK, publish, run

        with rich_reporter() as rep:
            results = run(QUICK if quick else FULL, out, model, rep, command=_command_line())
        paths = publish(results, report)
        if json_out:
            emit_json(results["summary"] | {"screening": results["screening"]})
            return
        console.print(f"finetune section written to [bold]{paths['report']}[/]")


register_reproduce()
