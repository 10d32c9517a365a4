"""PNG figures for the steering section (matplotlib Agg), drawn only from the results dict.
Each function returns the path it wrote, or None when its finding has no data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from traitscope.reproduce.common.plots import OURS, PlotSpec, save, write_all


def plot_ratio_law(f: dict[str, Any], path: Path) -> Path | None:
    if "curves" not in f:
        return None
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.4), sharex=True)
    for col, method in enumerate(("mean_diff", "probe")):
        for layer, c in f["curves"][method].items():
            x = [p["ratio"] for p in c["points"]]
            axes[0, col].plot(x, [p["delta"] for p in c["points"]], marker="o", ms=3, label=f"L{layer}")
            axes[1, col].plot(x, [p["coherence"] for p in c["points"]], marker="o", ms=3, label=f"L{layer}")
        for row in (0, 1):
            ax = axes[row, col]
            ax.axvspan(0.5, 0.8, color="#9fd49f", alpha=0.3, lw=0)
            ax.axvspan(1.0, 1.3, color="#f2b8b8", alpha=0.3, lw=0)
        axes[0, col].axhline(0, color="k", lw=0.7)
        axes[1, col].axhline(f["floor"], color="k", lw=0.8, ls=":")
        axes[0, col].set_title(f"{method}: trait Δ vs perturbation ratio")
        axes[1, col].set_xlabel("perturbation ratio coef·‖v‖/‖h‖")
    axes[0, 0].set_ylabel("trait Δ (points)")
    axes[1, 0].set_ylabel("coherence (dotted: floor)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("shaded: the log's sweet spot (green, 0.5-0.8) and breakdown (red, 1.0-1.3)", fontsize=9, y=1.0)
    fig.tight_layout()
    return save(fig, path)


def plot_layers(f: dict[str, Any], path: Path) -> Path | None:
    scan = f.get("scan")
    if not scan:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for method, color in (("probe", OURS), ("mean_diff", "#b6823b")):
        rows = [r for r in scan["table"][method] if r["delta"] is not None]
        layers = [r["layer"] for r in rows]
        axes[0].plot(layers, [r["delta"] for r in rows], marker="o", ms=3, color=color, label=f"{method} Δ")
        axes[0].plot(layers, [100 * r["accuracy"] for r in rows], ls=":", color=color, label=f"{method} val acc %")
        for ax, key in ((axes[1], "effect_size"), (axes[2], "accuracy")):
            ax.scatter([r[key] for r in rows], [r["delta"] for r in rows], color=color, s=14, label=method)
    axes[0].axhline(0, color="k", lw=0.7)
    axes[0].set_xlabel("layer")
    axes[0].set_title("steering Δ and validation accuracy per layer")
    axes[0].legend(fontsize=7)
    r_e, r_a = f.get("r_effect"), f.get("r_accuracy")
    axes[1].set_title(f"effect size vs Δ (probe r = {r_e:+.2f})" if r_e is not None else "effect size vs Δ")
    axes[2].set_title(f"val accuracy vs Δ (probe r = {r_a:+.2f})" if r_a is not None else "val accuracy vs Δ")
    axes[1].set_xlabel("Cohen's d (CV)")
    axes[2].set_xlabel("validation accuracy (CV)")
    axes[1].set_ylabel("steering Δ")
    axes[1].legend(fontsize=8)
    return save(fig, path)


def plot_multi(f: dict[str, Any], path: Path) -> Path | None:
    if "rows" not in f:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for a, b in f["ranges"]:
        for mode, ls in (("weighted", "-"), ("orthogonal", "--")):
            rows = sorted(
                (r for r in f["rows"] if r["mode"] == mode and r["layers"] == list(range(a, b + 1))),
                key=lambda r: r["ratio"],
            )
            x = [r["ratio"] for r in rows]
            axes[0].plot(x, [r["delta"] for r in rows], ls, marker="o", ms=3, label=f"L[{a}-{b}] {mode}")
            axes[1].plot(x, [r["coherence"] for r in rows], ls, marker="o", ms=3, label=f"L[{a}-{b}] {mode}")
    s = f.get("best_single")
    if s:
        axes[0].axhline(s["delta"], color="k", lw=0.8, ls=":", label=f"best single L{s['layers'][0]} @ {s['ratio']:g}")
    axes[1].axhline(f.get("floor", 75), color="k", lw=0.8, ls=":")
    axes[0].set_title("multi-layer: trait Δ vs total ratio")
    axes[1].set_title("coherence vs total ratio (dotted: floor)")
    for ax in axes:
        ax.set_xlabel("total perturbation ratio (split over the range)")
    axes[0].legend(fontsize=7)
    return save(fig, path)


def plot_dynamics(f: dict[str, Any], path: Path) -> Path | None:
    if "curves" not in f:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.8))
    for name, color in (("harmful", "#b63b3b"), ("benign", OURS)):
        c = f["curves"][name]
        x = list(range(len(c)))
        m = [p["mean"] for p in c]
        sd = [p["sd"] for p in c]
        ax.plot(x, m, color=color, label=f"{name} (n={f['summary'][name]['n']})")
        ax.fill_between(
            x,
            [a - b for a, b in zip(m, sd, strict=True)],
            [a + b for a, b in zip(m, sd, strict=True)],
            color=color,
            alpha=0.15,
            lw=0,
        )
    if f.get("onset") is not None:
        ax.axvline(f["onset"], color="k", ls=":", lw=0.9, label=f"separates at token {f['onset']}")
    ax.set_xlabel("response token")
    ax.set_ylabel(f"projection on refusal ({f['site']} L{f['layer']} {f['method']})")
    ax.set_title("refusal projection per response token (mean ± sd over prompts)")
    ax.legend(fontsize=8)
    return save(fig, path)


def plot_jailbreaks(f: dict[str, Any], path: Path) -> Path | None:
    rows = f.get("per_prompt")
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 1.2))
    y = list(range(len(rows)))
    ax.barh([i + 0.2 for i in y], [r["unsteered"] or 0 for r in rows], 0.4, color="#c8c8c8", label="unsteered")
    ax.barh(
        [i - 0.2 for i in y],
        [r["steered"] or 0 for r in rows],
        0.4,
        color=OURS,
        label="steered" + (f" ({f['best']['label']})" if f.get("best") else ""),
    )
    ax.axvline(50, color="k", ls=":", lw=0.8)
    ax.set_yticks(y, [r["note"] or r["id"] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("refusal score (≥ 50: blocked)")
    ax.legend(fontsize=7, loc="lower right")
    return save(fig, path)


def plot_cross(f: dict[str, Any], path: Path) -> Path | None:
    if "arms" not in f:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    curves = [(f"own {m}", d["points"], "-") for m, d in f["own"].items()]
    curves += [(f"carried {a['method']} ({a['arm']})", a["points"], "--") for a in f["arms"]]
    for label, pts, ls in curves:
        x = [p["ratio"] for p in pts]
        axes[0].plot(x, [p["delta"] for p in pts], ls, marker="o", ms=3, label=label)
        axes[1].plot(x, [p["coherence"] for p in pts], ls, marker="o", ms=3, label=label)
    axes[0].axhline(0, color="k", lw=0.7)
    axes[1].axhline(f.get("floor", 75.0), color="k", lw=0.8, ls=":")
    axes[0].set_title(f"{f['source']['name']} L{f['source_layer']} → {f['target']['name']} L{f['target_layer']}: Δ")
    axes[1].set_title("coherence (dotted: floor)")
    for ax in axes:
        ax.set_xlabel("perturbation ratio")
    axes[0].legend(fontsize=7)
    return save(fig, path)


def _finding(key: str, with_floor: bool = False) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
    def pick(results: dict[str, Any]) -> dict[str, Any] | None:
        f = results["findings"].get(key)
        if f is None or not with_floor:
            return f
        return {**f, "floor": results["meta"].get("floor", 75.0)}

    return pick


PLOTS: dict[str, PlotSpec] = {
    "ratio_law": ("steering_ratio_law.png", _finding("ratio_law"), plot_ratio_law),
    "metrics_vs_steering": ("steering_layers.png", _finding("metrics_vs_steering"), plot_layers),
    "multi_layer": ("steering_multilayer.png", _finding("multi_layer", with_floor=True), plot_multi),
    "refusal_dynamics": ("steering_refusal_dynamics.png", _finding("refusal_dynamics"), plot_dynamics),
    "jailbreaks": ("steering_jailbreaks.png", _finding("jailbreaks"), plot_jailbreaks),
    "cross_model": ("steering_crossmodel.png", _finding("cross_model", with_floor=True), plot_cross),
}


def write_plots(results: dict[str, Any], directory: Path) -> dict[str, Path]:
    return write_all(results, PLOTS, directory)
