"""Steering evaluation: answer a trait's steering questions under each configuration, score
trait and coherence with a judge, and append one line per configuration to
``steering/results.jsonl`` (a re-run skips configurations already there)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from traitscope.generation import SamplingConfig
from traitscope.judges.base import code_fingerprint
from traitscope.models.identity import model_identity
from traitscope.models.loader import LoadedModel
from traitscope.progress import Reporter, Silent
from traitscope.specs import DEFAULT_POSITION
from traitscope.steering.spec import build_terms, check_ratio
from traitscope.steering.sweep import generate_rows
from traitscope.store import RunDir, append_jsonl, locked, read_jsonl
from traitscope.store.runs import load_run_vectors
from traitscope.store.vectors import VectorSet
from traitscope.traits.schema import Trait

DEFAULT_RATIOS = (0.1, 0.2, 0.3, 0.5, 0.8)
DEFAULT_LAYERS = "20%,30%,40%,50%,60%"


@dataclass(frozen=True)
class SteerConfig:
    method: str
    site: str
    layers: tuple[int, ...]
    ratio: float | None = None
    coef: float | None = None
    mode: str = "single"
    baseline: bool = False
    position: str = DEFAULT_POSITION
    scope: str = "all"  # all tokens, or "response": generated tokens only (the prompt is read unsteered)

    def key(self, extra: dict[str, Any]) -> str:
        fields = asdict(self)
        if self.scope == "all":  # rows cached before scopes existed keep their keys
            del fields["scope"]
        blob = json.dumps({**fields, **extra}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def label(self) -> str:
        if self.baseline:
            return "baseline (unsteered)"
        layers = f"L{self.layers[0]}" if len(self.layers) == 1 else f"L[{self.layers[0]}-{self.layers[-1]}] {self.mode}"
        strength = f"ratio {self.ratio:g}" if self.ratio is not None else f"coef {self.coef:g}"
        scope = "" if self.scope == "all" else f" ({self.scope} only)"
        return f"{self.site}/{self.method} {layers} {strength}{scope}"


def grid(
    method: str,
    site: str,
    layers: Sequence[int],
    ratios: Sequence[float],
    mode: str = "single",
    position: str = DEFAULT_POSITION,
) -> list[SteerConfig]:
    """The baseline plus every (layer, ratio) alone (``single``) or all layers together per ratio."""
    base = SteerConfig(method, site, (), baseline=True, position=position)
    if mode == "single":
        return [base] + [SteerConfig(method, site, (la,), ratio=r, position=position) for la in layers for r in ratios]
    return [base] + [SteerConfig(method, site, tuple(layers), ratio=r, mode=mode, position=position) for r in ratios]


def terms_for(config: SteerConfig, vset: VectorSet, sign: float = 1.0, act_norms: dict[int, float] | None = None):
    if config.baseline:
        return []
    terms = build_terms(vset, list(config.layers), config.ratio, config.coef, config.mode, act_norms)
    return [type(t)(t.site, t.layer, t.vector, sign * float(t.coef)) for t in terms]


def evaluate_configs(
    lm: LoadedModel,
    trait: Trait,
    run_dir: Path | RunDir,
    configs: Sequence[SteerConfig],
    judge: Any,
    questions: Sequence[str] | None = None,
    max_new_tokens: int = 48,
    batch_size: int = 32,
    reporter: Reporter = Silent(),
) -> list[dict[str, Any]]:
    """Evaluate every config not already in results.jsonl; returns all rows for ``configs``."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    questions = list(questions or trait.steering_questions)
    extra = {
        "questions": questions,
        "max_new_tokens": max_new_tokens,
        "judge": getattr(judge, "name", str(judge)),
        "judge_code": code_fingerprint(),  # a changed judge never reuses rows it did not score
        "model": model_identity(lm),
    }
    vsets: dict[tuple[str, str, str], VectorSet] = {}
    for c in configs:
        if not c.baseline and _vkey(c) not in vsets:
            vs = load_run_vectors(run, c.site, c.method, c.position)
            vs.check_model(lm.n_layers, lm.hidden_size, lm.site_dim(c.site), lm.name)
            vsets[_vkey(c)] = vs
    # a cached result counts only for the exact vector file it was made with
    keys = {c: c.key({**extra, "vectors": None if c.baseline else vsets[_vkey(c)].file_id}) for c in configs}
    with locked(run.root):
        done = {r["config"]["id"]: r for r in read_jsonl(run.steering_results)}
        todo = [c for c in configs if keys[c] not in done]
        _generate_and_score(
            lm, trait, run, todo, keys, vsets, judge, questions, extra, max_new_tokens, batch_size, reporter, done
        )
    rows = [done[keys[c]] for c in configs]
    base = next((r for r in rows if r["config"]["baseline"]), None)
    for r in rows:
        r["delta"] = (
            None
            if base is None or r["trait_mean"] is None or base["trait_mean"] is None
            else r["trait_mean"] - base["trait_mean"]
        )
    return rows


