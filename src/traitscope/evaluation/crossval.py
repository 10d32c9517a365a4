"""Cross-validated evaluation of extraction methods.

With 40-100 pairs one 70/30 split moves AUROC by +-0.05 and a single random vector can look good,
so every method is scored with k-fold splits (stratified by polarity, and by a tag when asked,
grouped by minimal pair so both halves stay on one side), reported as mean +- sd over folds,
next to the 95th percentile of many random directions scored the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from traitscope.errors import TraitscopeError
from traitscope.evaluation.metrics import accuracy, auroc, bootstrap_d_ci, cohens_d, midpoint
from traitscope.methods import METHODS
from traitscope.methods.base import orient, unit


@dataclass(frozen=True)
class Split:
    train: torch.Tensor
    val: torch.Tensor


def kfold(
    y: Sequence[int], groups: Sequence[str], k: int = 5, seed: int = 0, strata: Sequence[str] | None = None
) -> list[Split]:
    """Seeded k-fold splits: stratified by label (and ``strata``), grouped by ``groups``."""
    from sklearn.model_selection import StratifiedGroupKFold

    y_arr = np.asarray(y)
    labels = y_arr.astype(str) if strata is None else np.array([f"{a}|{b}" for a, b in zip(y_arr, strata, strict=True)])
    n_groups = len(set(groups))
    k = max(2, min(k, n_groups, int(min(np.bincount(y_arr)))))
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [
        Split(torch.from_numpy(tr), torch.from_numpy(va))
        for tr, va in splitter.split(np.zeros(len(y_arr)), labels, np.asarray(groups))
    ]


def _scores(X: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    return torch.einsum("nld,ld->nl", X, vectors)


def random_baseline(
    X: torch.Tensor, y: torch.Tensor, splits: list[Split], n_random: int = 200, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Per layer: 95th percentile over ``n_random`` random directions of the fold-mean AUROC and
    accuracy, each direction oriented on the training fold like a real method."""
    g = torch.Generator().manual_seed(seed + 777)
    R = unit(torch.randn(X.shape[2], n_random, generator=g).T).T  # [d, K]
    proj = torch.einsum("nld,dk->nlk", X, R)  # [n, L, K]
    aucs, accs = [], []
    for s in splits:
        tr, va = proj[s.train], proj[s.val]
        ytr, yva = y[s.train], y[s.val]
        gap = tr[ytr == 1].mean(0) - tr[ytr == 0].mean(0)
        sign = torch.where(gap < 0, -1.0, 1.0)
        thr = midpoint(tr * sign, ytr)
        aucs.append(auroc(va * sign, yva))
        accs.append(accuracy(va * sign, yva, thr))
    auc = torch.stack(aucs).mean(0)
    acc = torch.stack(accs).mean(0)
    return {"auroc_p95": torch.quantile(auc, 0.95, dim=-1), "accuracy_p95": torch.quantile(acc, 0.95, dim=-1)}


def evaluate(
    X: torch.Tensor,
    y: torch.Tensor,
    splits: list[Split],
    methods: Sequence[str],
    layers: Sequence[int],
    seed: int = 0,
    pairs: Sequence[str | None] | None = None,
    n_random: int = 200,
    on_step: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Rows of metrics, one per method x layer, for activations ``X`` [n, L, d]."""
    y = torch.as_tensor(y).long()
    baseline = random_baseline(X, y, splits, n_random, seed)
    rows: list[dict[str, Any]] = []
    for method in methods:
        fit_fn = METHODS[method]
        per_fold: dict[str, list[torch.Tensor]] = {"accuracy": [], "auroc": [], "effect_size": [], "polarity": []}
        oof = torch.zeros(X.shape[0], X.shape[1])  # out-of-fold projections, for a pooled d and its CI
        for fold, s in enumerate(splits):
            fold_pairs = [pairs[i] for i in s.train.tolist()] if pairs is not None else None
            vec = fit_fn(X[s.train], y[s.train], seed=seed + fold, pairs=fold_pairs).vectors
            vec = orient(vec, X[s.train], y[s.train])
            tr, va = _scores(X[s.train], vec), _scores(X[s.val], vec)
            yva = y[s.val]
            per_fold["accuracy"].append(accuracy(va, yva, midpoint(tr, y[s.train])))
            per_fold["auroc"].append(auroc(va, yva))
            per_fold["effect_size"].append(cohens_d(va, yva))
            per_fold["polarity"].append((va[yva == 1].mean(0) > va[yva == 0].mean(0)).float())
            # standardise per fold so pooled projections from different vectors are comparable
            oof[s.val] = (va - midpoint(tr, y[s.train])) / tr.std(0).clamp_min(1e-12)
        if on_step:
            on_step(method)
        stacked = {k: torch.stack(v) for k, v in per_fold.items()}  # [folds, L]
        for j, layer in enumerate(layers):
            lo, hi = bootstrap_d_ci(oof[:, j], y, seed=seed)
            rows.append(
                {
                    "method": method,
                    "layer": int(layer),
                    "accuracy": float(stacked["accuracy"][:, j].mean()),
                    "accuracy_sd": float(stacked["accuracy"][:, j].std()),
                    "auroc": float(stacked["auroc"][:, j].mean()),
                    "auroc_sd": float(stacked["auroc"][:, j].std()),
                    "effect_size": float(stacked["effect_size"][:, j].mean()),
                    "effect_size_sd": float(stacked["effect_size"][:, j].std()),
                    "effect_size_pooled": float(cohens_d(oof[:, j : j + 1], y)[0]),
                    "effect_size_ci95": [lo, hi],
                    "polarity_correct": bool(stacked["polarity"][:, j].min() == 1.0),
                    "polarity_rate": float(stacked["polarity"][:, j].mean()),
                    "random_auroc_p95": float(baseline["auroc_p95"][j]),
                    "random_accuracy_p95": float(baseline["accuracy_p95"][j]),
                    "folds": len(splits),
                }
            )
    return rows


def best_rows(rows: list[dict[str, Any]], key: str = "auroc") -> dict[str, dict[str, Any]]:
    """Best layer per (site, method) by ``key`` (ties: larger effect size).

    This is traitscope's one "best vector" rule: monitor, steering, web, reproduce and the CLI all
    pick a default layer through it (:func:`best_row`)."""
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        k = f"{r.get('site', '')}/{r['method']}"
        if k not in best or (r[key], r["effect_size"]) > (best[k][key], best[k]["effect_size"]):
            best[k] = r
    return best


def best_row(rows: list[dict[str, Any]], site: str, method: str) -> dict[str, Any]:
    """The best evaluation row of ``site/method`` (see :func:`best_rows`)."""
    best = best_rows([r for r in rows if r.get("site") == site and r.get("method") == method])
    if not best:
        have = sorted({f"{r.get('site')}/{r.get('method')}" for r in rows})
        raise TraitscopeError(f"no evaluation rows for {site}/{method}; evaluated: {', '.join(have) or 'none'}")
    return next(iter(best.values()))
