"""Steering findings 1-4 of the research log, on optimism: the perturbation-ratio law, multi-layer
vs single-layer steering, extraction metrics vs steering success, and detection vs control.

Every function takes steering rows (:func:`steering_common.steer_rows`) or produces them, and
returns a JSON-ready dict with its numbers and the checks that decide its verdict."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from traitscope.activations import parse_position
from traitscope.extraction.activations import load_site
from traitscope.reproduce.steering_common import (
    Context,
    best_coherent,
    coherent,
    eval_row,
    pearson,
    steer_rows,
)
from traitscope.reproduce.steering_verdict import HIGH_AUROC, LATE_TRAP_ACCURACY, NO_CONTROL_SHARE, SCheck
from traitscope.steering.evaluate import SteerConfig
from traitscope.store import RunDir, load_vectors
from traitscope.traits.schema import Trait

METHODS = ("mean_diff", "probe")
SWEET_BAND = (0.5, 0.8)  # the log's sweet spot
BREAK_BAND = (1.0, 1.3)  # the log's breakdown
CENSORED_BREAK = 2.0  # a layer whose coherence never broke in the grid counts as breaking here
# The log's multi-layer configurations on gemma-2-2b (26 layers), carried by relative depth.
LOG_RANGES = ((6, 10), (8, 10))
LOG_DEPTH = 25  # gemma-2-2b's last layer index


# --- 1. the perturbation-ratio law ----------------------------------------------------------------


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

    act_dir = RunDir(Path(run_dir)).activations(parse_position("response[:]").slug)
    acts, _, _, act_layers = load_site(act_dir, "residual")
    y = _labels(run_dir, act_dir)
    vset = load_vectors(RunDir(Path(run_dir)).vector_file(parse_position("response[:]").slug, "residual", "probe"))
    out: dict[int, dict[str, float]] = {}
    for layer in layers:
        X = acts[:, act_layers.index(layer)].double()
        act_norm = float(vset.act_norm(layer) or 1.0)
        diff = X[y].mean(0) - X[~y].mean(0)
        clf = LogisticRegression(C=1.0, max_iter=5000, random_state=seed).fit(X.numpy(), y.numpy())
        out[layer] = {
            "act_norm": act_norm,
            "mean_diff": float(diff.norm()) / act_norm,
            "probe": float(torch.from_numpy(clf.coef_[0]).norm()) / act_norm,
        }
    return out


def _labels(run_dir: Path, act_dir: Path) -> torch.Tensor:
    from traitscope.extraction import read_rollouts

    _, _, ids, _ = load_site(act_dir, "residual")
    polarity = {r["id"]: r["polarity"] for r in read_rollouts(run_dir)}
    return torch.tensor([polarity[i] == "positive" for i in ids])


def ratio_law(
    ctx: Context, trait: Trait, run_dir: Path, layers: Sequence[int], questions: Sequence[str]
) -> dict[str, Any]:
    p = ctx.profile
    base, rows = steer_rows(ctx, trait, run_dir, sweep_configs(layers, p.sweep_ratios), questions)
    curves = {
        m: {
            str(layer): curve_summary([r for r in rows if r["method"] == m and r["layers"] == [layer]], ctx.floor)
            for layer in layers
        }
        for m in METHODS
    }
    norms = raw_norm_ratios(run_dir, layers, p.seed)
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


def ratio_checks(curves: dict[str, Any], norms: dict[int, dict[str, float]], layers: list[int]) -> list[SCheck]:
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
        SCheck(
            "sweet_spot_distance",
            "best coherent ratio lies in the sweet spot (median over methods × layers; distance from 0.5-0.8)",
            "0.5-0.8",
            None if sweet is None else band_distance(sweet, SWEET_BAND),
            None if sweet is not None else "no coherent configuration raised the trait score",
            shown=None if sweet is None else f"median {sweet:.2f} (distance {band_distance(sweet, SWEET_BAND):.2f})",
        ),
        SCheck(
            "break_distance",
            "coherence breaks at 1.0-1.3 (median first ratio below the floor; distance from the band)" + censored,
            "1.0-1.3",
            band_distance(brk, BREAK_BAND),
            shown=f"median {brk:.2f} (distance {band_distance(brk, BREAK_BAND):.2f})",
        ),
        SCheck(
            "later_layers_fragile",
            f"later layers break at lower ratios (break at L{first} − at L{last}, mean over methods)",
            "later layers more fragile",
            fragile,
            shown=f"{fragile:+.2f}",
        ),
        SCheck(
            "mean_diff_norm_ratio_spread",
            "mean_diff ‖μ+ − μ−‖ / act_norm is stable across layers (max/min)",
            "0.12-0.15 (≈1.25×)",
            md,
            None if md is not None else "needs two layers",
        ),
        SCheck(
            "probe_norm_ratio_spread",
            "a raw-activation probe's ‖w‖ / act_norm varies across layers (max/min)",
            "drops 3× from L10 to L16",
            pr,
            None if pr is not None else "needs two layers",
        ),
    ]


# --- 3. extraction metrics vs steering success ----------------------------------------------------


def scan_configs(layers: Sequence[int], ratios: Sequence[float]) -> list[SteerConfig]:
    return sweep_configs(layers, ratios)


def layer_delta(rows: Sequence[dict[str, Any]], floor: float) -> tuple[float | None, bool]:
    """A layer's steering delta: the best over its ratios that stay coherent, else (nothing
    coherent) the delta at its smallest ratio, flagged incoherent."""
    best = best_coherent(rows, floor)
    if best is not None:
        return best["delta"], True
    smallest = min(rows, key=lambda r: r["ratio"], default=None)
    return (smallest["delta"] if smallest else None), False


def layer_scan(
    ctx: Context,
    trait: Trait,
    run_dir: Path,
    evaluation: dict[str, Any],
    layers: Sequence[int],
    questions: Sequence[str],
) -> dict[str, Any]:
    base, rows = steer_rows(ctx, trait, run_dir, scan_configs(layers, ctx.ratios(ctx.profile.scan_factors)), questions)
    table: dict[str, list[dict[str, Any]]] = {}
    for m in METHODS:
        table[m] = []
        for layer in layers:
            ev = eval_row(evaluation, "residual", m, layer)
            delta, ok = layer_delta([r for r in rows if r["method"] == m and r["layers"] == [layer]], ctx.floor)
            table[m].append(
                {
                    "layer": layer,
                    "accuracy": ev["accuracy"],
                    "auroc": ev["auroc"],
                    "effect_size": ev["effect_size"],
                    "delta": delta,
                    "coherent": ok,
                }
            )
    return {
        "layers": list(layers),
        "ratios": ctx.ratios(ctx.profile.scan_factors),
        "baseline": base,
        "table": table,
        "rows": rows,
    }


def metrics_vs_steering(scan: dict[str, Any], n_layers: int) -> dict[str, Any]:
    t = [r for r in scan["table"]["probe"] if r["delta"] is not None]
    deltas = [r["delta"] for r in t]
    r_eff = pearson([r["effect_size"] for r in t], deltas)
    r_acc = pearson([r["accuracy"] for r in t], deltas)
    per_method = {
        m: {
            "r_effect": pearson([r["effect_size"] for r in rows], [r["delta"] for r in rows]),
            "r_accuracy": pearson([r["accuracy"] for r in rows], [r["delta"] for r in rows]),
        }
        for m, rows in ((m, [r for r in scan["table"][m] if r["delta"] is not None]) for m in METHODS)
    }
    best_ex = max(t, key=lambda r: (r["accuracy"], r["effect_size"]))
    best_st = max(t, key=lambda r: r["delta"])
    late = [r for r in t if r["layer"] >= 2 * (n_layers - 1) / 3]
    trap = max(late, key=lambda r: (r["accuracy"], r["effect_size"]), default=None)
    earlier = (best_ex["layer"] - best_st["layer"]) / (n_layers - 1)
    checks = [
        SCheck(
            "r_effect_delta",
            "effect size predicts steering delta across layers (probe, Pearson r)",
            "r = 0.898",
            r_eff,
            None if r_eff is not None else "needs ≥ 3 layers with varying numbers",
        ),
        SCheck(
            "r_effect_minus_acc",
            "effect size predicts better than validation accuracy (r_effect − r_acc)",
            "0.898 − 0.705 = +0.193",
            None if r_eff is None or r_acc is None else r_eff - r_acc,
            None if r_eff is not None and r_acc is not None else "a correlation is undefined (constant numbers)",
            shown=None if r_eff is None or r_acc is None else f"{r_eff:+.3f} − {r_acc:+.3f} = {r_eff - r_acc:+.3f}",
        ),
        SCheck(
            "steer_layer_earlier",
            "the best steering layer sits earlier than the best extraction layer "
            "(depth difference, best val acc − best delta)",
            "L13 vs L8 of 26 (+0.20)",
            earlier,
            shown=f"L{best_ex['layer']} vs L{best_st['layer']} ({earlier:+.2f})",
        ),
    ]
    if trap is None or trap["accuracy"] < LATE_TRAP_ACCURACY:
        why = f"no layer in the last third reaches {LATE_TRAP_ACCURACY:.0%} validation accuracy" + (
            f" (best L{trap['layer']}: {trap['accuracy']:.0%})" if trap else ""
        )
        checks.append(
            SCheck(
                "late_layer_trap",
                "late-layer trap: a late layer detects well but steers badly",
                "L25: 95% val acc, −10.6 Δ",
                None,
                why,
            )
        )
    else:
        checks.append(
            SCheck(
                "late_layer_trap",
                "late-layer trap: the most accurate late layer steers badly (its Δ)",
                "L25: 95% val acc, −10.6 Δ",
                trap["delta"],
                shown=f"L{trap['layer']}: {trap['accuracy']:.0%} val acc, Δ {trap['delta']:+.1f}",
            )
        )
    return {
        "r_effect": r_eff,
        "r_accuracy": r_acc,
        "per_method": per_method,
        "best_extraction": best_ex,
        "best_steering": best_st,
        "late_trap": trap,
        "checks": checks,
    }


# --- 4. detection vs control ------------------------------------------------------------------------


def detection_vs_control(scan: dict[str, Any], cross: dict[str, Any] | None) -> dict[str, Any]:
    rows = [dict(r, method=m) for m in METHODS for r in scan["table"][m] if r["delta"] is not None]
    best = max((r["delta"] for r in rows), default=0.0)
    high = [r for r in rows if r["auroc"] >= HIGH_AUROC]
    weak = [r for r in high if r["delta"] < NO_CONTROL_SHARE * best]
    r_auc = pearson([r["auroc"] for r in rows], [r["delta"] for r in rows])
    checks = [_detect_control_check(cross)]
    checks.append(
        SCheck(
            "detects_not_steers",
            f"high detection does not guarantee control: share of vectors with AUROC ≥ "
            f"{HIGH_AUROC:.2f} whose Δ is < {NO_CONTROL_SHARE:.0%} of the best Δ",
            "sycophancy: 84% acc, zero steering",
            len(weak) / len(high) if high and best > 0 else None,
            None if high and best > 0 else ("no vector reaches AUROC ≥ 0.90" if not high else "no positive delta"),
            shown=f"{len(weak)}/{len(high)}" if high else None,
        )
    )
    return {
        "r_auroc_delta": r_auc,
        "points": rows,
        "best_delta": best,
        "n_high": len(high),
        "high_but_weak": [f"{r['method']} L{r['layer']}" for r in weak],
        "checks": checks,
    }


def _detect_control_check(cross: dict[str, Any] | None) -> SCheck:
    key, claim = (
        "detect_minus_control",
        "carried vectors keep more of their detection than of their control (detection kept − control kept)",
    )
    log = "95% detect, ~3× weaker steering (≈ 0.95 − 0.33)"
    if not cross or cross.get("primary") is None:
        why = (cross or {}).get("untestable", "the cross-model experiment did not run")
        return SCheck(key, claim, log, None, why)
    p = cross["primary"]
    if p["detect_kept"] is None or p["control_kept"] is None:
        why = "the target's own vector " + (
            "does not detect (AUROC ≤ 0.5)"
            if p["detect_kept"] is None
            else "did not raise the trait score while coherent"
        )
        return SCheck(key, claim, log, None, why + ", so there is nothing to keep")
    value = p["detect_kept"] - p["control_kept"]
    return SCheck(
        key,
        claim + f" ({p['label']})",
        log,
        value,
        shown=f"{p['detect_kept']:.2f} − {p['control_kept']:.2f} = {value:+.2f}",
    )


# --- 2. multi-layer vs single-layer ------------------------------------------------------------------


def log_ranges(n_layers: int) -> list[tuple[int, int]]:
    """The log's L[6-10] and L[8-10] at the same relative depth on this model."""
    scale = (n_layers - 1) / LOG_DEPTH
    out = []
    for lo, hi in LOG_RANGES:
        a, b = round(lo * scale), round(hi * scale)
        if (a, b) not in out and b > a:
            out.append((a, b))
    return out


