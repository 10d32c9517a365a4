"""Steering finding 2, multi-layer vs single-layer steering of optimism: the log's layer ranges at
the same relative depth, weighted and orthogonal, against the best single layers already steered."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from traitscope.reproduce.common.stats import bootstrap_halfwidth, paired_diffs
from traitscope.reproduce.common.verdict import Check
from traitscope.reproduce.steering.experiments.context import Context, best_coherent, config_label, steer_rows
from traitscope.reproduce.steering.findings import check
from traitscope.steering.evaluate import SteerConfig
from traitscope.traits.schema import Trait

# The log's multi-layer configurations on gemma-2-2b (26 layers), carried by relative depth.
LOG_RANGES = ((6, 10), (8, 10))
LOG_DEPTH = 25  # gemma-2-2b's last layer index


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
    base, rows = steer_rows(ctx, trait, run_dir, multi_configs(ranges, ctx.ratios(ctx.sizes.multi_factors)), questions)
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
    checks = [_multi_check(best_multi, best_single), _in_range_check(in_range), _mode_check(per_mode)]
    return {
        "ranges": [list(r) for r in ranges],
        "ratios": ctx.ratios(ctx.sizes.multi_factors),
        "baseline": base,
        "rows": rows,
        "best_single": best_single,
        "best_multi": best_multi,
        "per_mode": per_mode,
        "n_single_candidates": len(single),
        "in_range": {k: {"multi": m, "single": o} for k, (m, o) in in_range.items()},
        "checks": checks,
    }


Row = dict[str, Any] | None


def gap_noise(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    """95% bootstrap half-width of ``a``'s trait score minus ``b``'s over the questions both answered."""
    return bootstrap_halfwidth(paired_diffs(a, b))


def _gap_check(key: str, claim: str, log: str, a: Row, b: Row, names: tuple[str, str], absolute: bool = False) -> Check:
    """``a``'s Δ minus ``b``'s (or its size), with the paired question noise; untestable when either
    side has no coherent configuration (nothing coherent is not a Δ of 0)."""
    if a is None or b is None:
        which = names[0] if a is None else names[1]
        return check(key, claim, log, None, f"no {which} configuration stayed coherent: nothing to compare")
    gap = a["delta"] - b["delta"]
    shown = (
        f"{a['delta']:+.1f} vs {b['delta']:+.1f} (|diff| {abs(gap):.1f} pts)"
        if absolute
        else f"{config_label(a)} {a['delta']:+.1f} vs {config_label(b)} {b['delta']:+.1f} ({gap:+.1f} pts)"
    )
    return check(key, claim, log, abs(gap) if absolute else gap, noise=gap_noise(a, b), shown=shown)


def _multi_check(best_multi: Row, best_single: Row) -> Check:
    claim = "best multi-layer Δ minus best single-layer Δ (both coherent)"
    names = ("multi-layer", "single-layer")
    return _gap_check("multi_minus_single", claim, "L[6-10] 90.8 vs L8 89.3 (+1.5)", best_multi, best_single, names)


def _mode_check(per_mode: dict[str, Row]) -> Check:
    claim = "weighted and orthogonal modes do about as well (|Δw − Δo|)"
    w, o = per_mode["weighted"], per_mode["orthogonal"]
    return _gap_check("weighted_vs_orthogonal", claim, "similar results", w, o, ("weighted", "orthogonal"), True)


def _in_range_check(in_range: dict[str, tuple[Row, Row]]) -> Check:
    """Per range: best multi Δ minus the best single layer inside it, where both stayed coherent;
    the check takes the range where the multi-layer push does best."""
    claim = "a layer range beats the best single layer inside it (best range)"
    log = "L[6-10] +29.5 vs L8 +28.0 (+1.5)"
    gaps = {k: (m["delta"] - o["delta"], m, o) for k, (m, o) in in_range.items() if m is not None and o is not None}
    if not gaps:
        why = "no range has both a coherent multi-layer and a coherent single-layer configuration inside it"
        return check("multi_minus_single_in_range", claim, log, None, why)
    best = max(gaps, key=lambda k: gaps[k][0])
    _, m, o = gaps[best]
    return _gap_check("multi_minus_single_in_range", claim, log, m, o, ("multi-layer", "single-layer"))
