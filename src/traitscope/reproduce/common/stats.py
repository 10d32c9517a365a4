"""Small statistics both reproductions use on plain lists and vectors."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import torch


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=0))


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson's r; None with fewer than 3 points or a constant side."""
    n = len(x)
    if n < 3:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx <= 0 or syy <= 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def pooled_sd(a: Sequence[float], b: Sequence[float]) -> float:
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return float("nan")
    va, vb = statistics.variance(a), statistics.variance(b)
    return math.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))


def cohens_d(a: Sequence[float], b: Sequence[float]) -> float | None:
    sd = pooled_sd(a, b)
    if not sd or math.isnan(sd):
        return None
    return (statistics.mean(a) - statistics.mean(b)) / sd


# --- noise: 95% half-widths the verdict rules compare a number with -----------------------------------

Z95 = 1.959964


def bootstrap_halfwidth(diffs: Sequence[float], n_boot: int = 2000, seed: int = 0) -> float | None:
    """Half-width of the 95% percentile bootstrap CI of the mean of paired differences (resampling
    the pairs). None with fewer than two pairs: nothing to resample."""
    if len(diffs) < 2:
        return None
    g = torch.Generator().manual_seed(seed)
    x = torch.tensor(list(diffs), dtype=torch.float64)
    idx = torch.randint(len(x), (n_boot, len(x)), generator=g)
    means = x[idx].mean(1)
    lo, hi = torch.quantile(means, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return (hi - lo) / 2


def fold_halfwidth(values: Sequence[float]) -> float | None:
    """Half-width of the 95% CI of a mean over k folds (t-free normal approximation): 1.96·sd/√k."""
    if len(values) < 2:
        return None
    return Z95 * statistics.stdev(values) / math.sqrt(len(values))


def r_halfwidth(r: float, n: int) -> float | None:
    """Half-width of the Fisher-z 95% CI of Pearson's r over ``n`` points (None for n ≤ 3)."""
    if n <= 3 or abs(r) >= 1:
        return None
    z, se = math.atanh(r), 1 / math.sqrt(n - 3)
    return (math.tanh(z + Z95 * se) - math.tanh(z - Z95 * se)) / 2


def d_halfwidth(d: float, n1: int, n2: int) -> float | None:
    """Half-width of the 95% CI of Cohen's d (Hedges & Olkin's large-sample standard error)."""
    if n1 < 2 or n2 < 2:
        return None
    return Z95 * math.sqrt((n1 + n2) / (n1 * n2) + d * d / (2 * (n1 + n2)))


def paired_diffs(a: dict[str, Any], b: dict[str, Any], key: str = "trait") -> list[float]:
    """Per-question differences of two steering rows answered on the same questions (``a − b``),
    the questions both scored."""
    scored = {x["question"]: x[key] for x in b.get("answers", []) if x[key] is not None}
    return [
        x[key] - scored[x["question"]] for x in a.get("answers", []) if x[key] is not None and x["question"] in scored
    ]