def multi_configs(ranges: Sequence[tuple[int, int]], ratios: Sequence[float]) -> list[SteerConfig]:
    return [
        SteerConfig("probe", "residual", tuple(range(a, b + 1)), ratio=r, mode=mode)
        for a, b in ranges
        for mode in ("weighted", "orthogonal")
        for r in ratios
    ]


def multi_layer(
    ctx: Context,
    trait: Trait,
    run_dir: Path,
    singles: Sequence[dict[str, Any]],
    questions: Sequence[str],
) -> dict[str, Any]:
    """Multi-layer configurations against every single-layer probe row already evaluated."""
    ranges = log_ranges(ctx.lm.n_layers)
    base, rows = steer_rows(
        ctx, trait, run_dir, multi_configs(ranges, ctx.ratios(ctx.profile.multi_factors)), questions
    )
    single = [r for r in singles if r["method"] == "probe" and len(r["layers"]) == 1]
    best_single = best_coherent(single, ctx.floor)
    best_multi = best_coherent(rows, ctx.floor)
    # the layer-distributed reading: does a range beat every single layer of its own?
    in_range = {
        f"L[{a}-{b}]": (
            best_coherent([r for r in rows if r["layers"] == list(range(a, b + 1))], ctx.floor),
            best_coherent([r for r in single if a <= r["layers"][0] <= b], ctx.floor),
        )
        for a, b in ranges
    }
    per_mode = {m: best_coherent([r for r in rows if r["mode"] == m], ctx.floor) for m in ("weighted", "orthogonal")}
    # nothing coherent counts as no gain (delta 0): the configuration cannot be used
    d_single = best_single["delta"] if best_single else 0.0
    d_multi = best_multi["delta"] if best_multi else 0.0
    dw, do = ((per_mode[m]["delta"] if per_mode[m] else 0.0) for m in ("weighted", "orthogonal"))
    checks = [
        SCheck(
            "multi_minus_single",
            "best multi-layer Δ minus best single-layer Δ (both coherent)",
            "L[6-10] 90.8 vs L8 89.3 (+1.5)",
            d_multi - d_single,
            shown=f"{_lbl(best_multi)} {d_multi:+.1f} vs {_lbl(best_single)} {d_single:+.1f} "
            f"({d_multi - d_single:+.1f} pts)",
        ),
        _in_range_check(in_range),
        SCheck(
            "weighted_vs_orthogonal",
            "weighted and orthogonal modes do about as well (|Δw − Δo|)",
            "similar results",
            abs(dw - do),
            shown=f"{dw:+.1f} vs {do:+.1f} (|diff| {abs(dw - do):.1f} pts)",
        ),
    ]
    return {
        "ranges": [list(r) for r in ranges],
        "ratios": ctx.ratios(ctx.profile.multi_factors),
        "baseline": base,
        "rows": rows,
        "best_single": best_single,
        "best_multi": best_multi,
        "per_mode": per_mode,
        "n_single_candidates": len(single),
        "in_range": {k: {"multi": m, "single": o} for k, (m, o) in in_range.items()},
        "checks": checks,
    }


