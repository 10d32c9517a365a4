"""``reproduce steering``: rerun the research log's steering and dynamics findings on the bundled
models and judge each: ``run(profile, setup) -> Results`` (the report is :func:`report.publish`).

Findings (log -> here):
1. perturbation-ratio law — trait and coherence vs ratio, mean_diff and probe, several layers
2. multi-layer vs single-layer steering of optimism (weighted / orthogonal)
3. extraction metrics vs steering success across layers (effect size vs val accuracy)
4. detection vs control (AUROC vs steering gain; carried vectors detect more than they steer)
5. refusal dynamics: per-token refusal projections on harmful vs benign prompts
6. steering against the bundled jailbreak set
7. cross-model steering: gemma-3-270m base vectors through a ridge map onto SmolLM2

Everything resumes: extraction runs and steering results live under ``setup.out``."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from traitscope.errors import TraitscopeError
from traitscope.models.loader import LoadedModel
from traitscope.reproduce.common.profiles import Profile
from traitscope.reproduce.common.session import Results, Setup, Timings, machine, model_info
from traitscope.reproduce.common.verdict import judge_finding, untestable
from traitscope.reproduce.steering.experiments.context import Context, depth_layer, ensure_extraction, steer_rows
from traitscope.reproduce.steering.experiments.control import detection_vs_control
from traitscope.reproduce.steering.experiments.cross_model import cross_model
from traitscope.reproduce.steering.experiments.layers import layer_scan, metrics_vs_steering
from traitscope.reproduce.steering.experiments.multi_layer import multi_layer
from traitscope.reproduce.steering.experiments.ratio_law import ratio_law
from traitscope.reproduce.steering.experiments.refusal import jailbreaks, refusal_dynamics
from traitscope.reproduce.steering.findings import FINDINGS, OPTIMISM, REFUSAL, coherence_floor
from traitscope.traits import load_trait
from traitscope.traits.schema import Trait


def run(profile: Profile, setup: Setup) -> Results:
    """Every steering finding; a JSON-ready dict (``meta``, ``findings`` in report order)."""
    started = datetime.now(UTC)
    timings = Timings()
    with timings.block("total"):
        lm = setup.load_model(setup.model)
        ctx = Context(
            lm=lm, judge=None, judge_label="", profile=profile, out=setup.out, reporter=setup.reporter, timings=timings
        )
        findings = run_findings(ctx, setup)
    return {"meta": _meta(ctx, started, setup), "findings": findings}


def pick_judge(lm: LoadedModel, trait: Any, run_dir: Path) -> tuple[Any, str]:
    """The api judge when TRAITSCOPE_JUDGE_BASE_URL is set (the log's setup), else the offline one."""
    from traitscope.judges.registry import get_judge

    if os.environ.get("TRAITSCOPE_JUDGE_BASE_URL"):
        j = get_judge("api")
        model = os.environ.get("TRAITSCOPE_JUDGE_MODEL", "gpt-4.1-mini")
        return j, f"api ({model} at TRAITSCOPE_JUDGE_BASE_URL, logprob-weighted rubric)"
    j = get_judge("default", trait=trait, run_dir=run_dir, lm=lm)
    return j, (
        f"{getattr(j, 'name', 'default')}: offline (VADER sentence valence for optimism, decline-phrase "
        "lexicon for refusal; coherence from perplexity under the unsteered model, repetition, relevance, "
        "gibberish)"
    )


@dataclass
class Inputs:
    """The two extraction runs and the optimism steering questions every finding steers on."""

    optimism: Trait
    refusal: Trait
    opt_run: Path
    opt_eval: dict[str, Any]
    ref_run: Path
    ref_eval: dict[str, Any]
    questions: list[str]


def prepare(ctx: Context) -> Inputs:
    """Extract (or resume) optimism and refusal, choose the judge, set the coherence floor from the
    unsteered answers."""
    lm, s = ctx.lm, ctx.sizes
    with ctx.timings.block("extract optimism"):
        opt_run, opt_eval = ensure_extraction(ctx, lm, OPTIMISM, ("residual",), ("probe", "mean_diff", "random"))
    with ctx.timings.block("extract refusal"):
        ref_run, ref_eval = ensure_extraction(ctx, lm, REFUSAL, s.refusal_sites, ("probe", "mean_diff"))
    optimism, refusal = load_trait(OPTIMISM), load_trait(REFUSAL)
    ctx.judge, ctx.judge_label = pick_judge(lm, optimism, opt_run)
    questions = optimism.steering_questions[: s.questions]
    with ctx.timings.block("baseline"):
        base, _ = steer_rows(ctx, optimism, opt_run, [], questions)
    ctx.floor = coherence_floor(base["coherence"])
    ctx.extra = {
        "optimism": {"run_dir": str(opt_run), "n": opt_eval["n"], "positive": opt_eval["n_positive"]},
        "refusal": {"run_dir": str(ref_run), "n": ref_eval["n"], "positive": ref_eval["n_positive"]},
        "baseline": base,
    }
    return Inputs(optimism, refusal, opt_run, opt_eval, ref_run, ref_eval, list(questions))


def run_findings(ctx: Context, setup: Setup) -> dict[str, dict[str, Any]]:
    x = prepare(ctx)
    lm, q, timed = ctx.lm, x.questions, ctx.timings.timed
    scan = ctx.profile.layers(lm.n_layers)
    sweep = sorted({depth_layer(d, lm.n_layers, scan) for d in ctx.sizes.sweep_depths})
    ctx.extra.update(scan_layers=scan, sweep_layers=sweep)
    f: dict[str, dict[str, Any]] = {}
    f["ratio_law"] = timed("ratio_law", lambda: ratio_law(ctx, x.optimism, x.opt_run, sweep, q))
    ctx.working_ratio = f["ratio_law"]["working_ratio"]
    with ctx.timings.block("metrics_vs_steering"):
        scanned = layer_scan(ctx, x.optimism, x.opt_run, x.opt_eval, scan, q)
        f["metrics_vs_steering"] = {**metrics_vs_steering(scanned, lm.n_layers), "scan": scanned}
    singles = f["ratio_law"]["rows"] + scanned["rows"]
    f["multi_layer"] = timed("multi_layer", lambda: multi_layer(ctx, x.optimism, x.opt_run, singles, q))
    target = f["metrics_vs_steering"]["best_steering"]["layer"]
    f["cross_model"] = timed(
        "cross_model",
        lambda: _guard(
            lambda: cross_model(ctx, x.optimism, x.opt_run, x.opt_eval, target, q, setup.base_model, setup.load_model)
        ),
    )
    f["detection_vs_control"] = timed("detection_vs_control", lambda: detection_vs_control(scanned, f["cross_model"]))
    f["refusal_dynamics"] = timed("refusal_dynamics", lambda: refusal_dynamics(ctx, x.ref_run, x.ref_eval))
    f["jailbreaks"] = timed("jailbreaks", lambda: jailbreaks(ctx, x.refusal, x.ref_run, x.ref_eval))
    for key, finding in f.items():
        finding["setup"] = _setup(ctx, key, x.opt_eval, x.ref_eval, len(q))
        judge_finding(finding)
    return {k: f[k] for k in FINDINGS}


def _guard(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A finding that needs something missing here (a model package) is untestable, not a crash."""
    try:
        return fn()
    except TraitscopeError as exc:
        return untestable(str(exc))


def _setup(ctx: Context, key: str, opt_eval: dict[str, Any], ref_eval: dict[str, Any], n_q: int) -> dict[str, Any]:
    """What this finding ran on, in the report's words."""
    s = ctx.sizes
    is_refusal = key in ("refusal_dynamics", "jailbreaks")
    ev = ref_eval if is_refusal else opt_eval
    data = f"{'refusal' if is_refusal else 'optimism'} vectors from {ev['n']} rollouts ({ev['n_positive']} positive)"
    if key == "refusal_dynamics":
        q = f"bundled harmful + benign prompt sets (14 + 14), {s.monitor_tokens}-token greedy answers"
    elif key == "jailbreaks":
        q = (
            "search on the 14 bundled harmful prompts, then the 18 bundled jailbreaks and the 14 benign prompts; "
            f"{s.answer_tokens}-token greedy answers"
        )
    else:
        q = f"{n_q} optimism steering questions × {s.answer_tokens}-token greedy answers per configuration"
    return {"data": data, "questions": q, "wall_seconds": ctx.timings.get(key, 0.0)}


def _meta(ctx: Context, started: datetime, setup: Setup) -> dict[str, Any]:
    from traitscope import __version__

    return {
        "command": setup.command,
        "profile": ctx.profile.name,
        "profile_description": ctx.profile.describe(),
        "position": ctx.profile.position,
        "model": model_info(ctx.lm),
        "base_model": setup.base_model,
        "judge": ctx.judge_label,
        "floor": ctx.floor,
        "working_ratio": ctx.working_ratio,
        "machine": machine(),
        "started": started.isoformat(timespec="seconds"),
        "wall_seconds": ctx.timings.get("total", 0.0),
        "timings": dict(ctx.timings),
        "runs": ctx.extra,
        "traitscope": __version__,
    }
