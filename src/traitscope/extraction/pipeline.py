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
from traitscope.extraction.rollouts import run_rollouts
from traitscope.generation import SamplingConfig
from traitscope.methods import DEFAULT_METHODS, METHODS
from traitscope.models.identity import model_identity
from traitscope.models.loader import LoadedModel
from traitscope.models.registry import DEFAULT_MODEL
from traitscope.models.sites import check_site
from traitscope.progress import Reporter, Silent
from traitscope.store import (
    Provenance,
    RunDir,
    VectorSet,
    atomic_write_json,
    atomic_write_text,
    save_vectors,
)
from traitscope.store.lock import locked
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

    def validate(self, n_layers: int | None = None, trait: Trait | None = None) -> None:
        """Check everything that needs no model; with ``n_layers``, the layer spec too; with
        ``trait``, that the stratification tag exists."""
        if trait is not None and self.stratify_tag and self.stratify_tag not in trait.tag_names():
            raise TraitscopeError(
                f"--stratify-tag {self.stratify_tag!r}: trait {trait.name} has tags {trait.tag_names()}"
            )
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
        return {k: getattr(self, k) for k in ("max_new_tokens", "temperature", "seed", "limit")} | {
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

    def summary(self, trait: str, model: str, vetted_by: str | None = None) -> dict[str, Any]:
        """What ``extract --json`` prints: counts and the best layer per site/method."""
        keys = ("layer", "auroc", "auroc_sd", "accuracy", "effect_size", "polarity_correct", "random_auroc_p95")
        return {
            "trait": trait,
            "model": model,
            "run_dir": str(self.run_dir),
            "rollouts": self.n_rollouts,
            "kept": self.n_kept,
            "vetted_by": vetted_by,
            "seconds": round(self.seconds, 1),
            "best": {k: {m: v[m] for m in keys} for k, v in self.best.items()},
        }


def select_scenarios(trait: Trait, limit: int | None) -> list[Scenario]:
    if limit is None:
        return list(trait.scenarios)
    out, seen = [], {"positive": 0, "negative": 0}
    for s in trait.scenarios:
        if seen[s.polarity] < limit:
            out.append(s)
            seen[s.polarity] += 1
    return out


def run_fingerprint(lm: LoadedModel, trait: Trait, config: ExtractConfig) -> dict[str, Any]:
    """Everything a run's results depend on: model identity, trait files, settings."""
    return {"model": model_identity(lm), "trait": trait.fingerprint(), "settings": config.rollout_key()}


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    for part in ("model", "settings"):
        a, b = old.get(part) or {}, new.get(part) or {}
        keys = sorted((set(a) | set(b)) - {"name"})  # the same weights under another name are the same model
        out += [f"{part} {k} {a.get(k)!r} -> {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]
    return out


def _check_config(run: RunDir, config: ExtractConfig, trait: Trait, fingerprint: dict[str, Any]) -> None:
    """Record the settings and fingerprint; refuse to mix in results made with another model or
    other settings. A changed trait file is fine: rollouts are matched per scenario hash."""
    previous = None
    if run.config.exists():
        try:
            previous = json.loads(run.config.read_text())
            previous["fingerprint"]  # noqa: B018  (an old or foreign config.json is as bad as a corrupt one)
        except (ValueError, KeyError, TypeError):
            raise TraitscopeError(
                f"{run.config} is corrupt or from an older traitscope; pass --force to start this run over "
                "or --out for a new run directory"
            ) from None
    if previous and run.rollouts.exists() and (diff := _differences(previous["fingerprint"], fingerprint)):
        raise TraitscopeError(
            f"{run.root} holds results made with different inputs ({'; '.join(diff)}); "
            "pass --force to redo them or --out for a new run directory"
        )
    atomic_write_json(
        run.config,
        {"trait": trait.name, "trait_path": str(trait.path), "config": asdict(config), "fingerprint": fingerprint},
    )


def extract(
    lm: LoadedModel,
    trait: Trait,
    run_dir: Path | RunDir,
    config: ExtractConfig = ExtractConfig(),
    reporter: Reporter = Silent(),
    vetter: Vetter | None = None,
    force: bool = False,
) -> ExtractResult:
    """Run the whole pipeline for one trait on one model; returns the evaluation rows.

    Resumes from what ``run_dir`` holds when it was made from the same inputs; a changed scenario
    is regenerated alone; another model or other settings stop with one line (``force`` starts over).
    The run directory is locked while this runs."""
    config.validate(lm.n_layers)
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    with locked(run.root):
        if force:
            _clear(run)
        return _extract_locked(lm, trait, run, config, reporter, vetter)


def _clear(run: RunDir) -> None:
    for child in run.root.iterdir():
        if child.name.startswith(".lock"):
            continue
        shutil.rmtree(child) if child.is_dir() else child.unlink()


def _extract_locked(
    lm: LoadedModel, trait: Trait, run: RunDir, config: ExtractConfig, reporter: Reporter, vetter: Vetter | None
) -> ExtractResult:
    t0 = time.perf_counter()
    stage_seconds: dict[str, float] = {}
    layers = parse_layers(config.layers, lm.n_layers)
    position = parse_position(config.position)
    fingerprint = run_fingerprint(lm, trait, config)
    _check_config(run, config, trait, fingerprint)

    scenarios = select_scenarios(trait, config.limit)
    sampling = SamplingConfig(max_new_tokens=config.max_new_tokens, temperature=config.temperature, seed=config.seed)
    t = time.perf_counter()
    rows = run_rollouts(
        lm, trait, scenarios, run.rollouts, sampling, position.needs_response, config.batch_size, reporter
    )
    stage_seconds["rollouts"] = time.perf_counter() - t

    kept = _vet(rows, trait, position.needs_response, vetter, config.vet, run, reporter)
    if min(sum(r["polarity"] == p for r in kept) for p in ("positive", "negative")) < 4:
        raise TraitscopeError(
            f"only {len(kept)} rollouts survived vetting ({sum(r['polarity'] == 'positive' for r in kept)} positive); "
            "each class needs at least 4 — check the scenarios or turn vetting off"
        )

    t = time.perf_counter()
    captured = capture_to_disk(
        lm, kept, config.sites, layers, position, run.activations(position), config.batch_size,
        shard_rows=config.batch_size * 4, reporter=reporter,
    )  # fmt: skip
    stage_seconds["activations"] = time.perf_counter() - t

    t = time.perf_counter()
    eval_rows, n_folds = _fit_and_validate(lm, trait, run, config, kept, captured, fingerprint, reporter)
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
            "n_positive": sum(r["polarity"] == "positive" for r in kept),
            "folds": n_folds,
            "config": asdict(config),
            "fingerprint": fingerprint,
            "results": eval_rows,
            "best": best,
        },
    )
    return ExtractResult(run.root, eval_rows, best, len(rows), len(kept), time.perf_counter() - t0, stage_seconds)


