"""The extraction pipeline: trait scenarios -> rollouts -> activations -> vectors -> validation.

Each stage writes its own files in the run directory and skips work already on disk, so an
interrupted ``extract`` resumes (see ``store.layout`` for the layout)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from traitscope.activations import format_layers, parse_layers, parse_position
from traitscope.errors import TraitscopeError
from traitscope.evaluation import best_rows, evaluate, kfold
from traitscope.extraction.activations import capture_to_disk
from traitscope.extraction.progress import Reporter, Silent
from traitscope.extraction.rollouts import run_rollouts
from traitscope.generation import SamplingConfig
from traitscope.methods import DEFAULT_METHODS, METHODS
from traitscope.models.loader import LoadedModel
from traitscope.models.registry import DEFAULT_MODEL
from traitscope.models.sites import check_site
from traitscope.store import (
    Provenance,
    RunDir,
    VectorSet,
    atomic_write_json,
    atomic_write_text,
    read_jsonl,
    save_vectors,
)
from traitscope.traits.schema import Scenario, Trait

DEFAULT_SITES = ("residual", "attn_out", "mlp_out", "v")

# Decides which rollouts to keep: returns (keep, score-or-None) per row. Judges plug in here.
Vetter = Callable[[Trait, Sequence[dict[str, Any]]], list[tuple[bool, float | None]]]


@dataclass
class ExtractConfig:
    model: str = DEFAULT_MODEL
    layers: str = "all"
    sites: tuple[str, ...] = DEFAULT_SITES
    methods: tuple[str, ...] = DEFAULT_METHODS
    position: str = "response[:]"
    max_new_tokens: int = 32
    temperature: float = 0.0
    seed: int = 0
    batch_size: int = 16
    folds: int = 5
    stratify_tag: str | None = None
    limit: int | None = None  # scenarios per polarity (first N in file order)
    n_random: int = 200
    vet: str = "none"

    def validate(self, n_layers: int | None = None) -> None:
        """Check everything that needs no model; with ``n_layers``, the layer spec too."""
        for s in self.sites:
            check_site(s)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise TraitscopeError(f"unknown method {unknown[0]!r}; valid: {', '.join(METHODS)}")
        if not self.sites or not self.methods:
            raise TraitscopeError("need at least one site and one method")
        parse_position(self.position)
        if self.max_new_tokens < 1 or self.batch_size < 1 or self.folds < 2:
            raise TraitscopeError("max_new_tokens and batch_size must be >= 1 and folds >= 2")
        if self.limit is not None and self.limit < 4:
            raise TraitscopeError(f"limit {self.limit} is too small; each class needs at least 4 scenarios")
        if n_layers is not None:
            parse_layers(self.layers, n_layers)

    def rollout_key(self) -> dict[str, Any]:
        """The settings rollouts depend on: if these change, old rollouts cannot be reused."""
        return {k: getattr(self, k) for k in ("model", "max_new_tokens", "temperature", "seed", "limit")} | {
            "generate": parse_position(self.position).needs_response
        }


@dataclass
class ExtractResult:
    run_dir: Path
    rows: list[dict[str, Any]]
    best: dict[str, dict[str, Any]]
    n_rollouts: int
    n_kept: int
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)


def select_scenarios(trait: Trait, limit: int | None) -> list[Scenario]:
    if limit is None:
        return list(trait.scenarios)
    out, seen = [], {"positive": 0, "negative": 0}
    for s in trait.scenarios:
        if seen[s.polarity] < limit:
            out.append(s)
            seen[s.polarity] += 1
    return out


def _check_config(run: RunDir, config: ExtractConfig, trait: Trait) -> None:
    """Record the settings; refuse to mix in rollouts made with other settings."""
    previous = None
    if run.config.exists():
        try:
            previous = json.loads(run.config.read_text())
        except ValueError:
            previous = None
    if previous and previous.get("rollout_key") != config.rollout_key() and run.rollouts.exists():
        raise TraitscopeError(
            f"{run.root} holds rollouts made with other settings ({previous.get('rollout_key')}); "
            "pass --fresh to redo them or --out for a new run directory"
        )
    atomic_write_json(
        run.config,
        {
            "trait": trait.name,
            "trait_path": str(trait.path),
            "config": asdict(config),
            "rollout_key": config.rollout_key(),
        },
    )


def extract(
    lm: LoadedModel,
    trait: Trait,
    run_dir: Path,
    config: ExtractConfig = ExtractConfig(),
    reporter: Reporter = Silent(),
    vetter: Vetter | None = None,
    fresh: bool = False,
) -> ExtractResult:
    """Run the whole pipeline for one trait on one model; returns the evaluation rows."""
    t0 = time.perf_counter()
    stage_seconds: dict[str, float] = {}
    config.validate(lm.n_layers)
    layers = parse_layers(config.layers, lm.n_layers)
    position = parse_position(config.position)
    run = RunDir(Path(run_dir))
    if fresh and run.root.exists():
        shutil.rmtree(run.root)
    run.root.mkdir(parents=True, exist_ok=True)
    _check_config(run, config, trait)

    scenarios = select_scenarios(trait, config.limit)
    sampling = SamplingConfig(max_new_tokens=config.max_new_tokens, temperature=config.temperature, seed=config.seed)
    t = time.perf_counter()
    rows = run_rollouts(
        lm, trait, scenarios, run.rollouts, sampling, position.needs_response, config.batch_size, reporter
    )
    stage_seconds["rollouts"] = time.perf_counter() - t

    kept = _vet(rows, trait, position.needs_response, vetter, run, reporter)
    if min(sum(r["polarity"] == p for r in kept) for p in ("positive", "negative")) < 4:
        raise TraitscopeError(
            f"only {len(kept)} rollouts survived vetting ({sum(r['polarity'] == 'positive' for r in kept)} positive); "
            "each class needs at least 4 — check the scenarios or turn vetting off"
        )

    t = time.perf_counter()
    captured = capture_to_disk(
        lm,
        kept,
        config.sites,
        layers,
        position,
        run.activations(position.slug),
        config.batch_size,
        shard_rows=config.batch_size * 4,
        reporter=reporter,
    )
    stage_seconds["activations"] = time.perf_counter() - t

    y = torch.tensor([1 if r["polarity"] == "positive" else 0 for r in kept])
    groups = [r["pair"] or r["id"] for r in kept]
    pairs = [r["pair"] for r in kept]
    strata = [r["tags"].get(config.stratify_tag, "") for r in kept] if config.stratify_tag else None
    splits = kfold(y.tolist(), groups, config.folds, config.seed, strata)

    t = time.perf_counter()
    eval_rows: list[dict[str, Any]] = []
    advance = reporter.stage("vectors + validation", len(config.sites) * len(config.methods))
    for site in config.sites:
        X = captured.acts[site]
        site_rows = evaluate(
            X, y, splits, config.methods, layers, config.seed, pairs, config.n_random, on_step=lambda _: advance(1)
        )
        for r in site_rows:
            r["site"] = site
        eval_rows.extend(site_rows)
        act_norms = captured.norms[site].mean(0)  # mean token norm per layer, for perturbation ratios
        by_method = {m: [r for r in site_rows if r["method"] == m] for m in config.methods}
        for method in config.methods:
            fit = METHODS[method](X, y, seed=config.seed, pairs=pairs)
            prov = Provenance(
                trait=trait.name,
                method=method,
                site=site,
                position=str(position),
                model=lm.name,
                model_type=lm.model_type,
                n_layers=lm.n_layers,
                hidden_size=lm.hidden_size,
                dim=int(X.shape[2]),
                layers=list(layers),
                act_norms={str(layer): float(act_norms[j]) for j, layer in enumerate(layers)},
                extras={
                    str(layer): {
                        **fit.extras[j],
                        "effect_size": by_method[method][j]["effect_size"],
                        "auroc": by_method[method][j]["auroc"],
                    }
                    for j, layer in enumerate(layers)
                },
            )
            vectors = {layer: fit.vectors[j] for j, layer in enumerate(layers)}
            save_vectors(run.vector_file(position.slug, site, method), VectorSet(vectors, prov))
    stage_seconds["vectors+validation"] = time.perf_counter() - t

    best = best_rows(eval_rows)
    atomic_write_json(
        run.evaluation,
        {
            "trait": trait.name,
            "model": lm.name,
            "position": str(position),
            "layers": format_layers(layers),
            "n": len(kept),
            "n_positive": int(y.sum()),
            "folds": len(splits),
            "config": asdict(config),
            "results": eval_rows,
            "best": best,
        },
    )
    return ExtractResult(run.root, eval_rows, best, len(rows), len(kept), time.perf_counter() - t0, stage_seconds)


def _vet(
    rows: list[dict[str, Any]],
    trait: Trait,
    needs_response: bool,
    vetter: Vetter | None,
    run: RunDir,
    reporter: Reporter,
) -> list[dict[str, Any]]:
    """Drop rollouts with an empty response (nothing to average over) and, with a vetter, those
    that do not show their polarity. Decisions are written back into rollouts.jsonl."""
    changed = False
    if needs_response:
        for r in rows:
            if not r["response_ids"] and r.get("kept", True):
                r["kept"], r["vet_reason"] = False, "empty response"
                changed = True
    if vetter is not None:
        todo = [r for r in rows if r.get("kept", True) and "vet_score" not in r]
        for r, (keep, score) in zip(todo, vetter(trait, todo), strict=True):
            r["vet_score"] = score
            if not keep:
                r["kept"], r["vet_reason"] = False, "judge: does not show its polarity"
            changed = True
    if changed:
        atomic_write_text(run.rollouts, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    kept = [r for r in rows if r.get("kept", True)]
    if len(kept) < len(rows):
        reporter.note(f"vetting kept {len(kept)} of {len(rows)} rollouts")
    return kept


def load_evaluation(run_dir: Path) -> dict[str, Any]:
    path = RunDir(Path(run_dir)).evaluation
    if not path.exists():
        raise TraitscopeError(f"{run_dir}: no evaluation.json; run `traitscope extract` first")
    return json.loads(path.read_text())


def read_rollouts(run_dir: Path) -> list[dict[str, Any]]:
    return read_jsonl(RunDir(Path(run_dir)).rollouts)
