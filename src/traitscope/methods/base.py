"""Shared shapes for extraction methods.

A method is a pure function ``(X [n, L, d], y [n], seed, pairs) -> Fit`` returning one unit vector
per layer, oriented so the positive class (label 1, trait present) projects higher on the data it
was fitted on. No I/O, no other traitscope packages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Fit:
    vectors: torch.Tensor  # [L, d], unit rows
    extras: list[dict[str, Any]] = field(default_factory=list)  # one dict per layer


Method = Callable[..., Fit]


def check_xy(X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if X.dim() == 2:
        X = X.unsqueeze(1)
    if X.dim() != 3:
        raise ValueError(f"X must be [n, d] or [n, layers, d], got shape {tuple(X.shape)}")
    y = torch.as_tensor(y).long().flatten()
    if y.numel() != X.shape[0]:
        raise ValueError(f"y has {y.numel()} labels for {X.shape[0]} rows")
    if not ((y == 0).any() and (y == 1).any()):
        raise ValueError("both classes (labels 0 and 1) are needed")
    return X.float(), y


def unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def orient(vectors: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Flip each layer's vector so positives project higher than negatives on (X, y)."""
    proj = torch.einsum("nld,ld->nl", X, vectors)
    gap = proj[y == 1].mean(0) - proj[y == 0].mean(0)
    sign = torch.where(gap < 0, -1.0, 1.0)
    return vectors * sign[:, None]


def pair_index(pairs: Sequence[str | None] | None, y: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (pos, neg) of matched rows: by pair id where given, else a seeded random matching."""
    pos_rows = [i for i in range(len(y)) if y[i] == 1]
    neg_rows = [i for i in range(len(y)) if y[i] == 0]
    if pairs is not None:
        neg_by_pair = {pairs[i]: i for i in neg_rows if pairs[i] is not None}
        matched = [(i, neg_by_pair[pairs[i]]) for i in pos_rows if pairs[i] in neg_by_pair]
        if len(matched) >= 2:
            return torch.tensor([a for a, _ in matched]), torch.tensor([b for _, b in matched])
    g = torch.Generator().manual_seed(seed)
    n = min(len(pos_rows), len(neg_rows))
    pos = torch.tensor(pos_rows)[torch.randperm(len(pos_rows), generator=g)[:n]]
    neg = torch.tensor(neg_rows)[torch.randperm(len(neg_rows), generator=g)[:n]]
    return pos, neg
