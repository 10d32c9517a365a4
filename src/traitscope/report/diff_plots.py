"""The base-vs-finetuned plot of a diff trace (``traitscope diff``): per trait/layer, the base
model's projection (dashed) and the finetuned model's (solid) on the same tokens, and their
difference below."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from traitscope.report.data import outlier_tokens  # noqa: E402
from traitscope.report.plots import _save  # noqa: E402


def plot_diff(diff: dict[str, Any], path: Path) -> Path:
    """Two panels sharing the token axis: projections of both models, then finetuned minus base."""
    n = len(diff["tokens"])
    skip = outlier_tokens(next(iter(diff["base"]["norms"].values())))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(min(18, 4 + n * 0.12), 6.4), sharex=True)
    for trait, by_layer in diff["finetuned"]["projections"].items():
        for layer, ft in by_layer.items():
            base = diff["base"]["projections"][trait][layer]
            (line,) = top.plot(range(n), ft, label=f"{trait} L{layer} finetuned", linewidth=1.4)
            top.plot(range(n), base, linestyle="--", color=line.get_color(), label=f"{trait} L{layer} base")
            bottom.plot(range(n), diff["delta"][trait][layer], color=line.get_color(), label=f"{trait} L{layer}")
    visible = [v for line in top.get_lines() for i, v in enumerate(line.get_ydata()) if i not in skip]
    if visible:
        lo, hi = min(visible), max(visible)
        top.set_ylim(lo - (hi - lo) * 0.08 - 1e-3, hi + (hi - lo) * 0.08 + 1e-3)
    for ax in (top, bottom):
        ax.axvline(diff["boundary"] - 0.5, color="black", linestyle="--", linewidth=1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    bottom.axhline(0, color="grey", linewidth=0.8)
    top.set_ylabel("projection")
    bottom.set_ylabel("finetuned - base")
    bottom.set_xlabel("token (response after the dashed line)")
    if n <= 60:
        bottom.set_xticks(range(n))
        bottom.set_xticklabels([repr(t)[1:-1][:12] for t in diff["tokens"]], rotation=90, fontsize=7)
    adapter = Path(diff.get("adapter") or "adapter").name
    top.set_title(f"{diff['id']}: {diff['model']} vs +{adapter}, same tokens ({diff['site']})", fontsize=10)
    return _save(fig, path)
