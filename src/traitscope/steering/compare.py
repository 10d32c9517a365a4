"""One prompt answered unsteered and steered, side by side (what ``traitscope steer`` shows)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from traitscope.errors import TraitscopeError
from traitscope.generation import SamplingConfig, generate_ids
from traitscope.models.loader import LoadedModel
from traitscope.steering.apply import steer
from traitscope.steering.spec import SteeringSpec, build_terms
from traitscope.store.vectors import VectorSet

DEFAULT_RATIO = 0.3


def side_by_side(
    lm: LoadedModel,
    vset: VectorSet,
    prompt: str,
    layers: Sequence[int],
    ratio: float | None = None,
    coef: float | None = None,
    mode: str = "weighted",
    scope: str = "all",
    ablate: bool = False,
    sign: float = 1.0,
    max_new_tokens: int = 64,
) -> dict[str, Any]:
    """Greedy answers to ``prompt`` without and with the vectors at ``layers`` (``ratio`` defaults to
    0.3 when no ``coef`` is given; ``sign=-1`` pushes away from the trait)."""
    if not prompt.strip():
        raise TraitscopeError("--prompt is empty")
    if ratio is not None and coef is not None:
        raise TraitscopeError("give --ratio or --coef, not both")
    vset.check_model(lm.n_layers, lm.hidden_size, lm.site_dim(vset.provenance.site), lm.name)
    strength = None if coef is not None else (DEFAULT_RATIO if ratio is None else ratio)
    terms = build_terms(vset, list(layers), strength, coef, "single" if len(layers) == 1 else mode)
    terms = [type(x)(x.site, x.layer, x.vector, sign * float(x.coef)) for x in terms]
    ids = [lm.prompt_ids(prompt)]
    cfg = SamplingConfig(max_new_tokens=max_new_tokens)
    plain = lm.tokenizer.decode(generate_ids(lm, ids, cfg)[0], skip_special_tokens=True).strip()
    with steer(lm, SteeringSpec(terms, scope=scope, op="ablate" if ablate else "add")):
        steered = lm.tokenizer.decode(generate_ids(lm, ids, cfg)[0], skip_special_tokens=True).strip()
    p = vset.provenance
    return {
        "prompt": prompt,
        "unsteered": plain,
        "steered": steered,
        "site": p.site,
        "method": p.method,
        "position": p.position,
        "layers": list(layers),
        "op": "ablate" if ablate else "add",
        "scope": scope,
        "coefs": {str(x.layer): round(float(x.coef), 3) for x in terms},
    }
