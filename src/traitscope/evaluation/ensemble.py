"""A multi-layer detector: per-layer projections stacked by a logistic regression.

Every extraction method gives one vector per layer and is scored layer by layer
(:mod:`traitscope.evaluation.crossval`). A stack reads all layers at once: a base method's
per-layer projections, standardised, are combined by a logistic regression whose inputs are
*out-of-fold* projections (the base method fitted on inner folds grouped by minimal pair, so a
pair's halves never straddle an inner split and the combiner never sees scores of rows a vector
was fitted on). The base vectors are then refitted on all rows the stack gets.

It is a detector over ``[n, layers, dim]``, not one vector per layer, so it is not in
``METHODS`` (whose rows are per layer and feed steering); :func:`evaluate_stack` scores it on
the same outer folds as :func:`~traitscope.evaluation.crossval.evaluate` and returns one row,
``method = "stack(<base>)"`` with ``layer = None``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from traitscope.errors import TraitscopeError
from traitscope.evaluation.crossval import Split, kfold
from traitscope.evaluation.metrics import accuracy, auroc, cohens_d, midpoint
from traitscope.methods import METHODS
from traitscope.methods.base import check_xy, orient


@dataclass
class Stack:
    """A fitted stack: ``score(x) = sum_l w_l (x_l . v_l - centre_l) / scale_l + bias``."""

    base: str
    vectors: torch.Tensor  # [L, d] base vectors fitted on all rows, oriented
    centre: torch.Tensor  # [L] class-mean midpoint of each layer's projection
    scale: torch.Tensor  # [L] sd of each layer's projection
    weights: torch.Tensor  # [L] combiner coefficients
    bias: float

    def layer_scores(self, X: torch.Tensor) -> torch.Tensor:
        """Standardised per-layer projections ``[n, L]``."""
        proj = torch.einsum("nld,ld->nl", X.float(), self.vectors)
        return (proj - self.centre) / self.scale

    def score(self, X: torch.Tensor) -> torch.Tensor:
        """One detection score per row of ``X`` [n, L, d]; higher means the trait is present."""
        return self.layer_scores(X) @ self.weights + self.bias


def _groups(pairs: Sequence[str | None] | None, n: int) -> list[str]:
    return (
        [p if p is not None else f"row{i}" for i, p in enumerate(pairs)]
        if pairs is not None
        else [str(i) for i in range(n)]
    )


def _fit_base(base: str, X: torch.Tensor, y: torch.Tensor, seed: int, pairs: list[str] | None) -> torch.Tensor:
    return orient(METHODS[base](X, y, seed=seed, pairs=pairs).vectors, X, y)


def _standardise(proj_tr: torch.Tensor, y_tr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return midpoint(proj_tr, y_tr), proj_tr.std(0).clamp_min(1e-12)


def out_of_fold_scores(
    X: torch.Tensor, y: torch.Tensor, groups: Sequence[str], base: str, inner: int = 3, seed: int = 0
) -> torch.Tensor:
    """``[n, L]`` standardised projections of each row by base vectors fitted without its pair."""
    oof = torch.zeros(X.shape[0], X.shape[1])
    for fold, s in enumerate(kfold(y.tolist(), list(groups), inner, seed)):
        tr = s.train.tolist()
        vec = _fit_base(base, X[s.train], y[s.train], seed + fold, [groups[i] for i in tr])
        proj_tr = torch.einsum("nld,ld->nl", X[s.train], vec)
        centre, scale = _standardise(proj_tr, y[s.train])
        oof[s.val] = (torch.einsum("nld,ld->nl", X[s.val], vec) - centre) / scale
    return oof


def fit_stack(
    X: torch.Tensor,
    y: torch.Tensor,
    pairs: Sequence[str | None] | None = None,
    base: str = "mean_diff",
    inner: int = 3,
    seed: int = 0,
    C: float = 1.0,
) -> Stack:
    """Fit a stack on ``X`` [n, L, d]: combiner on inner out-of-fold scores, base vectors on all rows."""
    from sklearn.linear_model import LogisticRegression

    if base not in METHODS:
        raise TraitscopeError(f"unknown base method {base!r}; use one of: {', '.join(METHODS)}")
    X, y = check_xy(X, y)
    groups = _groups(pairs, X.shape[0])
    oof = out_of_fold_scores(X, y, groups, base, inner, seed)
    clf = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(oof.double().numpy(), y.numpy())
    vec = _fit_base(base, X, y, seed, groups)
    centre, scale = _standardise(torch.einsum("nld,ld->nl", X, vec), y)
    weights = torch.from_numpy(np.asarray(clf.coef_[0], dtype=np.float32))
    return Stack(base, vec, centre, scale, weights, float(clf.intercept_[0]))


def evaluate_stack(
    X: torch.Tensor,
    y: torch.Tensor,
    splits: list[Split],
    pairs: Sequence[str | None] | None = None,
    base: str = "mean_diff",
    inner: int = 3,
    seed: int = 0,
) -> dict[str, Any]:
    """One row of held-out metrics (mean and sd over ``splits``) for a stack over all layers of ``X``."""
    y = torch.as_tensor(y).long()
    per_fold: dict[str, list[float]] = {"auroc": [], "accuracy": [], "effect_size": []}
    for fold, s in enumerate(splits):
        fold_pairs = [pairs[i] for i in s.train.tolist()] if pairs is not None else None
        stack = fit_stack(X[s.train], y[s.train], fold_pairs, base, inner, seed + fold)
        tr, va = stack.score(X[s.train])[:, None], stack.score(X[s.val])[:, None]
        yva = y[s.val]
        per_fold["auroc"].append(float(auroc(va, yva)[0]))
        per_fold["accuracy"].append(float(accuracy(va, yva, midpoint(tr, y[s.train]))[0]))
        per_fold["effect_size"].append(float(cohens_d(va, yva)[0]))
    row: dict[str, Any] = {"method": f"stack({base})", "layer": None, "layers": int(X.shape[1]), "folds": len(splits)}
    for key, vals in per_fold.items():
        t = torch.tensor(vals)
        row[key], row[f"{key}_sd"] = float(t.mean()), float(t.std()) if len(vals) > 1 else 0.0
    return row
