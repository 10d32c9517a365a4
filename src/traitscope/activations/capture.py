"""Activation capture: per-example activations ``[n, layers, dim]`` per site, averaged over the
tokens a position spec selects, with one forward pass per batch for all sites and layers.

Batches are right-padded, so real tokens never attend to padding and keep their positions:
an example gives the same activations alone or in a padded batch. Each hook reduces its
``[batch, tokens, dim]`` output to ``[batch, dim]`` on the spot with a weight matrix that is zero
on padding and unselected tokens, so full activations are never held.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

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
    device = lm.device
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        weights, empty = selection_weights(batch, position)
        if empty:
            raise TraitscopeError(
                f"position {position} selects no tokens for example {start + empty[0]} "
                f"(prompt {len(batch[empty[0]].prompt_ids)} tokens, response {len(batch[empty[0]].response_ids)}); "
                "drop empty responses or choose another position"
            )
        ids = torch.full(weights.shape, lm.pad_id, dtype=torch.long)  # right-padded: real tokens keep positions
        mask = torch.zeros(weights.shape, dtype=torch.long)
        for row, ex in enumerate(batch):
            seq = ex.prompt_ids + ex.response_ids
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        weights = weights.to(device)
        out: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}

        def reducer(
            key: tuple[str, int], weights: torch.Tensor = weights, out: dict = out
        ) -> Callable[[torch.Tensor], None]:
            def fn(h: torch.Tensor) -> None:
                h = h.float()
                out[key] = (
                    torch.einsum("bt,btd->bd", weights, h),
                    (weights * h.norm(dim=-1)).sum(dim=1),
                )

            return fn

        fns = {(s, layer): reducer((s, layer)) for s in sites for layer in layers}
        with torch.inference_mode(), hooked(lm, fns), stop_after(lm, max(layers)):
            try:
                lm.model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False)
            except StopForward:
                pass
        for s in sites:
            acts[s].append(torch.stack([out[(s, layer)][0] for layer in layers], dim=1).cpu())
            norms[s].append(torch.stack([out[(s, layer)][1] for layer in layers], dim=1).cpu())
        if on_batch:
            on_batch(len(batch))
    return Captured(
        layers=layers,
        acts={s: torch.cat(v) for s, v in acts.items()},
        norms={s: torch.cat(v) for s, v in norms.items()},
    )
