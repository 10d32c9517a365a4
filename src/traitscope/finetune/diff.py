"""Base vs finetuned, token by token, on the same tokens: the finetuned model answers a prompt
(monitored), then that very answer is teacher-forced through the base model with the same
vector bank, so every difference comes from the weights, none from the text.

The diff trace (``<id>.diff.json`` beside the monitor's ``<id>.json``) holds both models' monitor
traces (the schema of :mod:`traitscope.monitor.trace`) plus ``delta[trait][layer]`` (finetuned
minus base, per token) and the mean delta over the response per trait/layer.
"""

from __future__ import annotations

from typing import Any

from traitscope.generation import SamplingConfig
from traitscope.models.loader import LoadedModel
from traitscope.monitor import VectorBank
from traitscope.monitor.engine import build_trace, forced_monitored, generate_monitored, prompt_token_ids
from traitscope.monitor.trace import _r, now_iso
from traitscope.prompts import Prompt

SCHEMA = "traitscope.diff/1"


def _delta(ft: dict[str, Any], base: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    return {
        trait: {
            layer: _r([f - b for f, b in zip(vals, base["projections"][trait][layer], strict=True)])
            for layer, vals in by_layer.items()
        }
        for trait, by_layer in ft["projections"].items()
    }


def diff_trace(
    base: LoadedModel,
    tuned: LoadedModel,
    bank: VectorBank,
    prompt: Prompt,
    cfg: SamplingConfig = SamplingConfig(),
    prompt_set: str = "adhoc",
) -> dict[str, Any]:
    """The finetuned model's answer (or the prompt's given ``response``) read by both models."""
    bank.check_dim(base)
    row = prompt_token_ids(tuned, prompt)
    if prompt.response is not None:
        mon_ft = forced_monitored(tuned, row, tuned.response_ids(prompt.response), bank)
    else:
        (mon_ft,) = generate_monitored(tuned, [row], bank, cfg)
    mon_base = forced_monitored(base, mon_ft.prompt_ids, mon_ft.response_ids, bank)
    ft = build_trace(tuned, bank, prompt, mon_ft, prompt_set, cfg)
    bt = build_trace(base, bank, prompt, mon_base, prompt_set)
    delta = _delta(ft, bt)
    boundary = ft["boundary"]
    means = {
        t: {layer: _r([sum(v[boundary:]) / max(len(v) - boundary, 1)])[0] for layer, v in by_layer.items()}
        for t, by_layer in delta.items()
    }
    return {
        "schema": SCHEMA,
        "id": prompt.id,
        "prompt_set": prompt_set,
        "prompt": prompt.text,
        "response": ft["response"],
        "model": base.name,
        "adapter": tuned.extra.get("adapter"),
        "site": bank.site,
        "layers": bank.layers,
        "tokens": ft["tokens"],
        "boundary": boundary,
        "finetuned": ft,
        "base": bt,
        "delta": delta,
        "mean_delta_response": means,
        "created": now_iso(),
    }
