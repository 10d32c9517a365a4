"""Batched steered generation: many configurations as rows of one batched generate call, each
row with its own vectors and coefficients (a layer x ratio sweep is what users run most)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from traitscope.generation import SamplingConfig, generate_ids
from traitscope.models.loader import LoadedModel
from traitscope.steering.apply import steer
from traitscope.steering.spec import SteeringSpec, SteerTerm


def row_terms(rows_terms: Sequence[Sequence[SteerTerm]], dims: dict[str, int]) -> list[SteerTerm]:
    """Merge per-row term lists into one term per (site, layer) holding a [rows, d] matrix of
    ``coef * v`` (zero for rows that do not steer there)."""
    keys = sorted({(t.site, t.layer) for terms in rows_terms for t in terms})
    merged = []
    for site, layer in keys:
        m = torch.zeros(len(rows_terms), dims[site])
        for i, terms in enumerate(rows_terms):
            for t in terms:
                if (t.site, t.layer) == (site, layer):
                    m[i] += float(t.coef) * t.vector.float()
        merged.append(SteerTerm(site, layer, m, 1.0))
    return merged


def generate_rows(
    lm: LoadedModel,
    rows: Sequence[tuple[list[int], Sequence[SteerTerm]]],
    sampling: SamplingConfig = SamplingConfig(),
    batch_size: int = 32,
    scope: str = "all",
    on_batch: Callable[[int], None] | None = None,
) -> list[str]:
    """Generate one answer per (prompt ids, steering terms) row, batching rows together."""
    dims = {site: lm.site_dim(site) for site in {t.site for _, terms in rows for t in terms}}
    out: list[str] = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        spec = SteeringSpec(row_terms([terms for _, terms in batch], dims), scope=scope)
        with steer(lm, spec):
            ids = generate_ids(lm, [p for p, _ in batch], sampling, batch_size=len(batch))
        out.extend(lm.tokenizer.decode(r, skip_special_tokens=True).strip() for r in ids)
        if on_batch:
            on_batch(len(batch))
    return out
