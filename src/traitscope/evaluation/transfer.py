"""Transfer matrices: train a method on one tag group (topic, language, domain), test on every
other — the shape of the research log's cross-topic, cross-language and cross-domain tables.

Off-diagonal cells train on all of group A and test on all of group B, thresholding at the
midpoint of A's class means (so a shift between groups costs accuracy, as it would in use).
Diagonal cells are k-fold cross-validated within the group, never scored on training rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from traitscope.evaluation.crossval import kfold
from traitscope.evaluation.metrics import accuracy, auroc, midpoint
from traitscope.methods import METHODS
from traitscope.methods.base import orient


@dataclass
class TransferMatrix:
    groups: list[str]
    accuracy: list[list[float]]  # [train][test]
    auroc: list[list[float]]
    sizes: dict[str, int]

    def averages(self, metric: str = "accuracy") -> dict[str, float]:
        m = getattr(self, metric)
        n = len(self.groups)
        same = [m[i][i] for i in range(n)]
        cross = [m[i][j] for i in range(n) for j in range(n) if i != j]
        s = sum(same) / n
        c = sum(cross) / max(len(cross), 1)
        return {"same_group": s, "cross_group": c, "drop": s - c}


def _score(
    method: str,
    Xtr: torch.Tensor,
    ytr: torch.Tensor,
    Xte: torch.Tensor,
    yte: torch.Tensor,
    seed: int,
    pairs: Sequence[str | None] | None,
) -> tuple[float, float]:
    vec = orient(METHODS[method](Xtr[:, None], ytr, seed=seed, pairs=pairs).vectors, Xtr[:, None], ytr)[0]
    ptr, pte = Xtr @ vec, Xte @ vec
    return float(accuracy(pte, yte, midpoint(ptr, ytr))), float(auroc(pte, yte))


def transfer_matrix(
    X: torch.Tensor,
    y: torch.Tensor,
    tags: Sequence[str],
    method: str = "probe",
    groups: Sequence[str] | None = None,
    seed: int = 0,
    folds: int = 5,
    pairs: Sequence[str | None] | None = None,
) -> TransferMatrix:
    """``X`` [n, d] at one layer/site; ``tags`` the group of each row; ``groups`` the CV groups."""
    y = torch.as_tensor(y).long()
    names = sorted({t for t in tags if t})
    idx = {g: torch.tensor([i for i, t in enumerate(tags) if t == g]) for g in names}
    cv_groups = list(groups) if groups is not None else [str(i) for i in range(len(y))]
    acc = [[0.0] * len(names) for _ in names]
    auc = [[0.0] * len(names) for _ in names]
    for a, ga in enumerate(names):
        ia = idx[ga]
        pa = [pairs[i] for i in ia.tolist()] if pairs is not None else None
        for b, gb in enumerate(names):
            if a == b:
                splits = kfold(y[ia].tolist(), [cv_groups[i] for i in ia.tolist()], folds, seed)
                scores = [
                    _score(
                        method,
                        X[ia[s.train]],
                        y[ia[s.train]],
                        X[ia[s.val]],
                        y[ia[s.val]],
                        seed,
                        [pa[i] for i in s.train.tolist()] if pa else None,
                    )
                    for s in splits
                ]
                acc[a][b] = sum(s[0] for s in scores) / len(scores)
                auc[a][b] = sum(s[1] for s in scores) / len(scores)
            else:
                ib = idx[gb]
                acc[a][b], auc[a][b] = _score(method, X[ia], y[ia], X[ib], y[ib], seed, pa)
    return TransferMatrix(names, acc, auc, {g: len(v) for g, v in idx.items()})
