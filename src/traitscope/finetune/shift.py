"""The finetuning shift (Persona Vectors, Chen et al. 2025): how far finetuning moved a model's
activations along a trait vector, next to how much more (or less) its answers show the trait.

Per trait and extracted layer, on the same prompts:
  ``prompt_last``  mean over prompts of ``(h_ft - h_base) . v`` at the last prompt token;
  ``response``     the same, averaged over the finetuned model's answer tokens, teacher-forced
                   through both models (same tokens, so only the weights differ).
``random_p95`` is the 95th percentile of ``|shift|`` along random unit directions at the same
layer: a shift inside it is not distinguishable from a generic move of the activations.
Beside it, the judged trait expression of base and finetuned answers (default judge).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from traitscope.activations import Example, capture
from traitscope.finetune.vectors import trait_vectors
from traitscope.generation import SamplingConfig, generate_ids
from traitscope.models.loader import LoadedModel

N_RANDOM = 200


def _rows(lm: LoadedModel, prompts: Sequence[str]) -> list[list[int]]:
    return [lm.prompt_ids(p) for p in prompts]


def answers(lm: LoadedModel, prompts: Sequence[str], max_new_tokens: int = 48) -> list[list[int]]:
    """Greedy answers (token ids) to each prompt."""
    return generate_ids(lm, _rows(lm, prompts), SamplingConfig(max_new_tokens=max_new_tokens), batch_size=8)


def _mean_delta(base: LoadedModel, tuned: LoadedModel, examples: list[Example], position: str, site: str, layers):
    a = capture(base, examples, [site], layers, position, batch_size=8).acts[site]
    b = capture(tuned, examples, [site], layers, position, batch_size=8).acts[site]
    return (b - a).mean(dim=0)  # [layers, dim]


def random_p95(delta: torch.Tensor, n: int = N_RANDOM, seed: int = 0) -> float:
    """95th percentile of |delta . u| over random unit directions ``u``."""
    g = torch.Generator().manual_seed(seed)
    u = torch.nn.functional.normalize(torch.randn(n, delta.shape[-1], generator=g), dim=-1)
    return float((u @ delta.float()).abs().quantile(0.95))


def activation_shift(
    base: LoadedModel,
    tuned: LoadedModel,
    run_root: Path,
    traits: Sequence[str],
    prompts: Sequence[str],
    tuned_answers: Sequence[list[int]],
    site: str = "residual",
    method: str = "probe",
) -> dict[str, Any]:
    """Per trait: per-layer shifts at ``prompt[-1]`` and over the response, the random baseline at
    the trait's best layer, and that layer's numbers on top."""
    rows = _rows(base, prompts)
    prompt_only = [Example(r, []) for r in rows]
    with_resp = [Example(r, a) for r, a in zip(rows, tuned_answers, strict=True) if a]
    out: dict[str, Any] = {}
    for trait in traits:
        vset, best = trait_vectors(base, run_root, trait, site, method)
        layers = sorted(vset.vectors)
        d_prompt = _mean_delta(base, tuned, prompt_only, "prompt[-1]", site, layers)
        d_resp = _mean_delta(base, tuned, with_resp, "response[:]", site, layers) if with_resp else None
        per_layer = {}
        for i, layer in enumerate(layers):
            v = torch.nn.functional.normalize(vset[layer].float(), dim=0)
            per_layer[str(layer)] = {
                "prompt_last": round(float(d_prompt[i] @ v), 4),
                "response": None if d_resp is None else round(float(d_resp[i] @ v), 4),
                "random_p95_prompt_last": round(random_p95(d_prompt[i]), 4),
            }
        out[Path(trait).name] = {"best_layer": best, **per_layer[str(best)], "layers": per_layer}
    return out


def judged_expression(
    judge: Any, trait_names: Sequence[str], prompts: Sequence[str], base_text: Sequence[str], tuned_text: Sequence[str]
) -> dict[str, Any]:
    """Mean judged trait and coherence of base and finetuned answers (0-100; unscored answers left out)."""
    from traitscope.traits import load_trait

    def mean(scores) -> float | None:
        vals = [s.value for s in scores if s.value is not None]
        return round(sum(vals) / len(vals), 2) if vals else None

    base_pairs = list(zip(prompts, base_text, strict=True))
    tuned_pairs = list(zip(prompts, tuned_text, strict=True))
    out: dict[str, Any] = {
        "coherence_base": mean(judge.score_coherence(base_pairs)),
        "coherence_finetuned": mean(judge.score_coherence(tuned_pairs)),
    }
    for name in trait_names:
        t = load_trait(name)
        b, f = mean(judge.score_trait(t, base_pairs)), mean(judge.score_trait(t, tuned_pairs))
        out[t.name] = {"base": b, "finetuned": f, "delta": None if b is None or f is None else round(f - b, 2)}
    return out


def finetuning_shift(
    base: LoadedModel,
    tuned: LoadedModel,
    run_root: Path,
    traits: Sequence[str],
    prompts: Sequence[str],
    judge: Any | None = None,
    max_new_tokens: int = 48,
) -> dict[str, Any]:
    """Activation shift per trait and layer, plus (with a judge) the judged change in expression."""
    tuned_ids = answers(tuned, prompts, max_new_tokens)
    result: dict[str, Any] = {
        "model": base.name,
        "adapter": tuned.extra.get("adapter"),
        "n_prompts": len(prompts),
        "shift": activation_shift(base, tuned, run_root, traits, prompts, tuned_ids),
    }
    if judge is not None:
        base_text = [base.tokenizer.decode(a, skip_special_tokens=True) for a in answers(base, prompts, max_new_tokens)]
        tuned_text = [tuned.tokenizer.decode(a, skip_special_tokens=True) for a in tuned_ids]
        result["judge"] = getattr(judge, "name", str(judge))
        result["judged"] = judged_expression(judge, traits, prompts, base_text, tuned_text)
        result["answers"] = [
            {"prompt": p, "base": b, "finetuned": f} for p, b, f in zip(prompts, base_text, tuned_text, strict=True)
        ]
    return result
