"""Shared pieces of ``reproduce steering``: the profile (how much work), the context every
experiment runs in, resumable extraction runs, and steering evaluation rows reduced to numbers."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traitscope.activations import format_layers
from traitscope.extraction import ExtractConfig, extract, load_evaluation
from traitscope.models.loader import LoadedModel
from traitscope.progress import Reporter, Silent
from traitscope.reproduce.profiles import balanced_subset
from traitscope.reproduce.steering_verdict import REFUSAL_SCORE
from traitscope.steering.evaluate import SteerConfig, evaluate_configs
from traitscope.traits import load_trait
from traitscope.traits.schema import Trait

POSITION = "response[:]"  # the log's vectors are means over the model's own response


@dataclass(frozen=True)
class SteeringProfile:
    """Sizes of every experiment. Layers are relative depths (0 = first block, 1 = last).

    Findings 2-4, 6 and 7 steer at multiples of the model's *working ratio*: the median best
    coherent ratio of the finding-1 sweep (the log's practical rule, "calibrate a target ratio, then
    coef = ratio·‖h‖/‖v‖"). A 135M model breaks at far smaller ratios than gemma-2-2b, so fixed
    ratios taken from the log would test these findings only with broken answers."""

    name: str
    pairs: int | None  # minimal pairs per trait for extraction (None = all)
    rollout_tokens: int
    folds: int
    n_random: int
    questions: int  # steering questions per configuration (optimism)
    answer_tokens: int
    sweep_depths: tuple[float, ...]  # 1: ratio sweep layers
    sweep_ratios: tuple[float, ...]
    scan_step: int  # 3/4: every k-th layer gets the layer scan
    scan_factors: tuple[float, ...]  # x working ratio
    multi_factors: tuple[float, ...]  # 2: total ratio split over a layer range, x working ratio
    refusal_sites: tuple[str, ...]
    refusal_depths: tuple[float, ...]  # 6: layers searched for the jailbreak configuration
    refusal_factors: tuple[float, ...]  # x working ratio
    monitor_tokens: int  # 5: response tokens per monitored prompt
    cross_factors: tuple[float, ...]  # 7, x working ratio
    neutral_cap: int | None  # texts behind the cross-model ridge map
    fallback_ratio: float = 0.6  # the log's target ratio, when no sweep point raised the trait coherently
    batch_size: int = 64
    seed: int = 0

    def describe(self) -> str:
        pairs = (
            "all scenarios" if self.pairs is None else f"≤ {self.pairs} minimal pairs per trait (balanced over tags)"
        )

        def xs(factors: tuple[float, ...]) -> str:
            return ", ".join(f"{f:g}×" for f in factors)

        return (
            f"extraction at `{POSITION}` on greedy {self.rollout_tokens}-token rollouts, {pairs}, every layer, "
            f"{self.folds}-fold CV; {self.questions} steering questions × {self.answer_tokens}-token greedy answers "
            f"per configuration; ratio sweep {len(self.sweep_depths)} layers × {len(self.sweep_ratios)} ratios; layer "
            f"scan every {self.scan_step} layer(s) at {xs(self.scan_factors)} the working ratio; multi-layer totals "
            f"{xs(self.multi_factors)}; refusal search {xs(self.refusal_factors)}; cross-model "
            f"{xs(self.cross_factors)}; {self.monitor_tokens}-token monitored answers; "
            + ("all neutral texts" if self.neutral_cap is None else f"≤ {self.neutral_cap} neutral texts")
            + " for the cross-model map"
        )


QUICK = SteeringProfile(
    name="quick",
    pairs=40,
    rollout_tokens=24,
    folds=5,
    n_random=30,
    questions=6,
    answer_tokens=32,
    sweep_depths=(0.2, 0.4, 0.6, 0.8),
    sweep_ratios=(0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.6),
    scan_step=3,
    scan_factors=(1.0, 2.0),
    multi_factors=(1.0, 2.0, 3.0),
    refusal_sites=("residual",),
    refusal_depths=(0.2, 0.33, 0.45),
    refusal_factors=(1.0, 2.0, 4.0),
    monitor_tokens=40,
    cross_factors=(1.0, 2.0),
    neutral_cap=240,
)
FULL = SteeringProfile(
    name="full",
    pairs=None,
    rollout_tokens=32,
    folds=5,
    n_random=200,
    questions=18,
    answer_tokens=48,
    sweep_depths=(0.15, 0.3, 0.45, 0.6, 0.75, 0.9),
    sweep_ratios=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.15, 1.3, 1.6),
    scan_step=1,
    scan_factors=(0.5, 1.0, 1.5, 2.0),
    multi_factors=(1.0, 1.5, 2.0, 3.0, 4.0),
    refusal_sites=("residual", "attn_out"),
    refusal_depths=(0.2, 0.27, 0.33, 0.4, 0.5),
    refusal_factors=(0.5, 1.0, 2.0, 3.0, 4.0),
    monitor_tokens=64,
    cross_factors=(0.5, 1.0, 1.5, 2.0),
    neutral_cap=None,
)
PROFILES = {p.name: p for p in (QUICK, FULL)}


@dataclass
class Context:
    """What every experiment needs: the model under test, its judge, sizes, where runs live."""

    lm: LoadedModel
    judge: Any
    judge_label: str
    profile: SteeringProfile
    out: Path
    reporter: Reporter = Silent()
    timings: dict[str, float] = field(default_factory=dict)
    # filled as the run goes: the coherence floor from the unsteered optimism answers
    floor: float = 75.0
    extra: dict[str, Any] = field(default_factory=dict)  # run directories, baseline, layer grids
    working_ratio: float = 0.6  # set from finding 1 (see SteeringProfile)

    def ratios(self, factors: Sequence[float]) -> list[float]:
        """Multiples of the working ratio, rounded so they meet the sweep's grid points (and its
        results.jsonl rows) where they coincide."""
        return sorted({round(self.working_ratio * f, 4) for f in factors})

    def run_dir(self, lm: LoadedModel, trait: str) -> Path:
        return Path(self.out) / "runs" / f"steering-{self.profile.name}" / lm.slug / trait


def scan_layers(n_layers: int, step: int) -> list[int]:
    return list(range(0, n_layers, step))


def depth_layer(depth: float, n_layers: int, allowed: Sequence[int] | None = None) -> int:
    """The layer at a relative depth, snapped to ``allowed`` (e.g. the scan grid) when given."""
    target = depth * (n_layers - 1)
    pool = list(allowed) if allowed else list(range(n_layers))
    return min(pool, key=lambda x: (abs(x - target), x))


def trait_subset(name: str, pairs: int | None) -> Trait:
    return balanced_subset(load_trait(name), pairs)


def ensure_extraction(
    ctx: Context, lm: LoadedModel, trait: str, sites: tuple[str, ...], methods: tuple[str, ...]
) -> tuple[Path, dict[str, Any]]:
    """Extract (or resume) one trait on one model at every layer; returns (run dir, evaluation)."""
    p = ctx.profile
    run_dir = ctx.run_dir(lm, trait)
    cfg = ExtractConfig(
        model=lm.name,
        layers=format_layers(list(range(lm.n_layers))),
        sites=sites,
        methods=methods,
        position=POSITION,
        max_new_tokens=p.rollout_tokens,
        seed=p.seed,
        batch_size=min(p.batch_size, 32),
        folds=p.folds,
        n_random=p.n_random,
    )
    ctx.reporter.note(f"extract {trait} on {lm.name}: {run_dir}")
    extract(lm, trait_subset(trait, p.pairs), run_dir, cfg, reporter=ctx.reporter)
    return run_dir, load_evaluation(run_dir)


def eval_row(evaluation: dict[str, Any], site: str, method: str, layer: int) -> dict[str, Any]:
    return next(r for r in evaluation["results"] if r["site"] == site and r["method"] == method and r["layer"] == layer)


def steer_rows(
    ctx: Context,
    trait: Trait,
    run_dir: Path,
    configs: Sequence[SteerConfig],
    questions: Sequence[str],
    lm: LoadedModel | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(baseline row, one row per config), numbers only; results.jsonl makes a re-run resume."""
    # one baseline per run dir and question list: its key must not depend on the configs
    baseline = SteerConfig("probe", "residual", (), baseline=True)
    rows = evaluate_configs(
        lm or ctx.lm,
        trait,
        run_dir,
        [baseline, *configs],
        ctx.judge,
        questions=list(questions),
        max_new_tokens=ctx.profile.answer_tokens,
        batch_size=ctx.profile.batch_size,
        reporter=ctx.reporter,
    )
    slim = [slim_row(r) for r in rows]
    return slim[0], slim[1:]


