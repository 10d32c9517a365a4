"""Detection experiments 1-5 of the research log, each a function of finished runs returning a
JSON-ready dict: the numbers, the log's numbers, and the checks that decide the verdict."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from traitscope.evaluation import Split, accuracy, auroc, evaluate, midpoint, transfer_matrix
from traitscope.reproduce import log
from traitscope.reproduce.profiles import Profile
from traitscope.reproduce.runs import RunData
from traitscope.reproduce.verdict import CEILING, Check

# The log's table order; ica and pca_diff are analysis-only methods, kept here for this table.
METHOD_ORDER = ("probe", "gradient", "mean_diff", "ica", "pca_diff", "random")

Step = Callable[[int], None]


def _noop(_: int) -> None:
    pass


# --- 1. extraction methods compared ---------------------------------------------------------


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
        Check(
            "probe_polarity_failures",
            "probe has no polarity failures",
            str(L["probe"]["polarity_failures"]),
            s["probe"]["fail_rate"],
        ),
        Check(
            "probe_acc_margin",
            f"probe has the best mean accuracy (margin over {best_other})",
            "85.9% vs gradient 81.0% (+4.9 pts)",
            acc["probe"] - acc[best_other],
        ),
        Check(
            "gradient_polarity_failures",
            "gradient has few polarity failures",
            str(L["gradient"]["polarity_failures"]),
            s["gradient"]["fail_rate"],
        ),
        Check(
            "mean_diff_below_probe",
            "mean_diff is well below probe (probe − mean_diff accuracy)",
            "85.9% − 65.7% = +20.2 pts",
            acc["probe"] - acc["mean_diff"],
        ),
        Check(
            "pca_diff_vs_random",
            "PCA diff is no better than random (PCA diff − random accuracy)",
            "51.0% − 46.5% = +4.5 pts",
            acc["pca_diff"] - acc["random"],
        ),
        Check(
            "ica_vs_random",
            "ICA is no better than random (ICA − random accuracy)",
            "47.9% − 46.5% = +1.4 pts",
            acc["ica"] - acc["random"],
        ),
    ]


# --- 2./3. transfer matrices -------------------------------------------------------------------


def _matrix(run: RunData, tag: str, method: str, layer: int, profile: Profile, keep: list[int] | None = None) -> dict:
    idx = keep if keep is not None else list(range(run.n))
    tags = run.tags(tag)
    tm = transfer_matrix(
        run.at("residual", layer)[idx],
        run.y[idx],
        [tags[i] for i in idx],
        method,
        groups=[run.groups[i] for i in idx],
        seed=profile.seed,
        folds=profile.folds,
        pairs=[run.pairs[i] for i in idx],
    )
    return {
        "method": method,
        "layer": layer,
        "groups": tm.groups,
        "sizes": tm.sizes,
        "accuracy": tm.accuracy,
        "auroc": tm.auroc,
        "averages": tm.averages("accuracy"),
        "averages_auroc": tm.averages("auroc"),
    }


def _groups_present(run: RunData, tag: str, keep: list[int]) -> list[str]:
    tags = run.tags(tag)
    return sorted({tags[i] for i in keep} - {""})


def cross_language(run: RunData, profile: Profile) -> dict[str, Any]:
    """uncertainty split by ``lang``: train on one language, test on each other."""
    layer = run.best("residual", "probe")["layer"]
    everyone = list(range(run.n))
    if len(_groups_present(run, "lang", everyone)) < 2:
        return _too_few("lang", run, "cross_lang")
    m = {meth: _matrix(run, "lang", meth, layer, profile) for meth in ("probe", "mean_diff")}
    p, md = m["probe"]["averages"], m["mean_diff"]["averages"]
    L = log.CROSS_LANG
    checks = [
        Check(
            "cross_lang_probe",
            "probe transfers across languages (cross-group accuracy)",
            f"{L['cross']:.1%}",
            p["cross_group"],
        ),
        Check("cross_lang_drop", "little drop from same- to cross-language", f"{L['drop'] * 100:.1f} pts", p["drop"]),
        Check(
            "cross_lang_probe_minus_mean_diff",
            "probe ≫ mean_diff across languages (cross accuracy gap)",
            "~100% vs ~50%",
            p["cross_group"] - md["cross_group"],
        ),
    ]
    return {"layer": layer, "matrices": m, "checks": checks, "n": run.n}


def cross_topic(run: RunData, profile: Profile) -> dict[str, Any]:
    """uncertainty, English rows only, split by ``topic``."""
    layer = run.best("residual", "probe")["layer"]
    english = [i for i, lang in enumerate(run.tags("lang")) if lang in ("en", "")]
    if len(_groups_present(run, "topic", english)) < 2:
        return _too_few("topic", run, "cross_topic")
    m = {meth: _matrix(run, "topic", meth, layer, profile, english) for meth in ("probe", "mean_diff")}
    p = m["probe"]["averages"]
    L = log.CROSS_TOPIC
    checks = [
        Check(
            "cross_topic_probe",
            "probe transfers across topics (cross-group accuracy)",
            f"{L['cross']:.1%}",
            p["cross_group"],
        ),
        Check("cross_topic_drop", "modest drop from same- to cross-topic", f"{L['drop'] * 100:.1f} pts", p["drop"]),
    ]
    return {"layer": layer, "matrices": m, "checks": checks, "n": len(english)}


def cross_distribution(run: RunData, profile: Profile) -> dict[str, Any]:
    """optimism split by ``domain`` (A = institutional, B = social): the log's 4 x 2 table."""
    layer = run.best("residual", "probe")["layer"]
    if len(_groups_present(run, "domain", list(range(run.n)))) < 2:
        return _too_few("domain", run, "cross_dist")
    m = {meth: _matrix(run, "domain", meth, layer, profile) for meth in ("probe", "mean_diff")}
    cross = {meth: m[meth]["averages"]["cross_group"] for meth in m}
    # the log's "avg transfer" is the mean of a vector's two cells (its own domain and the other)
    table = {
        meth: {
            g: {"cells": m[meth]["accuracy"][i], "avg": sum(m[meth]["accuracy"][i]) / len(m[meth]["groups"])}
            for i, g in enumerate(m[meth]["groups"])
        }
        for meth in m
    }
    checks = [
        Check(
            "cross_dist_probe",
            "probe transfers across domains (off-diagonal accuracy)",
            "95% / 100% (B→A, A→B)",
            cross["probe"],
        ),
        Check(
            "cross_dist_probe_minus_mean_diff",
            "probe transfers better than mean_diff (off-diagonal gap)",
            "97.5% vs 72.5% (+25 pts)",
            cross["probe"] - cross["mean_diff"],
        ),
    ]
    return {"layer": layer, "matrices": m, "table": table, "checks": checks, "n": run.n}


