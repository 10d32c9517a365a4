"""Steering finding 1, the perturbation-ratio law on optimism: trait and coherence against the
perturbation ratio for both methods at several layers, and the log's vec_norm/act_norm recomputed."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from traitscope.activations import parse_position
from traitscope.reproduce.common.runs import load_run
from traitscope.reproduce.common.verdict import Check
from traitscope.reproduce.steering.experiments.context import METHODS, Context, best_coherent, coherent, steer_rows
from traitscope.reproduce.steering.findings import check
from traitscope.steering.evaluate import SteerConfig
from traitscope.store import RunDir, load_vectors
from traitscope.traits.schema import Trait

SWEET_BAND = (0.5, 0.8)  # the log's sweet spot
BREAK_BAND = (1.0, 1.3)  # the log's breakdown
CENSORED_BREAK = 2.0  # a layer whose coherence never broke in the grid counts as breaking here


def sweep_configs(layers: Sequence[int], ratios: Sequence[float]) -> list[SteerConfig]:
    return [SteerConfig(m, "residual", (layer,), ratio=r) for m in METHODS for layer in layers for r in ratios]


def band_distance(value: float, band: tuple[float, float]) -> float:
    lo, hi = band
    return 0.0 if lo <= value <= hi else (lo - value if value < lo else value - hi)


def curve_summary(rows: Sequence[dict[str, Any]], floor: float) -> dict[str, Any]:
    """One (method, layer) curve: the best coherent ratio (largest positive delta) and the first
    ratio where mean coherence falls below the floor (None: never, in this grid)."""
    rows = sorted(rows, key=lambda r: r["ratio"])
    best = best_coherent(rows, floor)
    broke = next((r["ratio"] for r in rows if not coherent(r, floor)), None)
    return {
        "best_ratio": best["ratio"] if best and best["delta"] > 0 else None,
        "best_delta": best["delta"] if best else None,
        "break_ratio": broke,
        "points": [
            {
                "ratio": r["ratio"],
                "trait": r["trait"],
                "coherence": r["coherence"],
                "delta": r["delta"],
                "coef": next(iter(r["coefs"].values()), None),
            }
            for r in rows
        ],
    }


def raw_norm_ratios(run_dir: Path, layers: Sequence[int], seed: int = 0) -> dict[int, dict[str, float]]:
    """The log's vec_norm / act_norm, recomputed from the run's response-mean activations:
    traitscope stores unit vectors, so the raw mean difference and a probe fitted on raw
    (un-normalised) activations stand in for the log's un-normalised vectors."""
    from sklearn.linear_model import LogisticRegression

    run = load_run(run_dir, ("residual",))
    y = run.y.bool()
    vset = load_vectors(RunDir(Path(run_dir)).vector_file(parse_position(run.position).slug, "residual", "probe"))
    out: dict[int, dict[str, float]] = {}
    for layer in layers:
        X = run.at("residual", layer).double()
        act_norm = float(vset.act_norm(layer) or 1.0)
        diff = X[y].mean(0) - X[~y].mean(0)
        clf = LogisticRegression(C=1.0, max_iter=5000, random_state=seed).fit(X.numpy(), y.numpy())
        out[layer] = {
            "act_norm": act_norm,
            "mean_diff": float(diff.norm()) / act_norm,
            "probe": float(torch.from_numpy(clf.coef_[0]).norm()) / act_norm,
        }
    return out


def ratio_law(
    ctx: Context, trait: Trait, run_dir: Path, layers: Sequence[int], questions: Sequence[str]
) -> dict[str, Any]:
    p = ctx.sizes
    base, rows = steer_rows(ctx, trait, run_dir, sweep_configs(layers, p.sweep_ratios), questions)
    curves = {
        m: {
            str(layer): curve_summary([r for r in rows if r["method"] == m and r["layers"] == [layer]], ctx.floor)
            for layer in layers
        }
        for m in METHODS
    }
    norms = raw_norm_ratios(run_dir, layers, ctx.profile.seed)
    working = working_ratio(curves)
    return {
        "layers": list(layers),
        "ratios": list(p.sweep_ratios),
        "working_ratio": working if working is not None else p.fallback_ratio,
        "working_ratio_source": "sweep" if working is not None else "fallback (the log's 0.6)",
        "baseline": base,
        "floor": ctx.floor,
        "curves": curves,
        "norms": {str(k): v for k, v in norms.items()},
        "rows": rows,
        "checks": ratio_checks(curves, norms, list(layers)),
    }


def working_ratio(curves: dict[str, dict[str, Any]]) -> float | None:
    """The median best coherent ratio over every (method, layer) curve; the lower middle value for
    an even count, so it stays on the sweep's grid. None when no curve gained coherently."""
    best = [c["best_ratio"] for m in METHODS for c in curves[m].values() if c["best_ratio"] is not None]
    return statistics.median_low(best) if best else None


def _spread(values: Sequence[float]) -> float | None:
    vals = [v for v in values if v > 0]
    return max(vals) / min(vals) if len(vals) >= 2 else None


def ratio_checks(curves: dict[str, Any], norms: dict[int, dict[str, float]], layers: list[int]) -> list[Check]:
    all_curves = [c for m in METHODS for c in curves[m].values()]
    breaks = [c["break_ratio"] if c["break_ratio"] is not None else CENSORED_BREAK for c in all_curves]
    sweet = working_ratio(curves)
    brk = statistics.median(breaks)
    first, last = str(layers[0]), str(layers[-1])
    fragile = statistics.mean(
        (curves[m][first]["break_ratio"] or CENSORED_BREAK) - (curves[m][last]["break_ratio"] or CENSORED_BREAK)
        for m in METHODS
    )
    md = _spread([norms[layer]["mean_diff"] for layer in layers])
    pr = _spread([norms[layer]["probe"] for layer in layers])
    censored = " (a curve that never broke counts as 2.0)" if any(c["break_ratio"] is None for c in all_curves) else ""
    return [
        check(
            "sweet_spot_distance",
            "best coherent ratio lies in the sweet spot (median over methods × layers; distance from 0.5-0.8)",
            "0.5-0.8",
            None if sweet is None else band_distance(sweet, SWEET_BAND),
            None if sweet is not None else "no coherent configuration raised the trait score",
            shown=None if sweet is None else f"median {sweet:.2f} (distance {band_distance(sweet, SWEET_BAND):.2f})",
        ),
        check(
            "break_distance",
            "coherence breaks at 1.0-1.3 (median first ratio below the floor; distance from the band)" + censored,
            "1.0-1.3",
            band_distance(brk, BREAK_BAND),
            shown=f"median {brk:.2f} (distance {band_distance(brk, BREAK_BAND):.2f})",
        ),
        check(
            "later_layers_fragile",
            f"later layers break at lower ratios (break at L{first} − at L{last}, mean over methods)",
            "later layers more fragile",
            fragile,
            shown=f"{fragile:+.2f}",
        ),
        check(
            "mean_diff_norm_ratio_spread",
            "mean_diff ‖μ+ − μ−‖ / act_norm is stable across layers (max/min)",
            "0.12-0.15 (≈1.25×)",
            md,
            None if md is not None else "needs two layers",
        ),
        check(
            "probe_norm_ratio_spread",
            "a raw-activation probe's ‖w‖ / act_norm varies across layers (max/min)",
            "drops 3× from L10 to L16",
            pr,
            None if pr is not None else "needs two layers",
        ),
    ]
