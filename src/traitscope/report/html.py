"""``report.html``: one self-contained page (tables, heatmaps and trajectory plots inlined as
PNG data URIs) that opens from disk. It only reads what the pipeline wrote."""

from __future__ import annotations

import base64
import html
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from traitscope.store import atomic_write_text

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee;margin:.5rem 0}
.note{color:#666;font-size:.85rem}table.text td{text-align:left;vertical-align:top;max-width:30rem}.best{background:#e8f6e8}
"""


def _img(png: Path) -> str:
    data = base64.b64encode(Path(png).read_bytes()).decode()
    return f'<img alt="{html.escape(png.stem)}" src="data:image/png;base64,{data}">'


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], best: int | None = None, cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        f"<tr{' class=best' if i == best else ''}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
        for i, r in enumerate(rows)
    )
    return f"<table{f' class={cls}' if cls else ''}><tr>{head}</tr>{body}</table>"


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "—" if v is None else format(v, spec)


def write_report(
    path: Path,
    evaluation: dict[str, Any],
    steering_rows: Sequence[dict[str, Any]] = (),
    traces: Sequence[dict[str, Any]] = (),
    best_steering: dict[str, Any] | None = None,
    floor: float = 75.0,
) -> Path:
    """One self-contained page: extraction table and heatmaps, steering table, heatmaps and
    answers, and up to two token-by-token trajectories."""
    with tempfile.TemporaryDirectory() as tmp:
        parts = [
            *_extraction_section(evaluation, Path(tmp)),
            *_steering_section(list(steering_rows), best_steering, floor, Path(tmp)),
            *_dynamics_section(traces, Path(tmp)),
        ]
    page = (
        f"<!doctype html><html><head><meta charset=utf-8><title>traitscope: {html.escape(evaluation['trait'])}"
        f"</title><style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )
    atomic_write_text(Path(path), page)
    return Path(path)


def _extraction_section(evaluation: dict[str, Any], tmp: Path) -> list[str]:
    from traitscope.report.plots import plot_extraction_heatmaps

    rows = [
        [
            k,
            r["layer"],
            f"{r['auroc']:.3f} ± {r['auroc_sd']:.3f}",
            f"{r['accuracy']:.3f} ± {r['accuracy_sd']:.3f}",
            f"{r['effect_size']:.2f} ({r['effect_size_ci95'][0]:.2f}, {r['effect_size_ci95'][1]:.2f})",
            "ok" if r["polarity_correct"] else "flipped",
            f"{r['random_auroc_p95']:.3f}",
        ]
        for k, r in sorted(evaluation["best"].items())
    ]
    header = ["site/method", "layer", "AUROC", "accuracy", "effect size d (95% CI)", "polarity", "random p95 AUROC"]
    return [
        f"<h1>{html.escape(evaluation['trait'])} on {html.escape(evaluation['model'])}</h1>",
        f"<p class=note>{evaluation['n']} rollouts ({evaluation['n_positive']} positive), position "
        f"{html.escape(evaluation['position'])}, layers {evaluation['layers']}, {evaluation['folds']}-fold "
        "cross-validation grouped by minimal pair; metrics are held-out means ± sd over folds.</p>",
        "<h2>Extraction: best layer per site and method</h2>",
        _table(header, rows),
        _img(plot_extraction_heatmaps(evaluation, tmp / "extraction.png")),
    ]


def _steering_section(rows: list[dict[str, Any]], best: dict[str, Any] | None, floor: float, tmp: Path) -> list[str]:
    from traitscope.report.plots import plot_steering_heatmaps

    if not any(not r["config"]["baseline"] for r in rows):
        return []
    best_i = next((i for i, r in enumerate(rows) if best and r["config"]["id"] == best["config"]["id"]), None)
    cells = [
        [r["config"]["label"], _fmt(r["trait_mean"], ".1f"), _fmt(r["coherence_mean"], ".1f"),
         _fmt(r.get("delta"), "+.1f"), r["n"]]
        for r in rows
    ]  # fmt: skip
    parts = [
        "<h2>Steering</h2>",
        _table(["configuration", "trait", "coherence", "delta", "n"], cells, best_i),
        f"<p class=note>Judge: {html.escape(str(rows[0]['judge']))}. Highlighted: the largest delta "
        f"with mean coherence ≥ {floor:g}.</p>",
        _img(plot_steering_heatmaps(rows, tmp / "steering.png")),
    ]
    if best:
        base = next(r for r in rows if r["config"]["baseline"])["answers"][:3]
        pairs = [[b["question"], b["answer"], s["answer"]] for b, s in zip(base, best["answers"][:3], strict=False)]
        parts += [
            "<h3>Answers: unsteered vs best configuration</h3>",
            _table(["question", "unsteered", "steered"], pairs, cls="text"),
        ]
    return parts


def _dynamics_section(traces: Sequence[dict[str, Any]], tmp: Path) -> list[str]:
    from traitscope.report.plots import plot_trajectories

    if not traces:
        return []
    parts = ["<h2>Token-by-token dynamics</h2>"]
    for i, trace in enumerate(traces[:2]):
        parts.append(f"<p>{html.escape(str(trace.get('id')))}: {html.escape(str(trace.get('prompt', ''))[:200])}</p>")
        parts.append(_img(plot_trajectories(trace, tmp / f"trace{i}.png")))
    return parts
