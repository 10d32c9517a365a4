"""Steering finding 4, detection vs control: vectors that detect well but steer little, on the layer
scan of finding 3 and the carried vectors of finding 7."""

from __future__ import annotations

from typing import Any

from traitscope.reproduce.common.stats import pearson
from traitscope.reproduce.common.verdict import Check
from traitscope.reproduce.steering.experiments.context import METHODS
from traitscope.reproduce.steering.findings import HIGH_AUROC, NO_CONTROL_SHARE, check


def detection_vs_control(scan: dict[str, Any], cross: dict[str, Any] | None) -> dict[str, Any]:
    rows = [dict(r, method=m) for m in METHODS for r in scan["table"][m] if r["delta"] is not None]
    best = max((r["delta"] for r in rows), default=0.0)
    high = [r for r in rows if r["auroc"] >= HIGH_AUROC]
    weak = [r for r in high if r["delta"] < NO_CONTROL_SHARE * best]
    r_auc = pearson([r["auroc"] for r in rows], [r["delta"] for r in rows])
    checks = [_detect_control_check(cross)]
    checks.append(
        check(
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


def _detect_control_check(cross: dict[str, Any] | None) -> Check:
    key, claim = (
        "detect_minus_control",
        "carried vectors keep more of their detection than of their control (detection kept − control kept)",
    )
    log = "95% detect, ~3× weaker steering (≈ 0.95 − 0.33)"
    if not cross or cross.get("primary") is None:
        why = (cross or {}).get("untestable", "the cross-model experiment did not run")
        return check(key, claim, log, None, why)
    p = cross["primary"]
    if p["detect_kept"] is None:
        return check(key, claim, log, None, "the target's own vector does not detect (AUROC ≤ 0.5): nothing to keep")
    if p["control_kept"] is None:
        why = (
            "no configuration of the carried vector stayed coherent, so its control cannot be measured"
            if p.get("best_delta", 0.0) is None
            else "the target's own vector did not raise the trait score while coherent: nothing to keep"
        )
        return check(key, claim, log, None, why)
    value = p["detect_kept"] - p["control_kept"]
    return check(
        key,
        claim + f" ({p['label']})",
        log,
        value,
        shown=f"{p['detect_kept']:.2f} − {p['control_kept']:.2f} = {value:+.2f}",
    )
