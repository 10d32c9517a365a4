"""PNG plots with matplotlib's Agg backend (no display needed): monitor trajectories, extraction
heatmaps (layer × method per site) and steering heatmaps (layer × strength of delta and
coherence). Each function takes already-loaded JSON and a path, and returns the path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: never try to open a window

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from traitscope.errors import TraitscopeError  # noqa: E402
from traitscope.report.data import METRIC_LABELS, METRICS, extraction_grids, outlier_tokens, steering_grids  # noqa: E402
from traitscope.report.figures import save  # noqa: E402


def _save(fig: Figure, path: Path) -> Path:
    return save(fig, path, dpi=110)


def _series(trace: dict[str, Any], traits: Sequence[str] | None, layers: Sequence[str] | None, key: str):
    for trait, by_layer in trace[key].items():
        if traits and trait not in traits:
            continue
        for layer, values in by_layer.items():
            if layers and layer not in layers:
                continue
            yield f"{trait} L{layer}", values


def plot_trajectories(
    trace: dict[str, Any],
    path: Path,
    traits: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    cosine: bool = False,
) -> Path:
    """Projection (or cosine) per token for each trait/layer, the prompt/response boundary
    dashed. Massive-norm tokens (token 0) stay plotted but out of the y range."""
    key = "cosines" if cosine else "projections"
    series = list(_series(trace, traits, layers, key))
    if not series:
        raise TraitscopeError(f"nothing to plot: traits {traits} / layers {layers} are not in trace {trace.get('id')}")
    n = len(trace["tokens"])
    skip = set()
    for values in trace["norms"].values():
        skip |= outlier_tokens(values)
    fig, ax = plt.subplots(figsize=(min(18, 4 + n * 0.12), 4.2))
    visible: list[float] = []
    for label, values in series:
        ax.plot(range(n), values, label=label, linewidth=1.4, marker="." if n < 80 else None)
        visible.extend(v for i, v in enumerate(values) if i not in skip)
    if visible:
        lo, hi = min(visible), max(visible)
        pad = (hi - lo) * 0.08 or 1.0
        ax.set_ylim(lo - pad, hi + pad)
    b = trace["boundary"]
    ax.axvline(b - 0.5, color="black", linestyle="--", linewidth=1)
    ax.text(b - 0.5, 1.01, " response →", transform=ax.get_xaxis_transform(), fontsize=8)
    if n <= 60:
        ax.set_xticks(range(n))
        ax.set_xticklabels([repr(t)[1:-1][:12] for t in trace["tokens"]], rotation=90, fontsize=7)
    ax.set_xlabel("token")
    ax.set_ylabel("cosine" if cosine else "projection (dot with unit vector)")
    ax.set_title(f"{trace.get('id')}: {trace.get('model')} {trace.get('site')} ({trace.get('mode')})", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _heat(
    ax: Any,
    grid: list[list[float | None]],
    rows: list[str],
    cols: list[str],
    title: str,
    cmap: str,
    vmin: float | None = None,
    vmax: float | None = None,
) -> None:
    import numpy as np

    data = np.array([[np.nan if v is None else v for v in r] for r in grid], dtype=float)
    im = ax.imshow(np.ma.masked_invalid(data), aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels(cols, fontsize=7, rotation=90 if len(cols) > 12 else 0)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=8)
    ax.set_title(title, fontsize=9)
    if data.size <= 160:
        for (i, j), v in np.ndenumerate(data):
            if not np.isnan(v):
                r, g, b, _ = im.cmap(im.norm(v))
                ink = "white" if 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.5 else "black"  # readable on the cell
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color=ink)
    plt.colorbar(im, ax=ax, fraction=0.046, pad=0.02)


def plot_extraction_heatmaps(evaluation: dict[str, Any], path: Path) -> Path:
    """One row of panels per site: AUROC, accuracy and effect size over methods × layers."""
    shaped = extraction_grids(evaluation)
    if not shaped["sites"]:
        raise TraitscopeError("evaluation.json holds no result rows to plot")
    sites, layers = shaped["sites"], [str(x) for x in shaped["layers"]]
    fig, axes = plt.subplots(
        len(sites), 3, figsize=(6 + len(layers) * 0.45, 1.2 + 1.6 * len(sites) * 1.3), squeeze=False
    )
    ranges = {"auroc": (0.0, 1.0), "accuracy": (0.0, 1.0), "effect_size": (None, None)}
    for i, site in enumerate(sites):
        for j, metric in enumerate(METRICS):
            lo, hi = ranges[metric]
            _heat(
                axes[i][j],
                shaped["grids"][site][metric],
                shaped["methods"],
                layers,
                f"{site}: {METRIC_LABELS[metric]}",
                "viridis",
                lo,
                hi,
            )
            axes[i][j].set_xlabel("layer", fontsize=8)
    fig.suptitle(f"{shaped['trait']} on {shaped['model']} ({shaped['position']})", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def plot_steering_heatmaps(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Per (method, site, mode, judge): trait delta and coherence over layers × strength."""
    shaped = steering_grids(rows)
    groups = shaped["groups"]
    if not groups:
        raise TraitscopeError("steering results hold no non-baseline configurations to plot")
    fig, axes = plt.subplots(len(groups), 2, figsize=(10, 1.5 + 2.6 * len(groups)), squeeze=False)
    for i, g in enumerate(groups):
        values = [abs(v) for row in g["delta"] for v in row if v is not None] or [1.0]
        span = max(values)
        _heat(axes[i][0], g["delta"], g["layers"], g["ratios"], f"{g['key']}: trait delta", "RdBu_r", -span, span)
        _heat(axes[i][1], g["coherence"], g["layers"], g["ratios"], f"{g['key']}: coherence", "viridis", 0, 100)
        for ax in axes[i]:
            ax.set_xlabel("perturbation ratio / coefficient", fontsize=8)
            ax.set_ylabel("layer(s)", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
