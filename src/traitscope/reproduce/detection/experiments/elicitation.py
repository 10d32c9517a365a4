"""Finding 5: natural vs instruction elicitation: per layer, the cosine between two runs' vectors
and each run's vector scored on the other run's rows."""

from __future__ import annotations

from typing import Any

import torch

import traitscope.reproduce.detection.findings as log
from traitscope.evaluation import Split, accuracy, auroc, midpoint
from traitscope.reproduce.common.profiles import Profile
from traitscope.reproduce.common.runs import RunData
from traitscope.reproduce.common.stats import cosine, fold_halfwidth
from traitscope.reproduce.common.verdict import Check
from traitscope.reproduce.detection.findings import check


def cross_projection(vec: torch.Tensor, X: torch.Tensor, y: torch.Tensor, splits: list[Split]) -> dict[str, float]:
    """A fixed direction scored on another run's activations: AUROC over all rows (fits nothing)
    and accuracy on held-out folds, with only the threshold (the class-mean midpoint) taken from
    the training folds — the prompts differ (system prompt or not), so the origin moves."""
    proj = X @ vec
    accs = [float(accuracy(proj[s.val], y[s.val], midpoint(proj[s.train], y[s.train]))) for s in splits]
    return {"auroc": float(auroc(proj, y)), "accuracy": sum(accs) / len(accs), "fold_accuracy": accs}


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
                    "cosine": cosine(vn, vi),
                    "natural_to_instruction": n2i,
                    "instruction_to_natural": i2n,
                    "cross_accuracy": (n2i["accuracy"] + i2n["accuracy"]) / 2,
                    # fold i of each way, averaged: the spread behind the cross accuracy's noise
                    "cross_accuracy_noise": fold_halfwidth(
                        [(a + b) / 2 for a, b in zip(n2i["fold_accuracy"], i2n["fold_accuracy"], strict=False)]
                    ),
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
        check(
            f"{pair}_cosine",
            f"{pair}: natural and instruction vectors {'agree' if same else 'differ'} (mean_diff cosine)",
            f"{L['cosine']:.2f}",
            h["cosine"],
        ),
        check(
            f"{pair}_cross_acc",
            f"{pair}: cross-projection accuracy {'high' if same else 'near chance'} (mean_diff, mean of both ways)",
            str(L["cross"]),
            h["cross_accuracy"],
            noise=h.get("cross_accuracy_noise"),
        ),
    ]