def _vkey(c: SteerConfig) -> tuple[str, str, str]:
    return (c.position, c.site, c.method)


def _generate_and_score(
    lm: LoadedModel,
    trait: Trait,
    run: RunDir,
    todo: Sequence[SteerConfig],
    keys: dict[SteerConfig, str],
    vsets: dict[tuple[str, str, str], VectorSet],
    judge: Any,
    questions: list[str],
    extra: dict[str, Any],
    max_new_tokens: int,
    batch_size: int,
    reporter: Reporter,
    done: dict[str, dict[str, Any]],
) -> None:
    sign = trait.steering_sign
    prompt_ids = [lm.prompt_ids(q) for q in questions]
    advance = reporter.stage("steered answers", len(todo) * len(prompt_ids))
    todo = sorted(todo, key=lambda c: c.scope)  # one batched generate call per steering scope
    answers: list[str] = []
    for scope in dict.fromkeys(c.scope for c in todo):
        rows_in = [(p, terms_for(c, vsets.get(_vkey(c)), sign)) for c in todo if c.scope == scope for p in prompt_ids]  # type: ignore[arg-type]
        answers += generate_rows(lm, rows_in, SamplingConfig(max_new_tokens=max_new_tokens), batch_size, scope, advance)
    # score and append config by config, so an interruption keeps what was finished
    for i, c in enumerate(todo):
        ans = answers[i * len(questions) : (i + 1) * len(questions)]
        pairs = list(zip(questions, ans, strict=True))
        t_scores = judge.score_trait(trait, pairs)
        c_scores = judge.score_coherence(pairs)
        vset = vsets.get(_vkey(c))
        coefs = {str(t.layer): float(t.coef) for t in terms_for(c, vset, sign)} if vset else {}
        row = {
            "config": {**asdict(c), "layers": list(c.layers), "id": keys[c], "coefs": coefs, "label": c.label()},
            "vectors": None if vset is None else {"file": str(vset.source), "sha": vset.file_id},
            "judge": extra["judge"],
            "judge_code": extra["judge_code"],
            "model": lm.name,
            "trait_mean": _mean([s.value for s in t_scores]),
            "coherence_mean": _mean([s.value for s in c_scores]),
            "n": len(pairs),
            "n_scored": sum(s.value is not None for s in t_scores),
            "answers": [
                {"question": q, "answer": a, "trait": ts.value, "trait_reason": ts.reason, "coherence": cs.value}
                for (q, a), ts, cs in zip(pairs, t_scores, c_scores, strict=True)
            ],
        }
        append_jsonl(run.steering_results, [row])
        done[row["config"]["id"]] = row


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def best_config(rows: Sequence[dict[str, Any]], floor: float = 75.0) -> dict[str, Any] | None:
    """The steered configuration with the largest delta whose mean coherence is >= ``floor``."""
    ok = [
        r
        for r in rows
        if not r["config"]["baseline"] and r["delta"] is not None and (r["coherence_mean"] or 0) >= floor
    ]
    return max(ok, key=lambda r: r["delta"]) if ok else None


def search_ratios(
    lm: LoadedModel,
    trait: Trait,
    run_dir: Path,
    method: str,
    site: str,
    layers: Sequence[int],
    judge: Any,
    start: float = 0.25,
    steps: int = 4,
    factor: float = 1.6,
    floor: float = 75.0,
    position: str = DEFAULT_POSITION,
    **kw: Any,
) -> list[dict[str, Any]]:
    """Per layer: start at ``start``; move up by ``factor`` while coherence stays >= ``floor``,
    down when it falls below. All layers advance together, one batched call per step; every
    evaluated point is kept (results.jsonl)."""
    check_ratio(start)
    ratios = dict.fromkeys(layers, start)
    factors = dict.fromkeys(layers, factor)
    baseline = SteerConfig(method, site, (), baseline=True, position=position)
    rows = evaluate_configs(lm, trait, run_dir, [baseline], judge, **kw)
    for _ in range(steps):
        configs = [
            SteerConfig(method, site, (layer,), ratio=round(ratios[layer], 4), position=position) for layer in layers
        ]
        new = evaluate_configs(lm, trait, run_dir, [baseline, *configs], judge, **kw)[1:]
        rows.extend(new)
        for layer, r in zip(layers, new, strict=True):
            if (r["coherence_mean"] or 0) >= floor:
                ratios[layer] *= factors[layer]
            else:  # overshot: come back down with a smaller step from now on
                factors[layer] = factors[layer] ** 0.5
                ratios[layer] /= factors[layer]
    return rows
