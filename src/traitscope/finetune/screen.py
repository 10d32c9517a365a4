"""Screening finetuning data before training (Persona Vectors' projection difference).

Per training sample and trait: the mean projection, at the trait's best layer, of the dataset's
response minus that of the model's own greedy answer to the same prompt, both teacher-forced
through the (base) model on ``response[:]``. A large positive value means the sample pulls the
model towards the trait, a large negative one away from it; the dataset mean says where the
whole set pushes. Multi-turn samples are screened on their last user turn and last answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from traitscope.activations import Example, capture
from traitscope.finetune.data import Conversation
from traitscope.finetune.vectors import trait_vectors
from traitscope.generation import SamplingConfig, generate_ids
from traitscope.models.loader import LoadedModel


def _projections(lm: LoadedModel, examples: list[Example], site: str, layer: int, v: torch.Tensor) -> torch.Tensor:
    acts = capture(lm, examples, [site], [layer], "response[:]", batch_size=8).acts[site][:, 0]
    return acts.float() @ torch.nn.functional.normalize(v.float(), dim=0)


def screen(
    lm: LoadedModel,
    convs: Sequence[Conversation],
    run_root: Path,
    traits: Sequence[str],
    max_new_tokens: int = 48,
    site: str = "residual",
    method: str = "probe",
) -> dict[str, Any]:
    """Per-sample projection differences, ranked (most trait-inducing first), and the dataset mean."""
    prompts = [lm.prompt_ids(c.prompt, c.system) for c in convs]
    data_resp = [lm.response_ids(c.response) for c in convs]
    own = generate_ids(lm, prompts, SamplingConfig(max_new_tokens=max_new_tokens), batch_size=8)
    own = [o or [lm.eos_ids[0]] for o in own]  # an empty answer still has its end-of-turn token
    result: dict[str, Any] = {"model": lm.name, "n_samples": len(convs), "traits": {}}
    for trait in traits:
        vset, layer = trait_vectors(lm, run_root, trait, site, method)
        p_data = _projections(
            lm, [Example(p, r) for p, r in zip(prompts, data_resp, strict=True)], site, layer, vset[layer]
        )
        p_own = _projections(lm, [Example(p, r) for p, r in zip(prompts, own, strict=True)], site, layer, vset[layer])
        diff = (p_data - p_own).tolist()
        rows = [
            {
                "line": c.line,
                "prompt": c.prompt,
                "response": c.response,
                "own_response": lm.tokenizer.decode(o, skip_special_tokens=True),
                "data_projection": round(float(pd), 4),
                "own_projection": round(float(po), 4),
                "difference": round(d, 4),
            }
            for c, o, pd, po, d in zip(convs, own, p_data, p_own, diff, strict=True)
        ]
        rows.sort(key=lambda r: -r["difference"])
        result["traits"][Path(trait).name] = {
            "layer": layer,
            "mean_difference": round(sum(diff) / len(diff), 4),
            "ranked": rows,
        }
    return result
