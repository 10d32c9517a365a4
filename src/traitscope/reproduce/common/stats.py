"""Small statistics both reproductions use on plain lists and vectors."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

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
