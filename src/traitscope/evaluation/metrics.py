"""Detection metrics on projections: accuracy at the class-mean midpoint, AUROC, Cohen's d.
All accept a trailing batch of columns so many layers / random directions score at once."""

from __future__ import annotations

import torch


def auroc(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """AUROC of ``scores`` [n, ...] for labels ``y`` [n] (1 = positive), ties counted half
    (Mann-Whitney U / (n1 n0)). Returns shape ``scores.shape[1:]``."""
    y = y.bool()
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        raise ValueError("AUROC needs both classes")
    flat = scores.reshape(scores.shape[0], -1).double()
    # average ranks (ties get the mean rank) along dim 0
    order = flat.argsort(dim=0)
    ranks = torch.empty_like(flat)
    ar = torch.arange(1, flat.shape[0] + 1, dtype=flat.dtype).unsqueeze(1).expand_as(flat)
    ranks.scatter_(0, order, ar)
    sorted_vals = flat.gather(0, order)
    # tie correction: only needed when equal values exist
    if (sorted_vals[1:] == sorted_vals[:-1]).any():
        for col in range(flat.shape[1]):
            vals = flat[:, col]
            uniq, inverse = torch.unique(vals, return_inverse=True)
            if len(uniq) == len(vals):
                continue
            sums = torch.zeros(len(uniq), dtype=flat.dtype).scatter_add_(0, inverse, ranks[:, col])
            counts = torch.zeros(len(uniq), dtype=flat.dtype).scatter_add_(0, inverse, torch.ones_like(vals))
            ranks[:, col] = (sums / counts)[inverse]
    u = ranks[y].sum(0) - n1 * (n1 + 1) / 2
    return (u / (n1 * n0)).float().reshape(scores.shape[1:])


def cohens_d(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(mean_pos - mean_neg) / pooled sd, per column."""
    y = y.bool()
    a, b = scores[y].double(), scores[~y].double()
    n1, n0 = a.shape[0], b.shape[0]
    # a class of one (a small fold after vetting) contributes no spread rather than NaN
    va, vb = a.var(0, correction=int(n1 > 1)), b.var(0, correction=int(n0 > 1))
    pooled = (((n1 - 1) * va + (n0 - 1) * vb) / max(n1 + n0 - 2, 1)).sqrt()
    return ((a.mean(0) - b.mean(0)) / pooled.clamp_min(1e-12)).float()


def midpoint(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    y = y.bool()
    return (scores[y].mean(0) + scores[~y].mean(0)) / 2


def accuracy(scores: torch.Tensor, y: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Share classified right when ``score > threshold`` means positive."""
    pred = scores > threshold
    return (pred == y.bool().reshape(-1, *([1] * (scores.dim() - 1)))).float().mean(0)


def bootstrap_d_ci(scores: torch.Tensor, y: torch.Tensor, n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of Cohen's d, resampling within each class (1-D scores)."""
    g = torch.Generator().manual_seed(seed)
    y = y.bool()
    a, b = scores[y], scores[~y]
    ia = torch.randint(0, len(a), (n_boot, len(a)), generator=g)
    ib = torch.randint(0, len(b), (n_boot, len(b)), generator=g)
    sa, sb = a[ia].double(), b[ib].double()
    pooled = (((len(a) - 1) * sa.var(1) + (len(b) - 1) * sb.var(1)) / max(len(a) + len(b) - 2, 1)).sqrt()
    d = (sa.mean(1) - sb.mean(1)) / pooled.clamp_min(1e-12)
    lo, hi = torch.quantile(d, torch.tensor([0.025, 0.975], dtype=d.dtype))
    return float(lo), float(hi)
