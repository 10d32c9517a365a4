"""Rollouts: the model's own continuation of every scenario, appended to ``rollouts.jsonl`` in
fixed batches so an interrupted run resumes with exactly the batches (and samples) it would
have produced. Each row carries its scenario's fingerprint: a row whose scenario changed (text,
system prompt, polarity, template) or left the trait is dropped and that scenario regenerated."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from traitscope.generation import SamplingConfig, generate_ids
from traitscope.models.loader import LoadedModel
from traitscope.progress import Reporter, Silent
from traitscope.store import append_jsonl, atomic_write_text, read_jsonl
from traitscope.traits.schema import Scenario, Trait


def _row(s: Scenario, prompt_ids: list[int], response_ids: list[int], lm: LoadedModel, raw: bool) -> dict[str, Any]:
    return {
        "id": s.id,
        "scenario": s.fingerprint(raw),
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
    done = _reusable(path, scenarios, trait.raw, reporter)
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
        rows = [
            _row(s, p, r, lm, trait.raw) for s, p, r in zip(batch, prompts, responses, strict=True) if s.id not in done
        ]
        append_jsonl(path, rows)
        done.update({r["id"]: r for r in rows})
        advance(len(rows))
    return [done[s.id] for s in scenarios]


def _reusable(path: Path, scenarios: Sequence[Scenario], raw: bool, reporter: Reporter) -> dict[str, dict[str, Any]]:
    """Rows on disk whose scenario is unchanged; the file is rewritten without the others."""
    rows = read_jsonl(path)
    want = {s.id: s.fingerprint(raw) for s in scenarios}
    keep = {r["id"]: r for r in rows if want.get(r.get("id")) == r.get("scenario")}
    if len(keep) < len(rows):
        reporter.note(f"{len(rows) - len(keep)} rollouts belong to changed or removed scenarios; regenerating those")
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep.values()))
    return keep
