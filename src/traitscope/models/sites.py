"""Hook sites: where in each architecture family a named site lives.

Site names (the same for every family):
  ``residual``  block output (the residual stream after block ``i``) == ``hidden_states[i + 1]``
  ``attn_out``  attention output projection (``o_proj``), before it joins the residual
                (gemma2/gemma3 apply a post-attention norm after it)
  ``mlp_out``   MLP down projection, before it joins the residual
  ``k``, ``v``  key / value projections: what lands in the KV cache (``k`` before RoPE/k-norm)
A family missing here fails with a message naming its ``model_type``; adding one is one line.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from traitscope.errors import TraitscopeError

SITES: tuple[str, ...] = ("residual", "attn_out", "mlp_out", "k", "v")


@dataclass(frozen=True)
class SiteTable:
    """Module paths relative to the decoder-layer list; ``{i}`` is the layer index."""

    layers: str
    residual: str = "{layers}.{i}"
    attn_out: str = "{layers}.{i}.self_attn.o_proj"
    mlp_out: str = "{layers}.{i}.mlp.down_proj"
    k: str = "{layers}.{i}.self_attn.k_proj"
    v: str = "{layers}.{i}.self_attn.v_proj"

    def path(self, site: str, layer: int) -> str:
        return getattr(self, site).format(layers=self.layers, i=layer)


# The families the research log used (gemma-2, Mistral/Zephyr, Qwen2.5) and the bundled models
# (SmolLM2 is a llama, gemma-3-270m is gemma3_text) share one layout, but each is listed so an
# unlisted architecture fails loudly instead of silently hooking the wrong module.
_DECODER = SiteTable(layers="model.layers")
SITE_TABLES: dict[str, SiteTable] = {
    "llama": _DECODER,
    "mistral": _DECODER,
    "qwen2": _DECODER,
    "qwen3": _DECODER,
    "gemma": _DECODER,
    "gemma2": _DECODER,
    "gemma3_text": _DECODER,
    "gemma3": SiteTable(layers="model.language_model.layers"),
}


def site_table(model_type: str) -> SiteTable:
    try:
        return SITE_TABLES[model_type]
    except KeyError:
        known = ", ".join(sorted(SITE_TABLES))
        raise TraitscopeError(
            f"model type {model_type!r} has no hook-site table; supported: {known} "
            "(add one in traitscope/models/sites.py)"
        ) from None


def check_site(site: str) -> str:
    if site not in SITES:
        raise TraitscopeError(f"unknown site {site!r}; valid sites: {', '.join(SITES)}")
    return site


def get_module(model: nn.Module, model_type: str, site: str, layer: int) -> nn.Module:
    path = site_table(model_type).path(check_site(site), layer)
    try:
        return model.get_submodule(path)
    except AttributeError:
        raise TraitscopeError(
            f"model type {model_type!r} has no module {path!r} for site {site!r} layer {layer}"
        ) from None