def _fit_and_validate(
    lm: LoadedModel,
    trait: Trait,
    run: RunDir,
    config: ExtractConfig,
    kept: list[dict[str, Any]],
    captured: Any,
    fingerprint: dict[str, Any],
    reporter: Reporter,
) -> tuple[list[dict[str, Any]], int]:
    """k-fold metrics for every site x method x layer, then vectors fitted on all kept rows."""
    layers, position = captured.layers, parse_position(config.position)
    y = torch.tensor([1 if r["polarity"] == "positive" else 0 for r in kept])
    groups = [r["pair"] or r["id"] for r in kept]
    pairs = [r["pair"] for r in kept]
    strata = [r["tags"].get(config.stratify_tag, "") for r in kept] if config.stratify_tag else None
    splits = kfold(y.tolist(), groups, config.folds, config.seed, strata)
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
        for method in config.methods:
            fit = METHODS[method](X, y, seed=config.seed, pairs=pairs)
            rows_m = [r for r in site_rows if r["method"] == method]
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
                    str(layer): {**fit.extras[j], "effect_size": rows_m[j]["effect_size"], "auroc": rows_m[j]["auroc"]}
                    for j, layer in enumerate(layers)
                },
                fingerprint=fingerprint,
            )
            vectors = {layer: fit.vectors[j] for j, layer in enumerate(layers)}
            save_vectors(run.vector_file(position, site, method), VectorSet(vectors, prov))
    return eval_rows, len(splits)


def _vet(
    rows: list[dict[str, Any]],
    trait: Trait,
    needs_response: bool,
    vetter: Vetter | None,
    vet_name: str,
    run: RunDir,
    reporter: Reporter,
) -> list[dict[str, Any]]:
    """Decide ``kept`` for every row afresh: an empty response has nothing to average over; with a
    vetter, a row is dropped when the judge says it shows the opposite polarity. A score from another
    judge, or a missing score (the judge failed), is asked again; without a vetter nothing stays
    dropped from an earlier vetted run. Decisions are written back into rollouts.jsonl."""
    if vetter is not None:
        todo = [
            r
            for r in rows
            if (r["response_ids"] or not needs_response)
            and (r.get("vet_judge") != vet_name or r.get("vet_score") is None)
        ]
        if todo:
            for r, (keep, score) in zip(todo, vetter(trait, todo), strict=True):
                r.update(vet_judge=vet_name, vet_score=score, vet_keep=bool(keep))
    before = [(r.get("kept"), r.get("vet_reason")) for r in rows]
    for r in rows:
        reason = None
        if needs_response and not r["response_ids"]:
            reason = "empty response"
        elif vetter is not None and not r.get("vet_keep", True):
            reason = f"judge {vet_name}: does not show its polarity"
        r["kept"], r["vet_reason"] = reason is None, reason
    if vetter is not None or before != [(r.get("kept"), r.get("vet_reason")) for r in rows]:
        atomic_write_text(run.rollouts, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    kept = [r for r in rows if r["kept"]]
    if len(kept) < len(rows):
        reporter.note(f"kept {len(kept)} of {len(rows)} rollouts")
    return kept
