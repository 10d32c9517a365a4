"""`traitscope judge`: score (question, answer) lines for a trait and for coherence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from traitscope.cli.app import app, console, emit_json
from traitscope.cli.common import ADAPTER_OPT, DEVICE_MAP_OPT, MAX_MEMORY_OPT, load
from traitscope.errors import TraitscopeError
from traitscope.jsonl import parse_jsonl
from traitscope.models.registry import DEFAULT_MODEL
from traitscope.store import atomic_write_text


def read_pairs(path: Path) -> list[dict[str, Any]]:
    """JSONL lines with string fields 'question' and 'answer' (other fields are kept; an optional
    'label' must be 1 = shows the trait or 0 = its opposite)."""
    rows: list[dict[str, Any]] = []
    for lineno, obj in parse_jsonl(path, '{"question": "...", "answer": "..."}'):
        where = f"{path}:{lineno}"
        for key in ("question", "answer"):
            if key not in obj:
                raise TraitscopeError(f"{where}: missing field {key!r}")
            if not isinstance(obj[key], str):
                raise TraitscopeError(f"{where}: field {key!r} must be a string, got {type(obj[key]).__name__}")
        if "label" in obj and (isinstance(obj["label"], bool) or obj["label"] not in (0, 1)):
            raise TraitscopeError(f"{where}: field 'label' must be 1 (shows the trait) or 0 (its opposite)")
        rows.append(obj)
    if not rows:
        raise TraitscopeError(f"{path}: no lines to judge")
    return rows


def write_jsonl_atomic(path: Path, records: list[dict[str, Any]]) -> None:
    """Readers never see half a file: temp file + rename (traitscope.store)."""
    atomic_write_text(path, "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records))


def label_auroc(records: list[dict[str, Any]]) -> str | None:
    """With labelled lines: how well the trait scores separate label 1 from label 0 (AUROC over
    the scored lines), as a line to print; None when no line has a label."""
    import torch

    from traitscope.evaluation.metrics import auroc

    labelled = [r for r in records if "label" in r]
    if not labelled:
        return None
    scored = [r for r in labelled if r["trait_score"] is not None]
    where = f"{len(labelled)} of {len(records)} lines labelled, {len(labelled) - len(scored)} unscored"
    if len({r["label"] for r in scored}) < 2:
        return f"AUROC: n/a (needs scored lines of both labels; {where})"
    value = auroc(torch.tensor([r["trait_score"] for r in scored]), torch.tensor([r["label"] for r in scored]))
    return f"AUROC of the trait score against the labels: {float(value):.3f} ({where})"


def _mean(values: list[float | None]) -> float | None:
    real = [v for v in values if v is not None]
    return sum(real) / len(real) if real else None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _cut(text: str, n: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


@app.command()
def judge(
    adapter: Path | None = ADAPTER_OPT,
    trait: str = typer.Argument(..., help="Bundled trait name or trait folder."),
    input_path: Path = typer.Option(..., "--input", "-i", help='JSONL file, one {"question", "answer"} per line.'),
    run: Path | None = typer.Option(
        None, "--run", help="Run directory whose rollouts.jsonl trains the embedding judge."
    ),
    judge_name: str = typer.Option(
        "default", "--judge", "-j", help="default, api, local, embedding, rubric or lexicon."
    ),
    model: str = typer.Option(
        DEFAULT_MODEL, "--model", "-m", help="Unsteered model for coherence (default) or the judging model (local)."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the scored lines as JSONL (atomically)."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
    device_map: str | None = DEVICE_MAP_OPT,
    max_memory: str | None = MAX_MEMORY_OPT,
) -> None:
    """Score each line's answer 0-100 for a trait and for coherence (failures show as '-' with a reason)."""
    from traitscope.judges import JUDGE_NAMES, get_judge, needs_model
    from traitscope.traits import load_trait

    if judge_name not in JUDGE_NAMES:
        raise TraitscopeError(f"unknown judge {judge_name!r}; use one of: {', '.join(JUDGE_NAMES)}")
    trait_obj = load_trait(trait)
    rows = read_pairs(input_path)
    lm = None
    if needs_model(judge_name):
        with console.status(f"loading {model}"):
            lm = load(model, device_map, max_memory, adapter)
    scorer = get_judge(judge_name, trait_obj, run, lm)
    pairs = [(r["question"], r["answer"]) for r in rows]
    with console.status(f"judging {len(pairs)} answer(s) with {scorer.name}"):
        trait_scores = scorer.score_trait(trait_obj, pairs)
        coherence = scorer.score_coherence(pairs)
    records = [
        {
            **row,
            "trait": trait_obj.name,
            "judge": scorer.name,
            "trait_score": t.value,
            "trait_reason": t.reason,
            "coherence": c.value,
            "coherence_reason": c.reason,
        }
        for row, t, c in zip(rows, trait_scores, coherence, strict=True)
    ]
    if out is not None:
        write_jsonl_atomic(out, records)
    if json_out:
        emit_json(records)
        return
    _print_table(records, trait_obj.name, scorer.name, out)


def _print_table(records: list[dict[str, Any]], trait: str, judge_name: str, out: Path | None) -> None:
    table = Table(title=f"{trait} scored by {judge_name}")
    for col, kw in (
        ("#", {"justify": "right"}),
        ("question", {}),
        ("answer", {}),
        (trait, {"justify": "right"}),
        ("coherence", {"justify": "right"}),
        ("note", {"style": "dim"}),
    ):
        table.add_column(col, **kw)
    for i, r in enumerate(records, start=1):
        notes = [
            n
            for n, v in ((r["trait_reason"], r["trait_score"]), (r["coherence_reason"], r["coherence"]))
            if v is None and n
        ]
        table.add_row(
            str(i),
            escape(_cut(r["question"], 40)),
            escape(_cut(r["answer"])),
            _fmt(r["trait_score"]),
            _fmt(r["coherence"]),
            escape("; ".join(notes)),
        )
    trait_mean = _mean([r["trait_score"] for r in records])
    coh_mean = _mean([r["coherence"] for r in records])
    unscored = sum(r["trait_score"] is None for r in records), sum(r["coherence"] is None for r in records)
    table.add_section()
    table.add_row(
        "",
        "[bold]mean[/]",
        "",
        f"[bold]{_fmt(trait_mean)}[/]",
        f"[bold]{_fmt(coh_mean)}[/]",
        f"unscored: {unscored[0]} trait, {unscored[1]} coherence" if any(unscored) else "",
    )
    console.print(table)
    agreement = label_auroc(records)
    if agreement:
        console.print(agreement)
    if out is not None:
        console.print(f"wrote {len(records)} line(s) to {out}")
