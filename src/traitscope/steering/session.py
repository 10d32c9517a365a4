"""What ``traitscope steer-eval`` does, as one library call: a layer x ratio grid (or a ratio
search) scored by a judge on generated answers, by the judge-free A/B score, or both."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from traitscope.errors import TraitscopeError
from traitscope.models.loader import LoadedModel
from traitscope.progress import Reporter, Silent
from traitscope.specs import DEFAULT_POSITION, parse_layers
from traitscope.steering.ab import (
    AB_FORMATS,
    AB_KEYS,
    ab_questions,
    attach_ab,
    evaluate_ab,
    pick_ab,
    rank_agreement,
)
from traitscope.steering.evaluate import (
    DEFAULT_LAYERS,
    DEFAULT_RATIOS,
    best_config,
    evaluate_configs,
    grid,
    search_ratios,
)
from traitscope.steering.spec import MODES, check_ratio
from traitscope.store import RunDir
from traitscope.store.runs import load_run_vectors
from traitscope.traits.schema import Trait

EVAL_KINDS = ("judge", "ab", "both")


@dataclass
class SteerEvalPlan:
    """Every choice of a steering evaluation (the ``steer-eval`` options)."""

    method: str = "probe"
    site: str = "residual"
    position: str = DEFAULT_POSITION
    layers: str = DEFAULT_LAYERS
    ratios: tuple[float, ...] = DEFAULT_RATIOS
    mode: str = "single"
    search: bool = False
    floor: float = 75.0
    judge: str = "default"
    questions: int | None = None
    max_new_tokens: int = 48
    batch_size: int = 32
    eval_kind: str = "judge"
    ab_format: str = "answers"

    def check(self, run: RunDir, trait: Trait) -> None:
        """Everything that needs no model, including that the vectors (and A/B questions) exist."""
        for r in self.ratios:
            check_ratio(r)
        if self.mode not in MODES:
            raise TraitscopeError(f"--mode {self.mode!r} is not valid; use one of: {', '.join(MODES)}")
        if self.eval_kind not in EVAL_KINDS:
            raise TraitscopeError(f"--eval {self.eval_kind!r} is not valid; use one of: {', '.join(EVAL_KINDS)}")
        if self.ab_format not in AB_FORMATS:
            raise TraitscopeError(f"--ab-format {self.ab_format!r} is not valid; use one of: {', '.join(AB_FORMATS)}")
        if self.eval_kind != "judge" and self.search:
            raise TraitscopeError(
                "--search needs a judge; use --eval judge, or a grid (--layers/--ratios) with --eval ab"
            )
        load_run_vectors(run, self.site, self.method, self.position)
        if self.eval_kind != "judge":
            ab_questions(trait, run.root)


@dataclass
class SteerEvalOutcome:
    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    judge: str
    n_questions: int
    ab_source: str = ""
    summary: list[dict[str, Any]] = field(default_factory=list)
    ab_picks: list[str] = field(default_factory=list)  # labels: best ab_delta under the fluency limit, one per layer
    ab_agreement: dict[str, float] | None = None  # --eval both: Spearman(ab_delta, judged delta), p, n


def steer_eval(
    lm: LoadedModel, trait: Trait, run: RunDir, plan: SteerEvalPlan, reporter: Reporter = Silent()
) -> SteerEvalOutcome:
    """Run ``plan`` on ``run``'s vectors; rows are also appended to ``run.steering_results``."""
    from traitscope.judges.registry import get_judge

    plan.check(run, trait)
    layers = parse_layers(plan.layers, lm.n_layers)
    configs = grid(plan.method, plan.site, layers, list(plan.ratios), plan.mode, plan.position)
    ab_rows: list[dict[str, Any]] = []
    items, source = ab_questions(trait, run.root) if plan.eval_kind != "judge" else ([], "")
    if plan.eval_kind != "judge":
        ab_rows = evaluate_ab(
            lm, trait, run, configs, items, source, plan.ab_format, plan.batch_size, reporter=reporter
        )
    if plan.eval_kind == "ab":
        rows, judge_name, n = ab_rows, "ab (judge-free)", len(items)
    else:
        j = get_judge(plan.judge, trait=trait, run_dir=run.root, lm=lm)
        qs = trait.steering_questions[: plan.questions] if plan.questions else trait.steering_questions
        kw: dict[str, Any] = dict(questions=qs, max_new_tokens=plan.max_new_tokens, batch_size=plan.batch_size)
        if plan.search:
            rows = search_ratios(lm, trait, run, plan.method, plan.site, layers, j, start=plan.ratios[0],
                                 floor=plan.floor, reporter=reporter, position=plan.position, **kw)  # fmt: skip
        else:
            rows = evaluate_configs(lm, trait, run, configs, j, reporter=reporter, **kw)
        judge_name, n = getattr(j, "name", plan.judge), len(qs)
    rows = attach_ab(rows, ab_rows)
    picks = [r["config"]["label"] for r in pick_ab(ab_rows, top=3, one_per_layer=True)]
    summary = summarise(rows)
    return SteerEvalOutcome(
        rows, best_config(rows, plan.floor), judge_name, n, source, summary, picks, rank_agreement(summary)
    )


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One flat record per configuration (what ``--json`` prints)."""
    keys = ("trait_mean", "coherence_mean", "delta")
    return [
        {"config": r["config"]["label"], **{k: r["config"][k] for k in ("layers", "ratio", "mode", "coefs")},
         **{k: r[k] for k in keys}, **{k: r.get(k) for k in AB_KEYS}, "n": r["n"]}
        for r in rows
    ]  # fmt: skip