def _too_few(tag: str, run: RunData, key: str) -> dict[str, Any]:
    why = f"the {run.trait} run holds fewer than two {tag!r} groups"
    return {"untestable": why, "checks": [], "n": run.n}


# --- 4. components ----------------------------------------------------------------------------


COMPONENT_SITES = ("residual", "attn_out", "mlp_out", "v")


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
            site: {k: _mean([t[method][site][k] for t in per_trait.values()]) for k in ("auroc", "accuracy")}
            for site in COMPONENT_SITES
        }
        for method in ("probe", "mean_diff")
    }
    checks = []
    for method in ("probe", "mean_diff"):
        checks.append(
            _site_check(
                "attn_out_minus_residual_acc",
                f"attn_out beats residual ({method}, accuracy, mean over traits)",
                "90% vs 80% (+10 pts)",
                means[method],
                "attn_out",
                "accuracy",
            )
        )
        checks.append(
            _site_check(
                "v_minus_residual_auroc",
                f"V-cache beats residual ({method}, AUROC, mean over traits)",
                "0.854 vs 0.687 (+0.17)",
                means[method],
                "v",
                "auroc",
            )
        )
    return {"per_trait": per_trait, "means": means, "checks": checks}


def _site_check(key: str, claim: str, logged: str, means: dict, site: str, metric: str) -> Check:
    a, r = means[site][metric], means["residual"][metric]
    shown = (
        f"{a:.3f} vs {r:.3f} ({a - r:+.3f})" if metric == "auroc" else f"{a:.1%} vs {r:.1%} ({(a - r) * 100:+.1f} pts)"
    )
    why = f"ceiling: both ≥ {CEILING:.0%}" if min(a, r) >= CEILING else None
    return Check(key, claim, logged, a - r, why_untestable=why, shown=shown)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


