"""`traitscope info` and `traitscope models`."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from traitscope.cli.app import app, console, emit_json
from traitscope.cli.common import ADAPTER_OPT, DEVICE_MAP_OPT, MAX_MEMORY_OPT, load
from traitscope.models import BUNDLED, DEFAULT_MODEL, cache_root, cached_status

MODEL_OPT = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Bundled alias, local directory or Hugging Face id.")


@app.command()
def info(
    adapter: Path | None = ADAPTER_OPT,
    model: str = MODEL_OPT,
    prompt: str = typer.Option("What is the capital of France?", help="Prompt for the test generation."),
    max_new_tokens: int = typer.Option(24, min=1, max=512),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    device_map: str | None = DEVICE_MAP_OPT,
    max_memory: str | None = MAX_MEMORY_OPT,
) -> None:
    """Load a model, run one short greedy generation, and print what traitscope sees."""
    from traitscope.generation import complete
    from traitscope.models.placement import offloaded

    with console.status(f"loading {model} (a bundled model's first load de-quantises it, 20-90 s)"):
        lm = load(model, device_map, max_memory, adapter)
    start = time.perf_counter()
    text = complete(lm, prompt, max_new_tokens=max_new_tokens)
    gen_s = time.perf_counter() - start
    facts = {
        "model": lm.name,
        "source": lm.source,
        "architecture": lm.model_type,
        "layers": lm.n_layers,
        "hidden_size": lm.hidden_size,
        "instruct": lm.instruct,
        "sites": {s: lm.site_dim(s) for s in lm.sites()},
        "device": str(lm.device),
        "offloaded": offloaded(lm.model),
        "load_seconds": round(lm.load_seconds, 2),
        "prompt": prompt,
        "generated": text,
        "generate_seconds": round(gen_s, 2),
    }
    if json_out:
        emit_json(facts)
        return
    table = Table(show_header=False, box=None)
    for k, v in facts.items():
        if k == "sites":
            v = ", ".join(f"{s} (d={d})" for s, d in v.items())
        table.add_row(f"[bold]{k}[/]", str(v))
    console.print(table)


@app.command()
def models(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the bundled model aliases and whether their de-quantised copy is cached."""
    rows = [
        {
            "alias": b.alias,
            "default": b.alias == DEFAULT_MODEL,
            "instruct": b.instruct,
            "package": b.package,
            "cache": cached_status(b.alias),
            "description": b.description,
        }
        for b in BUNDLED.values()
    ]
    if json_out:
        emit_json({"cache_root": str(cache_root()), "models": rows})
        return
    table = Table(title=f"bundled models (cache: {cache_root()})")
    for col in ("alias", "instruct", "cache", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["alias"] + (" (default)" if r["default"] else ""), str(r["instruct"]), r["cache"], r["description"]
        )
    console.print(table)
    console.print("Any Hugging Face id or local model directory also works with --model.")
