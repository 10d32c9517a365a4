"""Finding 1: the six extraction methods compared on every trait x layer of the residual site,
scored on each run's own k folds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import traitscope.reproduce.detection.findings as log
from traitscope.evaluation import evaluate
from traitscope.reproduce.common.profiles import Profile
from traitscope.reproduce.common.runs import RunData
from traitscope.reproduce.common.stats import bootstrap_halfwidth
from traitscope.reproduce.common.verdict import Check
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
        "checks": _method_checks(summary, rows),
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


# (key, claim, the log's figure, method a, method b): the check is a's mean accuracy minus b's
DIFFERENCES = (
    (
        "mean_diff_below_probe",
        "mean_diff is well below probe (probe − mean_diff accuracy)",
        "85.9% − 65.7% = +20.2 pts",
        "probe",
        "mean_diff",
    ),
    (
        "pca_diff_vs_random",
        "PCA diff is no better than random (PCA diff − random accuracy)",
        "51.0% − 46.5% = +4.5 pts",
        "pca_diff",
        "random",
    ),
    (
        "ica_vs_random",
        "ICA is no better than random (ICA − random accuracy)",
        "47.9% − 46.5% = +1.4 pts",
        "ica",
        "random",
    ),
)


def _method_checks(s: dict[str, dict[str, Any]], rows: list[dict[str, Any]]) -> list[Check]:
    """Accuracy differences carry the 95% bootstrap CI of the paired (trait, layer) differences."""
    acc = {m: v["accuracy"] for m, v in s.items()}
    best_other = max((m for m in acc if m != "probe"), key=acc.__getitem__)
    by = {(r["trait"], r["layer"], r["method"]): r["accuracy"] for r in rows}
    cells = sorted({(r["trait"], r["layer"]) for r in rows})

    def diff(key: str, claim: str, logged: str, a: str, b: str) -> Check:
        noise = bootstrap_halfwidth([by[(t, layer, a)] - by[(t, layer, b)] for t, layer in cells])
        return check(key, claim, logged, acc[a] - acc[b], noise=noise)

    def failures(key: str, method: str, claim: str) -> Check:
        return check(key, claim, str(log.METHODS_TABLE[method]["polarity_failures"]), s[method]["fail_rate"])

    return [
        failures("probe_polarity_failures", "probe", "probe has no polarity failures"),
        diff(
            "probe_acc_margin",
            f"probe has the best mean accuracy (margin over {best_other})",
            "85.9% vs gradient 81.0% (+4.9 pts)",
            "probe",
            best_other,
        ),
        failures("gradient_polarity_failures", "gradient", "gradient has few polarity failures"),
        *(diff(*d) for d in DIFFERENCES),
    ]