# --- 5. natural vs instruction elicitation -------------------------------------------------------


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=0))


def cross_projection(vec: torch.Tensor, X: torch.Tensor, y: torch.Tensor, splits: list[Split]) -> dict[str, float]:
    """A fixed direction scored on another run's activations: AUROC over all rows (fits nothing)
    and accuracy on held-out folds, with only the threshold (the class-mean midpoint) taken from
    the training folds — the prompts differ (system prompt or not), so the origin moves."""
    proj = X @ vec
    accs = [float(accuracy(proj[s.val], y[s.val], midpoint(proj[s.train], y[s.train]))) for s in splits]
    return {"auroc": float(auroc(proj, y)), "accuracy": sum(accs) / len(accs)}


def compare_elicitation(natural: RunData, instruction: RunData, profile: Profile, pair_name: str) -> dict[str, Any]:
    """Per layer: cosine between the two runs' vectors and cross-projection both ways."""
    layers = [x for x in natural.layers if x in instruction.layers]
    headline = instruction.best("residual", "probe")["layer"]
    headline = headline if headline in layers else layers[len(layers) // 2]
    sn, si = natural.splits(profile.folds, profile.seed), instruction.splits(profile.folds, profile.seed)
    per_method: dict[str, Any] = {}
    for method in ("mean_diff", "probe"):
        rows = []
        for layer in layers:
            vn, vi = natural.vector("residual", method, layer), instruction.vector("residual", method, layer)
            n2i = cross_projection(vn, instruction.at("residual", layer), instruction.y, si)
            i2n = cross_projection(vi, natural.at("residual", layer), natural.y, sn)
            rows.append(
                {
                    "layer": layer,
                    "cosine": _cos(vn, vi),
                    "natural_to_instruction": n2i,
                    "instruction_to_natural": i2n,
                    "cross_accuracy": (n2i["accuracy"] + i2n["accuracy"]) / 2,
                    "cross_auroc": (n2i["auroc"] + i2n["auroc"]) / 2,
                }
            )
        per_method[method] = {"layers": rows, "headline": next(r for r in rows if r["layer"] == headline)}
    return {
        "pair": pair_name,
        "natural": natural.trait,
        "instruction": instruction.trait,
        "headline_layer": headline,
        "methods": per_method,
        "checks": _elicitation_checks(pair_name, per_method["mean_diff"]["headline"]),
        "n": {natural.trait: natural.n, instruction.trait: instruction.n},
    }


def _elicitation_checks(pair: str, h: dict[str, Any]) -> list[Check]:
    # mean_diff decides: the log's vectors came from its persona-vector runs (a difference of means)
    L = log.ELICITATION[pair]
    same = pair == "optimism"
    return [
        Check(
            f"{pair}_cosine",
            f"{pair}: natural and instruction vectors {'agree' if same else 'differ'} (mean_diff cosine)",
            f"{L['cosine']:.2f}",
            h["cosine"],
        ),
        Check(
            f"{pair}_cross_acc",
            f"{pair}: cross-projection accuracy {'high' if same else 'near chance'} (mean_diff, mean of both ways)",
            str(L["cross"]),
            h["cross_accuracy"],
        ),
    ]
