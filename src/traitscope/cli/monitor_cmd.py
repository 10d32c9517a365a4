"""`traitscope monitor`: per-token trait projections while a model answers (or reads) prompts."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import typer

from traitscope.cli.app import app, console, emit_json
from traitscope.cli.common import ADAPTER_OPT, DEVICE_MAP_OPT, MAX_MEMORY_OPT
from traitscope.errors import TraitscopeError
from traitscope.models.registry import DEFAULT_MODEL
from traitscope.store.layout import DEFAULT_RUN_ROOT


def _adhoc_id(text: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:32].strip("-") or "prompt"
    return f"{words}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _prompt_set(prompt: str | None, prompts: str | None, response: str | None, system: str | None):
    from traitscope.prompts import Prompt, PromptSet, load_prompt_set

    if (prompt is None) == (prompts is None):
        raise TraitscopeError("give exactly one of --prompt TEXT or --prompts FILE.json (or a bundled set name)")
    if prompts is not None:
        if response is not None:
            raise TraitscopeError("--response goes with --prompt; in a prompts file put a 'response' field per prompt")
        return load_prompt_set(prompts)
    if not prompt.strip():
        raise TraitscopeError("--prompt is empty; give the text to monitor")
    if response is not None and not response.strip():
        raise TraitscopeError("--response is empty; leave it out to let the model answer")
    return PromptSet(
        "adhoc", "prompts given on the command line", (Prompt(_adhoc_id(prompt), prompt, None, system, response),)
    )


def default_out(run_root: Path, model_slug: str, traits: tuple[str, ...], set_name: str) -> Path:
    """One trait: ``<run-root>/<model>/<trait>/monitor/<set>/`` (the run-directory layout);
    several: ``<run-root>/<model>/monitor/<set>/``, since the traces span traits."""
    from traitscope.store.layout import RunDir, model_monitor_dir

    if len(traits) == 1:
        return RunDir.of(model_slug, traits[0], run_root).monitor(set_name)
    return model_monitor_dir(run_root, model_slug, set_name)


@app.command()
def monitor(
    adapter: Path | None = ADAPTER_OPT,
    traits: str = typer.Option(..., "--traits", "-t", help="Comma-separated extracted traits, e.g. optimism,refusal."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="Bundled alias, local directory or HF id."),
    run_root: Path = typer.Option(DEFAULT_RUN_ROOT, "--run-root", help="Holds <model-slug>/<trait>/ run directories."),
    layers: str | None = typer.Option(
        None, "--layers", help="Layer spec [default: each trait's best layer for this site/method in evaluation.json]."
    ),
    site: str = typer.Option("residual", "--site", help="Site the vectors were extracted at."),
    method: str = typer.Option("probe", "--method", help="Extraction method of the vectors."),
    position: str = typer.Option("response[:]", "--position", help="Position spec the vectors were extracted at."),
    prompt: str | None = typer.Option(None, "--prompt", "-p", help="One prompt to monitor."),
    prompts: str | None = typer.Option(
        None, "--prompts", help="A prompt-set JSON file or a bundled set: harmful, benign, jailbreak, neutral."
    ),
    response: str | None = typer.Option(
        None, "--response", help="Read this response teacher-forced instead of generating."
    ),
    system: str | None = typer.Option(None, "--system", help="System prompt for --prompt."),
    max_new_tokens: int = typer.Option(48, "--max-new-tokens", min=1, max=4096),
    temperature: float = typer.Option(0.0, help="0 = greedy; > 0 samples (seeded)."),
    seed: int = typer.Option(0),
    batch_size: int = typer.Option(8, min=1),
    out: Path | None = typer.Option(None, "--out", help="Trace folder [default: under the run root, see docs]."),
    plot: bool = typer.Option(False, "--plot", help="Also write <id>.png trajectory plots."),
    color_by: str | None = typer.Option(None, "--color-by", help="Trait that colours the terminal output [first]."),
    json_out: bool = typer.Option(False, "--json", help="Print the summaries as JSON instead of coloured text."),
    device_map: str | None = DEVICE_MAP_OPT,
    max_memory: str | None = MAX_MEMORY_OPT,
) -> None:
    """Generate (or read) responses and record each token's projection onto trait vectors.

    Writes one JSON trace per prompt (schema: docs/monitoring.md) and shows the response coloured
    by a trait's projection: green above its threshold, red below."""
    from traitscope.cli.common import load, split_list
    from traitscope.generation import SamplingConfig
    from traitscope.monitor import load_bank, monitor_prompts

    trait_names = split_list(traits, "traits")
    pset = _prompt_set(prompt, prompts, response, system)  # checked before any model loads
    if color_by is not None and color_by not in trait_names:
        raise TraitscopeError(f"--color-by {color_by!r} is not one of --traits ({', '.join(trait_names)})")
    gen = SamplingConfig(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed).validate()
    with console.status(f"loading {model}"):
        lm = load(model, device_map, max_memory, adapter)
    bank = load_bank(lm, run_root, trait_names, site, method, position, layers)
    with console.status(f"monitoring {len(pset)} prompt(s)"):
        traces = monitor_prompts(lm, list(pset.prompts), bank, gen, pset.name, batch_size=batch_size)
    out_dir = out or default_out(run_root, lm.slug, trait_names, pset.name)
    paths = _write(traces, out_dir, plot)
    if json_out:
        files = [
            {"id": t["id"], "file": str(p), "summaries": t["summaries"]} for t, p in zip(traces, paths, strict=True)
        ]
        emit_json({"out": str(out_dir), "traces": files})
        return
    _print_traces(traces, color_by or trait_names[0])
    console.print(f"{len(traces)} trace(s) in [bold]{out_dir}[/]" + (" (with .png plots)" if plot else ""))


def _write(traces: list[dict], out_dir: Path, plot: bool) -> list[Path]:
    from traitscope.monitor import write_trace
    from traitscope.report.plots import plot_trajectories

    paths = []
    for trace in traces:
        paths.append(write_trace(out_dir / f"{trace['id']}.json", trace))
        if plot:
            plot_trajectories(trace, out_dir / f"{trace['id']}.png")
    return paths


def _print_traces(traces: list[dict], trait: str) -> None:
    from traitscope.monitor.render import coloured_response, summary_table

    for trace in traces:
        layer = next(iter(trace["projections"][trait]))
        console.print(f"[bold]{trace['id']}[/] [dim]{trace['prompt']}[/]  ({trait} L{layer})")
        console.print(coloured_response(trace, trait, layer))
        console.print(summary_table(trace))
