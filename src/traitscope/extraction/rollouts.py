"""Rollouts: the model's own continuation of every scenario, appended to ``rollouts.jsonl`` in
fixed batches so an interrupted run resumes with exactly the batches (and samples) it would
have produced."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from traitscope.errors import TraitscopeError
from traitscope.extraction.progress import Reporter, Silent
from traitscope.generation import SamplingConfig, generate_ids
from traitscope.models.loader import LoadedModel
from traitscope.store import append_jsonl, read_jsonl
from traitscope.traits.schema import Scenario, Trait


def _row(s: Scenario, prompt_ids: list[int], response_ids: list[int], lm: LoadedModel) -> dict[str, Any]:
    return {
        "id": s.id,
        "polarity": s.polarity,
        "pair": s.pair,
        "tags": s.tags,
        "system": s.system,
        "prompt": s.prompt,
        "response": lm.tokenizer.decode(response_ids, skip_special_tokens=True),
        "prompt_ids": prompt_ids,
        "response_ids": response_ids,
        "kept": True,
    }


def run_rollouts(
    lm: LoadedModel,
    trait: Trait,
    scenarios: Sequence[Scenario],
    path: Path,
    sampling: SamplingConfig,
    generate: bool = True,
    batch_size: int = 16,
    reporter: Reporter = Silent(),
) -> list[dict[str, Any]]:
    """Generate (or, for prompt-only positions, just tokenise) every scenario; resume from ``path``."""
    done = {r["id"]: r for r in read_jsonl(path)}
    known = {s.id for s in scenarios}
    stray = [i for i in done if i not in known]
    if stray:
        raise TraitscopeError(
            f"{path} holds rollouts for scenarios not in this trait selection (e.g. {stray[0]!r}); "
            "use another --out or --fresh"
        )
    advance = reporter.stage("rollouts" if generate else "tokenising prompts", len(scenarios))
    advance(len(done))
    for start in range(0, len(scenarios), batch_size):
        batch = list(scenarios[start : start + batch_size])
        if all(s.id in done for s in batch):
            continue
        prompts = [lm.prompt_ids(s.prompt, s.system, raw=trait.raw) for s in batch]
        if generate:
            # the seed follows the batch's position, so a resumed batch samples as it would have
            cfg = SamplingConfig(**{**sampling.__dict__, "seed": sampling.seed + start})
            responses = generate_ids(lm, prompts, cfg, batch_size=len(batch))
        else:
            responses = [[] for _ in batch]
        rows = [_row(s, p, r, lm) for s, p, r in zip(batch, prompts, responses, strict=True) if s.id not in done]
        append_jsonl(path, rows)
        done.update({r["id"]: r for r in rows})
        advance(len(rows))
    return [done[s.id] for s in scenarios]
