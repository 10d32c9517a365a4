"""Activation capture: per-example activations ``[n, layers, dim]`` per site, averaged over the
tokens a position spec selects, with one forward pass per batch for all sites and layers.

Batches are right-padded, so real tokens never attend to padding and keep their positions:
an example gives the same activations alone or in a padded batch (to float32 rounding, ~1e-6
relative). Examples are batched by length, and the leading tokens a batch shares (a chat
template's system prompt: about half of a short prompt) run once, the rows continuing from that
prefix's KV cache; rows come back in input order. Each hook reduces its
``[batch, tokens, dim]`` output to ``[batch, dim]`` on the spot with a weight matrix that is zero
on padding and unselected tokens, so full activations are never held.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from traitscope.errors import TraitscopeError
from traitscope.hooks import StopForward, hooked, stop_after
from traitscope.models.loader import LoadedModel
from traitscope.models.sites import check_site
from traitscope.specs.positions import Position, parse_position


@dataclass(frozen=True)
class Example:
    """Token ids of one prompt and (possibly empty) response; the boundary is exact."""

    prompt_ids: list[int]
    response_ids: list[int]


@dataclass
class Captured:
    """``acts[site]``: ``[n, len(layers), dim]``; ``norms[site]``: mean per-token L2 norm ``[n, len(layers)]``."""

    layers: list[int]
    acts: dict[str, torch.Tensor]
    norms: dict[str, torch.Tensor]


def selection_weights(
    examples: Sequence[Example], position: Position, skip_first: bool = True
) -> tuple[torch.Tensor, list[int]]:
    """``[batch, max_len]`` averaging weights (rows sum to 1) for right-padded examples.

    Token 0 of a sequence is an attention sink whose activation norm can be ~100x the others
    (SmolLM2: ~22k vs ~150-790), so slices never average it in; ``prompt[0]`` still selects it.
    Returns the weights and the indices of examples whose selection is empty.
    """
    lengths = [len(e.prompt_ids) + len(e.response_ids) for e in examples]
    weights = torch.zeros(len(examples), max(lengths))
    empty: list[int] = []
    for row, ex in enumerate(examples):
        idx = position.select(len(ex.prompt_ids), len(ex.response_ids))
        if skip_first and position.index is None and len(idx) > 1:
            idx = [i for i in idx if i != 0]
        if not idx:
            empty.append(row)
            continue
        weights[row, idx] = 1.0 / len(idx)
    return weights, empty


MIN_SHARED_PREFIX = 8  # tokens a batch must share before a separate prefix pass pays for itself


def shared_prefix(batch: Sequence[Example]) -> int:
    """Leading tokens every example of ``batch`` shares, leaving each at least one of its own
    (chat templates put the same system prompt before every scenario: about half the tokens)."""
    seqs = [e.prompt_ids + e.response_ids for e in batch]
    limit = min(len(s) for s in seqs) - 1
    n = 0
    while n < limit and all(s[n] == seqs[0][n] for s in seqs):
        n += 1
    return n


def _reducer(
    key: tuple[str, int], weights: torch.Tensor, out: dict, offset: dict[str, int]
) -> Callable[[torch.Tensor], None]:
    """A hook that adds its tokens' weighted share to ``out[key]``. Tokens ``offset["start"]`` on:
    a prefix pass sees ``[1, P, d]`` (shared by every row), the main pass ``[b, T, d]``."""

    def fn(h: torch.Tensor) -> None:
        h = h.float()
        w = weights[:, offset["start"] : offset["start"] + h.shape[1]]
        acts = torch.einsum("bt,btd->bd", w, h.expand(w.shape[0], -1, -1))
        norms = (w * h.norm(dim=-1)).sum(dim=1)
        if key in out:
            acts, norms = out[key][0] + acts, out[key][1] + norms
        out[key] = (acts, norms)

    return fn


def _forward(lm: LoadedModel, ids: torch.Tensor, mask: torch.Tensor, fns: dict, last: int, cache: Any = None) -> None:
    with torch.inference_mode(), hooked(lm, fns), stop_after(lm, last):
        try:
            lm.model(
                input_ids=ids.to(lm.device),
                attention_mask=mask.to(lm.device),
                past_key_values=cache,
                use_cache=cache is not None,
            )
        except StopForward:
            pass


def _prefix_pass(lm: LoadedModel, prefix: list[int], rows: int, fns: dict, last: int) -> Any:
    """Run the shared prefix once; return its KV cache repeated for ``rows`` rows."""
    from transformers import DynamicCache

    cache = DynamicCache(config=lm.model.config)
    ids = torch.tensor([prefix])
    _forward(lm, ids, torch.ones_like(ids), fns, last, cache)
    for layer in cache.layers:
        layer.batch_repeat_interleave(rows)
    return cache


def _padded(batch: Sequence[Example], start: int, width: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and mask of the batch's tokens from ``start`` on (real tokens keep positions)."""
    ids = torch.full((len(batch), width - start), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ex in enumerate(batch):
        seq = ex.prompt_ids + ex.response_ids
        ids[row, : len(seq) - start] = torch.tensor(seq[start:])
        mask[row, : len(seq)] = 1
    return ids, mask


def _capture_batch(
    lm: LoadedModel, batch: Sequence[Example], weights: torch.Tensor, sites: list[str], layers: list[int]
) -> dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]]:
    """Weighted activations and norms of one batch: a shared prefix (when long enough) runs once
    and the rows continue from its KV cache, so it is not recomputed per row."""
    out: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}
    offset = {"start": 0}
    fns = {(s, layer): _reducer((s, layer), weights, out, offset) for s in sites for layer in layers}
    first = shared_prefix(batch) if len(batch) > 1 else 0
    cache = None
    if first >= MIN_SHARED_PREFIX:
        prefix = (batch[0].prompt_ids + batch[0].response_ids)[:first]
        cache = _prefix_pass(lm, prefix, len(batch), fns, max(layers))
        offset["start"] = first
    else:
        first = 0
    ids, mask = _padded(batch, first, weights.shape[1], lm.pad_id)
    _forward(lm, ids, mask, fns, max(layers), cache)
    return out


