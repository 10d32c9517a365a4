"""Helpers every command shares: list/number options, the default run directory, the best-vector table."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from traitscope.cli.app import console
from traitscope.errors import TraitscopeError
from traitscope.specs import DEFAULT_POSITION
from traitscope.store import DEFAULT_RUN_ROOT, RunDir

RUN_OPT = typer.Option(None, "--run", help="Run directory from `extract` [default: runs/<model>/<trait>].")
ADAPTER_OPT = typer.Option(
    None, "--adapter", help="LoRA adapter folder from `traitscope finetune`, merged into the model's weights."
)
POSITION_OPT = typer.Option(
    DEFAULT_POSITION, "--position", help="Which extracted vectors: the position spec they were extracted at."
)


DEVICE_MAP_OPT = typer.Option(None, "--device-map", help="'auto': spread a model too big for one device (accelerate).")
MAX_MEMORY_OPT = typer.Option(None, "--max-memory", help="Per-device caps for --device-map, e.g. '0=20GiB,cpu=60GiB'.")


def load(model: str, device_map: str | None = None, max_memory: str | None = None, adapter: Path | None = None):
    """The model, placed as --device-map/--max-memory say (checked before anything loads), with
    --adapter merged in."""
    from traitscope.models import load_model
    from traitscope.models.placement import check_device_map, parse_max_memory

    memory = parse_max_memory(max_memory)
    extra = {} if adapter is None else {"adapter": adapter}
    if device_map is None and memory is None:
        return load_model(model, **extra)
    return load_model(model, device_map=check_device_map(device_map), max_memory=memory, **extra)


def split_list(value: str, what: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise TraitscopeError(f"--{what} is empty; give a comma-separated list")
    return items


def floats(value: str, what: str) -> list[float]:
    try:
        return [float(v) for v in split_list(value, what)]
    except ValueError:
        raise TraitscopeError(f"--{what} {value!r}: expected comma-separated numbers such as 0.2,0.4") from None


def run_dir(
    run: Path | None, model: str, trait: str, run_root: Path = DEFAULT_RUN_ROOT, adapter: Path | None = None
) -> RunDir:
    """``--run`` if given, else ``<run-root>/<model-slug>/<trait>``; a finetuned model (``--adapter``)
    gets ``<model-slug>+<adapter folder name>`` so its runs never overwrite the base model's."""
    if run is not None:
        return RunDir(run)
    return RunDir.of(model + (f"+{Path(adapter).name}" if adapter else ""), trait, run_root)


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
