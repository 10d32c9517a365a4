"""Finding 1: the six extraction methods compared on every trait x layer of the residual site,
scored on each run's own k folds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from traitscope.evaluation import evaluate
from traitscope.reproduce.common.profiles import Profile
from traitscope.reproduce.common.runs import RunData
from traitscope.reproduce.common.verdict import Check
from traitscope.reproduce.detection import findings as log
from traitscope.reproduce.detection.findings import METHOD_ORDER, check

Step = Callable[[int], None]


def _noop(_: int) -> None:
    pass


def compare_methods(runs: Sequence[RunData], profile: Profile, step: Step = _noop) -> dict[str, Any]:
    """Every trait x layer x method on the residual site, scored on each run's own k folds."""
    rows: list[dict[str, Any]] = []
    for run in runs:
        scored = evaluate(
            run.acts["residual"],
            run.y,
            run.splits(profile.folds, profile.seed),
            METHOD_ORDER,
            run.layers,
            profile.seed,
            run.pairs,
            profile.n_random,
        )
        keep = ("method", "layer", "accuracy", "auroc", "effect_size", "polarity_correct")
        rows.extend({"trait": run.trait, **{k: r[k] for k in keep}} for r in scored)
        step(1)
    summary = {m: _method_summary([r for r in rows if r["method"] == m]) for m in METHOD_ORDER}
    return {
        "summary": summary,
        "rows": rows,
        "traits": [r.trait for r in runs],
        "layers": runs[0].layers if runs else [],
        "checks": _method_checks(summary),
    }


def _method_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    fails = sum(not r["polarity_correct"] for r in rows)
    return {
        "total": n,
        "polarity_failures": fails,
        "fail_rate": fails / n,
        "accuracy": sum(r["accuracy"] for r in rows) / n,
        "auroc": sum(r["auroc"] for r in rows) / n,
        "effect_size": sum(r["effect_size"] for r in rows) / n,
        "below_60": sum(r["accuracy"] < 0.60 for r in rows),
    }


def _method_checks(s: dict[str, dict[str, Any]]) -> list[Check]:
    acc = {m: v["accuracy"] for m, v in s.items()}
    best_other = max((m for m in acc if m != "probe"), key=acc.__getitem__)
    L = log.METHODS_TABLE
    return [
        check(
            "probe_polarity_failures",
            "probe has no polarity failures",
            str(L["probe"]["polarity_failures"]),
            s["probe"]["fail_rate"],
        ),
        check(
            "probe_acc_margin",
            f"probe has the best mean accuracy (margin over {best_other})",
            "85.9% vs gradient 81.0% (+4.9 pts)",
            acc["probe"] - acc[best_other],
        ),
        check(
            "gradient_polarity_failures",
            "gradient has few polarity failures",
            str(L["gradient"]["polarity_failures"]),
            s["gradient"]["fail_rate"],
        ),
        check(
            "mean_diff_below_probe",
            "mean_diff is well below probe (probe − mean_diff accuracy)",
            "85.9% − 65.7% = +20.2 pts",
            acc["probe"] - acc["mean_diff"],
        ),
        check(
            "pca_diff_vs_random",
            "PCA diff is no better than random (PCA diff − random accuracy)",
            "51.0% − 46.5% = +4.5 pts",
            acc["pca_diff"] - acc["random"],
        ),
        check(
            "ica_vs_random",
            "ICA is no better than random (ICA − random accuracy)",
            "47.9% − 46.5% = +1.4 pts",
            acc["ica"] - acc["random"],
        ),
    ]
