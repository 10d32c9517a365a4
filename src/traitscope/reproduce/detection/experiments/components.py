"""Finding 4: the components compared (residual, attn_out, mlp_out, V) on every trait's run,
best layer per site from the runs' CV evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from traitscope.reproduce.common.runs import RunData
from traitscope.reproduce.common.stats import bootstrap_halfwidth, mean
from traitscope.reproduce.common.verdict import CEILING, Check
from traitscope.reproduce.detection.findings import COMPONENT_SITES, check


def compare_components(runs: Sequence[RunData]) -> dict[str, Any]:
    """Best layer per site (probe and mean_diff) for every trait, from the runs' CV evaluation."""
    per_trait: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for run in runs:
        per_trait[run.trait] = {
            method: {
                site: {k: run.best(site, method)[k] for k in ("layer", "auroc", "accuracy")}
                for site in COMPONENT_SITES
                if site in run.acts
            }
            for method in ("probe", "mean_diff")
        }
    means = {
        method: {
            site: {k: mean([t[method][site][k] for t in per_trait.values()]) for k in ("auroc", "accuracy")}
            for site in COMPONENT_SITES
        }
        for method in ("probe", "mean_diff")
    }
    checks = []
    for method in ("probe", "mean_diff"):
        for key, claim, logged, site, metric in (
            (
                "attn_out_minus_residual_acc",
                "attn_out beats residual ({}, accuracy, mean over traits)",
                "90% vs 80% (+10 pts)",
                "attn_out",
                "accuracy",
            ),
            (
                "v_minus_residual_auroc",
                "V-cache beats residual ({}, AUROC, mean over traits)",
                "0.854 vs 0.687 (+0.17)",
                "v",
                "auroc",
            ),
        ):
            diffs = [t[method][site][metric] - t[method]["residual"][metric] for t in per_trait.values()]
            checks.append(_site_check(key, claim.format(method), logged, means[method], site, metric, diffs))
    return {"per_trait": per_trait, "means": means, "checks": checks}


def _site_check(
    key: str, claim: str, logged: str, means: dict, site: str, metric: str, diffs: list[float] | None = None
) -> Check:
    """``site`` minus residual, with the bootstrap CI over the traits' paired differences (``diffs``)."""
    a, r = means[site][metric], means["residual"][metric]
    shown = (
        f"{a:.3f} vs {r:.3f} ({a - r:+.3f})" if metric == "auroc" else f"{a:.1%} vs {r:.1%} ({(a - r) * 100:+.1f} pts)"
    )
    why = f"ceiling: both ≥ {CEILING:.0%}" if min(a, r) >= CEILING else None
    return check(key, claim, logged, a - r, why_untestable=why, shown=shown, noise=bootstrap_halfwidth(diffs or []))
