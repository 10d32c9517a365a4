"""Forward hooks on named sites, as context managers that always detach.

A hook function receives the site's output tensor ``[batch, tokens, dim]`` and returns either
``None`` (read-only: capture, monitoring) or a tensor of the same shape that replaces it
(intervention: steering, ablation). Hooks are removed in ``finally``, so an exception inside the
``with`` block leaves the model exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from traitscope.models.loader import LoadedModel

HookFn = Callable[[torch.Tensor], torch.Tensor | None]
SiteKey = tuple[str, int]  # (site, layer)


def _forward_hook(fn: HookFn) -> Callable[[nn.Module, Any, Any], Any]:
    def hook(module: nn.Module, args: Any, output: Any) -> Any:
        # Decoder layers return a tensor in recent transformers and a tuple in older ones.
        hidden = output[0] if isinstance(output, tuple) else output
        new = fn(hidden)
        if new is None:
            return None
        return (new, *output[1:]) if isinstance(output, tuple) else new

    hook._traitscope = True  # type: ignore[attr-defined]
    return hook


@contextmanager
def hooked(lm: LoadedModel, fns: Mapping[SiteKey, HookFn | list[HookFn]]) -> Iterator[None]:
    """Attach ``fns[(site, layer)]`` to those sites for the duration of the block."""
    handles: list[torch.utils.hooks.RemovableHandle] = []
    try:
        for (site, layer), fn in fns.items():
            module = lm.module(site, layer)
            for f in fn if isinstance(fn, list) else [fn]:
                handles.append(module.register_forward_hook(_forward_hook(f)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def active_hook_count(lm: LoadedModel) -> int:
    """Number of traitscope hooks attached anywhere in the model (transformers keeps its own)."""
    return sum(getattr(h, "_traitscope", False) for m in lm.model.modules() for h in m._forward_hooks.values())


class StopForward(Exception):
    """Raised by a hook to end a forward pass early once every needed layer has been seen."""


@contextmanager
def stop_after(lm: LoadedModel, layer: int) -> Iterator[None]:
    """Abort the forward pass after block ``layer``: later blocks and the LM head are not needed
    for capture. Catch :class:`StopForward` around the forward call."""

    def stop(_: torch.Tensor) -> None:
        raise StopForward

    with hooked(lm, {("residual", layer): stop}):
        yield