def capture(
    lm: LoadedModel,
    examples: Sequence[Example],
    sites: Sequence[str],
    layers: Sequence[int],
    position: str | Position = "response[:]",
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
) -> Captured:
    """Capture activations of ``sites`` x ``layers`` for ``examples`` at ``position``."""
    position = parse_position(position)
    sites = [check_site(s) for s in sites]
    layers = list(layers)
    for layer in layers:
        if not 0 <= layer < lm.n_layers:
            raise TraitscopeError(f"layer {layer} is out of range; this model has layers 0-{lm.n_layers - 1}")
    if not examples:
        raise TraitscopeError("no examples to capture")
    acts: dict[str, list[torch.Tensor]] = {s: [] for s in sites}
    norms: dict[str, list[torch.Tensor]] = {s: [] for s in sites}
    # batches of similar length (less padding, longer shared prefixes); rows come back in input order
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].prompt_ids) + len(examples[i].response_ids))
    for start in range(0, len(examples), batch_size):
        rows = order[start : start + batch_size]
        batch = [examples[i] for i in rows]
        weights, empty = selection_weights(batch, position)
        if empty:
            bad = batch[empty[0]]
            raise TraitscopeError(
                f"position {position} selects no tokens for example {rows[empty[0]]} "
                f"(prompt {len(bad.prompt_ids)} tokens, response {len(bad.response_ids)}); "
                "drop empty responses or choose another position"
            )
        out = _capture_batch(lm, batch, weights.to(lm.device), sites, layers)
        for s in sites:
            acts[s].append(torch.stack([out[(s, layer)][0] for layer in layers], dim=1).cpu())
            norms[s].append(torch.stack([out[(s, layer)][1] for layer in layers], dim=1).cpu())
        if on_batch:
            on_batch(len(batch))
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(len(order))
    return Captured(
        layers=layers,
        acts={s: torch.cat(v)[inverse] for s, v in acts.items()},
        norms={s: torch.cat(v)[inverse] for s, v in norms.items()},
    )
