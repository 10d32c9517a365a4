"""Steering specs: what to add (or project out) where, and how strong.

Strength is best given as a **perturbation ratio** ``coef * ||v|| / ||h||`` (the research log's
scaling law: ~0.5-0.8 is the sweet spot on gemma-2-2b and coherence breaks above ~1.0-1.3);
:func:`coef_for_ratio` turns it into a coefficient from the mean activation norm at that site and
layer, stored with the vector at extraction time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from traitscope.errors import TraitscopeError
from traitscope.store.vectors import VectorSet

SCOPES = ("all", "prompt", "response")
OPS = ("add", "ablate")
MODES = ("single", "weighted", "orthogonal")


@dataclass(frozen=True)
class SteerTerm:
    """Add ``coef * vector`` at ``site``/``layer``. ``coef`` may be a per-row tensor [batch] and
    ``vector`` a per-row matrix [batch, d] so one batched call runs many configurations."""

    site: str
    layer: int
    vector: torch.Tensor
    coef: float | torch.Tensor = 1.0


@dataclass
class SteeringSpec:
    terms: list[SteerTerm] = field(default_factory=list)
    scope: str = "all"  # prompt: prefill only; response: generated tokens only; all: both
    op: str = "add"  # add, or ablate (project the direction out; coef ignored)

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise TraitscopeError(f"steering scope {self.scope!r} is not valid; use one of: {', '.join(SCOPES)}")
        if self.op not in OPS:
            raise TraitscopeError(f"steering op {self.op!r} is not valid; use one of: {', '.join(OPS)}")


def check_ratio(ratio: float) -> float:
    if not math.isfinite(ratio) or ratio < 0:
        raise TraitscopeError(f"perturbation ratio {ratio!r} must be a finite number >= 0 (typical: 0.2-1.0)")
    return float(ratio)


def coef_for_ratio(ratio: float, act_norm: float, vector_norm: float = 1.0) -> float:
    """``coef = ratio * ||h|| / ||v||`` so that ``coef * ||v|| / ||h|| == ratio``."""
    check_ratio(ratio)
    return ratio * act_norm / max(vector_norm, 1e-12)


def layer_ratios(
    layers: Sequence[int], total_ratio: float, mode: str, effect_sizes: Sequence[float] | None = None
) -> list[float]:
    """Split a total perturbation ratio over layers: ``weighted`` by each layer's validation
    effect size (negative ones get nothing), otherwise evenly."""
    check_ratio(total_ratio)
    if mode not in MODES:
        raise TraitscopeError(f"multi-layer mode {mode!r} is not valid; use one of: {', '.join(MODES)}")
    if mode == "weighted" and effect_sizes is not None:
        w = [max(float(e), 0.0) for e in effect_sizes]
        if sum(w) > 0:
            return [total_ratio * x / sum(w) for x in w]
    return [total_ratio / len(layers)] * len(layers)


def orthogonalise(vectors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Gram-Schmidt in layer order: each vector loses its components along the earlier ones, so a
    multi-layer push does not add the same direction several times."""
    out: list[torch.Tensor] = []
    for v in vectors:
        w = v.clone().float()
        for u in out:
            w = w - (w @ u) * u
        n = w.norm()
        if n < 1e-6:
            raise TraitscopeError("orthogonal mode: a layer's vector lies in the span of the earlier ones")
        out.append(w / n)
    return out


def build_terms(
    vset: VectorSet,
    layers: Sequence[int],
    ratio: float | None = None,
    coef: float | None = None,
    mode: str = "single",
    act_norms: dict[int, float] | None = None,
) -> list[SteerTerm]:
    """Terms for one configuration. With ``ratio``, each layer's coefficient comes from its mean
    activation norm (``act_norms`` overrides the norms stored with the vectors)."""
    if (ratio is None) == (coef is None):
        raise TraitscopeError("give exactly one of a perturbation ratio or a coefficient")
    site = vset.provenance.site
    vectors = [vset[layer].float() for layer in layers]
    if mode == "orthogonal" and len(layers) > 1:
        vectors = orthogonalise(vectors)
    if coef is not None:
        if not math.isfinite(coef):
            raise TraitscopeError(f"coefficient {coef!r} must be finite")
        return [
            SteerTerm(site, layer, v, coef / (len(layers) if mode != "single" else 1))
            for layer, v in zip(layers, vectors, strict=True)
        ]
    effects = [float(vset.provenance.extras.get(str(layer), {}).get("effect_size", 1.0)) for layer in layers]
    ratios = layer_ratios(layers, ratio, "single" if len(layers) == 1 else mode, effects)  # type: ignore[arg-type]
    terms = []
    for layer, v, r in zip(layers, vectors, ratios, strict=True):
        norm = (act_norms or {}).get(layer) or vset.act_norm(layer)
        if norm is None:
            raise TraitscopeError(f"no activation norm for layer {layer}; pass --coef or measure norms first")
        terms.append(SteerTerm(site, layer, v, coef_for_ratio(r, norm, float(v.norm()))))
    return terms
