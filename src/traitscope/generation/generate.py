"""Batched generation from token ids: left-padded, greedy or seeded sampling, trimmed at EOS."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from traitscope.errors import TraitscopeError
from traitscope.models.loader import LoadedModel


@dataclass(frozen=True)
class SamplingConfig:
    max_new_tokens: int = 48
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0
    repetition_penalty: float = 1.0

    def validate(self) -> SamplingConfig:
        if not 1 <= self.max_new_tokens <= 4096:
            raise TraitscopeError(f"max_new_tokens {self.max_new_tokens} must be in 1-4096")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise TraitscopeError("temperature must be >= 0 and top_p in (0, 1]")
        return self


def trim_at_eos(tokens: list[int], eos_ids: Sequence[int]) -> list[int]:
    for i, t in enumerate(tokens):
        if t in eos_ids:
            return tokens[:i]
    return tokens


def generate_ids(
    lm: LoadedModel,
    prompts: Sequence[Sequence[int]],
    config: SamplingConfig = SamplingConfig(),
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
) -> list[list[int]]:
    """Generate a response (token ids, EOS excluded) for each prompt, in batches.

    Each batch is seeded with ``seed + batch start``, so a resumed run reproduces the same samples.
    """
    results: list[list[int]] = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        ids, mask = lm.left_pad(batch)
        torch.manual_seed(config.seed + start)
        kwargs: dict = dict(
            max_new_tokens=config.max_new_tokens,
            pad_token_id=lm.pad_id,
            eos_token_id=lm.eos_ids,
            repetition_penalty=config.repetition_penalty,
        )
        if config.temperature > 0:
            kwargs.update(do_sample=True, temperature=config.temperature, top_p=config.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            out = lm.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
        for row in out[:, ids.shape[1] :].tolist():
            results.append(trim_at_eos(row, lm.eos_ids))
        if on_batch:
            on_batch(len(batch))
    return results


def complete(
    lm: LoadedModel, prompt: str, system: str | None = None, max_new_tokens: int = 32, raw: bool = False
) -> str:
    """One greedy answer to one prompt, as text."""
    ids = generate_ids(lm, [lm.prompt_ids(prompt, system, raw)], SamplingConfig(max_new_tokens=max_new_tokens))[0]
    return lm.tokenizer.decode(ids, skip_special_tokens=True)