def slim_row(r: dict[str, Any]) -> dict[str, Any]:
    c = r["config"]
    scores = [a["trait"] for a in r["answers"] if a["trait"] is not None]
    return {
        "label": c["label"],
        "method": c["method"],
        "site": c["site"],
        "layers": list(c["layers"]),
        "ratio": c["ratio"],
        "mode": c["mode"],
        "baseline": c["baseline"],
        "coefs": c.get("coefs", {}),
        "trait": r["trait_mean"],
        "coherence": r["coherence_mean"],
        "delta": r["delta"],
        "n": r["n"],
        # share of answers the judge puts at or past the midpoint (for refusal: blocked)
        "share_high": sum(s >= REFUSAL_SCORE for s in scores) / len(scores) if scores else None,
        "answers": [
            {"question": a["question"], "answer": a["answer"], "trait": a["trait"], "coherence": a["coherence"]}
            for a in r["answers"]
        ],
    }


def coherent(row: dict[str, Any], floor: float) -> bool:
    return row["coherence"] is not None and row["coherence"] >= floor


def best_coherent(rows: Sequence[dict[str, Any]], floor: float, key: str = "delta") -> dict[str, Any] | None:
    ok = [r for r in rows if coherent(r, floor) and r[key] is not None]
    return max(ok, key=lambda r: r[key]) if ok else None


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    n = len(x)
    if n < 3:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx <= 0 or syy <= 0:
        return None
    return sxy / math.sqrt(sxx * syy)


class Timer:
    """``with Timer(ctx, "name"):`` adds the block's wall time to ``ctx.timings``."""

    def __init__(self, ctx: Context, name: str) -> None:
        self.ctx, self.name = ctx, name

    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ctx.timings[self.name] = self.ctx.timings.get(self.name, 0.0) + time.perf_counter() - self.t0
