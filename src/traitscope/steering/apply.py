"""Applying a steering spec: a context manager around any forward or generate call.

Inside a KV-cached generate call the first forward (prefill) sees every prompt token at once and
later forwards see one new token each; the ``prompt``/``response`` scopes use exactly that: a
call with more than one token is the prompt, a single-token call is a generated token."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from traitscope.hooks import hooked
from traitscope.models.loader import LoadedModel
from traitscope.steering.spec import SteeringSpec, SteerTerm


def _addend(terms: list[SteerTerm], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Sum of ``coef * v`` for one site/layer, shaped [d] or [batch, 1, d] for per-row terms."""
    total: torch.Tensor | None = None
    for t in terms:
        coef = torch.as_tensor(t.coef, dtype=torch.float32)
        v = t.vector.float()
        if coef.dim() == 1 or v.dim() == 2:
            add = (coef.reshape(-1, 1) * v.reshape(-1, v.shape[-1]) if coef.dim() == 1 else coef * v).unsqueeze(1)
        else:
            add = coef * v
        total = add if total is None else total + add
    assert total is not None
    return total.to(device=device, dtype=dtype)


def _in_scope(scope: str, n_tokens: int) -> bool:
    if scope == "all":
        return True
    return (n_tokens > 1) if scope == "prompt" else (n_tokens == 1)


@contextmanager
def steer(lm: LoadedModel, spec: SteeringSpec) -> Iterator[None]:
    """Apply ``spec`` to every forward pass inside the block; always removed afterwards."""
    by_site: dict[tuple[str, int], list[SteerTerm]] = {}
    for t in spec.terms:
        by_site.setdefault((t.site, t.layer), []).append(t)
    cache: dict[tuple[str, int], torch.Tensor] = {}

    def make(key: tuple[str, int]):
        terms = by_site[key]

        def add(h: torch.Tensor) -> torch.Tensor | None:
            if not _in_scope(spec.scope, h.shape[1]):
                return None
            if key not in cache:
                cache[key] = _addend(terms, h.device, h.dtype)
            return h + cache[key]

        def ablate(h: torch.Tensor) -> torch.Tensor | None:
            if not _in_scope(spec.scope, h.shape[1]):
                return None
            for t in terms:
                u = (t.vector / t.vector.norm(dim=-1, keepdim=True)).to(h.device, h.dtype)
                u = u.unsqueeze(1) if u.dim() == 2 else u
                h = h - (h * u).sum(-1, keepdim=True) * u
            return h

        return ablate if spec.op == "ablate" else add

    with hooked(lm, {key: make(key) for key in by_site}):
        yield
