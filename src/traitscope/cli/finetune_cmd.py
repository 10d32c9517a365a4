"""`traitscope finetune`: a LoRA finetune on OpenAI-format chat JSONL (loss on assistant tokens only)."""

from __future__ import annotations

from pathlib import Path

import typer

from traitscope.cli.app import app, console, emit_json
from traitscope.models.registry import DEFAULT_MODEL


@app.command()
def finetune(
    data: str = typer.Argument(
        ..., help="Chat JSONL ({'messages': [...]} per line) or a bundled set: gloomy, flattering, mixed, neutral."
    ),
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
    from traitscope.extraction.progress import rich_reporter
    from traitscope.finetune import FinetuneConfig, load_conversations
    from traitscope.finetune import finetune as run_finetune
    from traitscope.finetune.vectors import parse_steer_train, steer_train_spec
    from traitscope.models import load_model

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
