"""Steering finding 3, extraction metrics vs steering success: every k-th layer steered at
multiples of the working ratio, its delta set against the extraction run's validation metrics."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from traitscope.reproduce.common.stats import bootstrap_halfwidth, paired_diffs, pearson, r_halfwidth
from traitscope.reproduce.common.verdict import Check
from traitscope.reproduce.steering.experiments.context import METHODS, Context, best_coherent, eval_row, steer_rows
from traitscope.reproduce.steering.experiments.ratio_law import sweep_configs
from traitscope.reproduce.steering.findings import LATE_TRAP_ACCURACY, check
from traitscope.steering.evaluate import SteerConfig
from traitscope.traits.schema import Trait


def scan_configs(layers: Sequence[int], ratios: Sequence[float]) -> list[SteerConfig]:
    return sweep_configs(layers, ratios)


def layer_row(rows: Sequence[dict[str, Any]], floor: float) -> tuple[dict[str, Any] | None, bool]:
    """The row behind a layer's steering delta: the best over its ratios that stay coherent, else
    (nothing coherent) the one at its smallest ratio, flagged incoherent."""
    best = best_coherent(rows, floor)
    if best is not None:
        return best, True
    return min(rows, key=lambda r: r["ratio"], default=None), False


def layer_scan(
    ctx: Context,
    trait: Trait,
    run_dir: Path,
    evaluation: dict[str, Any],
    layers: Sequence[int],
    questions: Sequence[str],
) -> dict[str, Any]:
    base, rows = steer_rows(ctx, trait, run_dir, scan_configs(layers, ctx.ratios(ctx.sizes.scan_factors)), questions)
    table: dict[str, list[dict[str, Any]]] = {}
    for m in METHODS:
        table[m] = []
        for layer in layers:
            ev = eval_row(evaluation, "residual", m, layer)
            row, ok = layer_row([r for r in rows if r["method"] == m and r["layers"] == [layer]], ctx.floor)
            table[m].append(
                {
                    "layer": layer,
                    "accuracy": ev["accuracy"],
                    "auroc": ev["auroc"],
                    "effect_size": ev["effect_size"],
                    "delta": row["delta"] if row else None,
                    # 95% bootstrap half-width of the delta over the questions (paired with the baseline)
                    "delta_noise": bootstrap_halfwidth(paired_diffs(row, base)) if row else None,
                    "coherent": ok,
                }
            )
    return {
        "layers": list(layers),
        "ratios": ctx.ratios(ctx.sizes.scan_factors),
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
        *_correlation_checks(r_eff, r_acc, len(t)),
        check(
            "steer_layer_earlier",
            "the best steering layer sits earlier than the best extraction layer "
            "(depth difference, best val acc − best delta)",
            "L13 vs L8 of 26 (+0.20)",
            earlier,
            shown=f"L{best_ex['layer']} vs L{best_st['layer']} ({earlier:+.2f})",
        ),
        _trap_check(trap),
    ]
    return {
        "r_effect": r_eff,
        "r_accuracy": r_acc,
        "per_method": per_method,
        "best_extraction": best_ex,
        "best_steering": best_st,
        "late_trap": trap,
        "checks": checks,
    }


def _correlation_checks(r_eff: float | None, r_acc: float | None, n: int) -> list[Check]:
    """``n``: the layers behind each r (its Fisher-z CI is the noise of the first check)."""
    return [
        check(
            "r_effect_delta",
            "effect size predicts steering delta across layers (probe, Pearson r)",
            "r = 0.898",
            r_eff,
            None if r_eff is not None else "needs ≥ 3 layers with varying numbers",
            noise=None if r_eff is None else r_halfwidth(r_eff, n),
        ),
        check(
            "r_effect_minus_acc",
            "effect size predicts better than validation accuracy (r_effect − r_acc)",
            "0.898 − 0.705 = +0.193",
            None if r_eff is None or r_acc is None else r_eff - r_acc,
            None if r_eff is not None and r_acc is not None else "a correlation is undefined (constant numbers)",
            shown=None if r_eff is None or r_acc is None else f"{r_eff:+.3f} − {r_acc:+.3f} = {r_eff - r_acc:+.3f}",
        ),
    ]


def _trap_check(trap: dict[str, Any] | None) -> Check:
    if trap is None or trap["accuracy"] < LATE_TRAP_ACCURACY:
        why = f"no layer in the last third reaches {LATE_TRAP_ACCURACY:.0%} validation accuracy" + (
            f" (best L{trap['layer']}: {trap['accuracy']:.0%})" if trap else ""
        )
        return check(
            "late_layer_trap",
            "late-layer trap: a late layer detects well but steers badly",
            "L25: 95% val acc, −10.6 Δ",
            None,
            why,
        )
    return check(
        "late_layer_trap",
        "late-layer trap: the most accurate late layer steers badly (its Δ)",
        "L25: 95% val acc, −10.6 Δ",
        trap["delta"],
        noise=trap.get("delta_noise"),
        shown=f"L{trap['layer']}: {trap['accuracy']:.0%} val acc, Δ {trap['delta']:+.1f}",
    )
