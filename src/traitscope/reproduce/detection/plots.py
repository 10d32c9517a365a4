"""PNG figures for the detection report (matplotlib Agg): the methods table, the transfer
matrices, the components, the natural-vs-instruction cosines and the base -> instruct transfer.
Each function takes the results dict and a path and returns the path, or None without data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

import traitscope.reproduce.detection.findings as log
from traitscope.reproduce.common.plots import LOGGED, OURS, PlotSpec, save, write_all
from traitscope.reproduce.detection.findings import COMPONENT_SITES, METHOD_ORDER


def plot_methods(f: dict[str, Any], path: Path) -> Path:
    s = f["summary"]
    x = np.arange(len(METHOD_ORDER))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = (
        ("accuracy", "mean accuracy"),
        ("fail_rate", "polarity failure rate"),
        ("effect_size", "mean effect size d"),
    )
    for ax, (key, label) in zip(axes, panels, strict=True):
        ax.bar(x - 0.2, [float(log.METHODS_TABLE[m][key]) for m in METHOD_ORDER], 0.4, color=LOGGED, label="log")
        ax.bar(x + 0.2, [s[m][key] for m in METHOD_ORDER], 0.4, color=OURS, label="ours")
        ax.set_xticks(x, METHOD_ORDER, rotation=30)
        ax.set_title(label)
        if key == "accuracy":
            ax.axhline(0.5, color="k", lw=0.8, ls=":")
            ax.set_ylim(0, 1)
    axes[0].legend(loc="lower left")
    return save(fig, path)


def _heat(ax: Any, m: dict[str, Any], title: str) -> None:
    acc = np.array(m["accuracy"])
    ax.imshow(acc, vmin=0.4, vmax=1.0, cmap="viridis")
    g = m["groups"]
    ax.set_xticks(range(len(g)), g, rotation=30)
    ax.set_yticks(range(len(g)), g)
    for i in range(len(g)):
        for j in range(len(g)):
            ax.text(
                j, i, f"{acc[i, j]:.0%}", ha="center", va="center", color="w" if acc[i, j] < 0.75 else "k", fontsize=8
            )
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("test")
    ax.set_ylabel("train")


def plot_transfer(findings: dict[str, Any], path: Path) -> Path | None:
    panels = [
        (k, meth)
        for k in ("cross_lang", "cross_topic", "cross_dist")
        if "matrices" in findings[k]
        for meth in ("probe", "mean_diff")
    ]
    if not panels:
        return None
    cols = 2
    rows = (len(panels) + 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(8, 3.6 * rows), squeeze=False)
    names = {"cross_lang": "language", "cross_topic": "topic (en)", "cross_dist": "optimism domain"}
    for ax, (k, meth) in zip(axes.flat, panels, strict=False):
        m = findings[k]["matrices"][meth]
        _heat(ax, m, f"{names[k]}: {meth} @ L{m['layer']} (cross {m['averages']['cross_group']:.0%})")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    return save(fig, path)


def plot_components(f: dict[str, Any], path: Path) -> Path:
    traits = list(f["per_trait"])
    fig, axes = plt.subplots(1, 2, figsize=(13, 3.8))
    width = 0.8 / len(COMPONENT_SITES)
    x = np.arange(len(traits))
    for ax, method in zip(axes, ("probe", "mean_diff"), strict=True):
        for k, site in enumerate(COMPONENT_SITES):
            ax.bar(x + (k - 1.5) * width, [f["per_trait"][t][method][site]["auroc"] for t in traits], width, label=site)
        ax.set_xticks(x, traits, rotation=30, ha="right")
        ax.set_ylim(0.4, 1.02)
        ax.set_title(f"{method}: best-layer CV AUROC per site")
    axes[0].legend(ncol=4, fontsize=8, loc="lower left")
    return save(fig, path)


def plot_elicitation(findings: dict[str, Any], path: Path) -> Path | None:
    pairs = [p for p in ("sycophancy", "optimism") if "methods" in findings[f"elicitation_{p}"]]
    if not pairs:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for pair, color in zip(pairs, ("#b63b3b", OURS), strict=False):
        f = findings[f"elicitation_{pair}"]
        for method, ls in (("mean_diff", "-"), ("probe", "--")):
            rows = f["methods"][method]["layers"]
            ax.plot(
                [r["layer"] for r in rows],
                [r["cosine"] for r in rows],
                ls,
                color=color,
                marker="o",
                ms=3,
                label=f"{pair} {method}",
            )
    for y, label in ((0.5, "> 0.5 same concept"), (0.3, "< 0.3 different")):
        ax.axhline(y, color="k", lw=0.7, ls=":")
        ax.text(ax.get_xlim()[1], y, f" {label}", va="center", fontsize=8)
    ax.set_xlabel("layer")
    ax.set_ylabel("cosine(natural, instruction)")
    ax.legend(fontsize=8)
    return save(fig, path)


def plot_model_transfer(f: dict[str, Any], path: Path) -> Path | None:
    if "sites" not in f:
        return None
    labels, own, rnd, carried = [], [], [], {}
    for s in f["sites"]:
        for method, d in s["methods"].items():
            labels.append(f"{s['site']}\n{method}")
            own.append(d["target_own"]["auroc"])
            rnd.append(d["random_p95"]["auroc"])
            for a in d["arms"]:
                carried.setdefault(a["arm"], []).append(a["auroc"])
    x = np.arange(len(labels))
    width = 0.8 / (1 + len(carried))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.bar(x - 0.4 + width / 2, own, width, color=LOGGED, label="target's own vector")
    for k, (arm, vals) in enumerate(carried.items(), start=1):
        ax.bar(x - 0.4 + width / 2 + k * width, vals, width, label=f"carried ({arm})")
    ax.scatter(x, rnd, marker="_", s=900, color="k", zorder=3, label="random p95")
    ax.axhline(0.5, color="k", lw=0.8, ls=":")
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("held-out AUROC on the target")
    ax.set_title(f"{f['source']} → {f['target']} ({f['trait']})")
    ax.legend(fontsize=8, loc="lower right")
    return save(fig, path)


PLOTS: dict[str, PlotSpec] = {
    "methods": ("detection-methods.png", lambda r: r["findings"]["methods"], plot_methods),
    "transfer": ("detection-transfer.png", lambda r: r["findings"], plot_transfer),
    "components": ("detection-components.png", lambda r: r["findings"]["components"], plot_components),
    "elicitation": ("detection-elicitation.png", lambda r: r["findings"], plot_elicitation),
    "transfer_model": (
        "detection-base-to-instruct.png",
        lambda r: r["findings"]["base_to_instruct"],
        plot_model_transfer,
    ),
}


def write_plots(results: dict[str, Any], directory: Path) -> dict[str, Path]:
    return write_all(results, PLOTS, directory)