def _in_range_check(in_range: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]]) -> SCheck:
    """Per range: best multi Δ minus the best single layer inside it (nothing coherent = 0);
    the check takes the range where the multi-layer push does best."""
    claim = "a layer range beats the best single layer inside it (best range)"
    log = "L[6-10] +29.5 vs L8 +28.0 (+1.5)"
    gaps = {
        k: ((m["delta"] if m else 0.0) - (o["delta"] if o else 0.0), m, o)
        for k, (m, o) in in_range.items()
        if o is not None  # a range with no evaluated single layer inside has nothing to compare
    }
    if not gaps:
        return SCheck("multi_minus_single_in_range", claim, log, None, "no single layer evaluated inside the ranges")
    key = max(gaps, key=lambda k: gaps[k][0])
    gap, m, o = gaps[key]
    return SCheck(
        "multi_minus_single_in_range",
        claim,
        log,
        gap,
        shown=f"{_lbl(m) if m else key + ' none coherent'} {(m or {}).get('delta', 0.0):+.1f} vs {_lbl(o)} {o['delta']:+.1f} ({gap:+.1f} pts)",
    )


def _lbl(row: dict[str, Any] | None) -> str:
    if row is None:
        return "none coherent"
    layers = row["layers"]
    where = f"L{layers[0]}" if len(layers) == 1 else f"L[{layers[0]}-{layers[-1]}] {row['mode']}"
    return f"{where} @ {row['ratio']:g}"
