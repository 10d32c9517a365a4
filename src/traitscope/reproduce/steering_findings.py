"""``reproduce steering``: rerun the research log's steering and dynamics findings on the bundled
models, judge each with the fixed rules of :mod:`steering_verdict`, and write the numbers (JSON),
the plots (``docs/reproduction/steering_*.png``) and the ``steering`` section of the report.

Findings (log -> here):
1. perturbation-ratio law — trait and coherence vs ratio, mean_diff and probe, several layers
2. multi-layer vs single-layer steering of optimism (weighted / orthogonal)
3. extraction metrics vs steering success across layers (effect size vs val accuracy)
4. detection vs control (AUROC vs steering gain; carried vectors detect more than they steer)
5. refusal dynamics: per-token refusal projections on harmful vs benign prompts
6. steering against the bundled jailbreak set
7. cross-model steering: gemma-3-270m base vectors through a ridge map onto SmolLM2

Everything resumes: extraction runs and steering results live under ``out_dir``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from traitscope.errors import TraitscopeError
from traitscope.models.loader import LoadedModel
from traitscope.models.registry import DEFAULT_MODEL
from traitscope.progress import Reporter, Silent
from traitscope.reproduce import steering_experiments as ex
from traitscope.reproduce.steering_common import (
    FULL,
    POSITION,
    QUICK,
    Context,
    SteeringProfile,
    Timer,
    depth_layer,
    ensure_extraction,
    scan_layers,
    steer_rows,
    trait_subset,
)
from traitscope.reproduce.steering_crossmodel import cross_model
from traitscope.reproduce.steering_refusal import jailbreaks, refusal_dynamics
from traitscope.reproduce.steering_verdict import UNTESTABLE, coherence_floor, combine, untestable_reasons
from traitscope.store import atomic_write_json

DEFAULT_BASE_MODEL = "gemma3-270m"
DEFAULT_OUT = Path("runs/reproduce")
OPTIMISM, REFUSAL = "optimism", "refusal"

# Findings in report order: key -> title.
FINDINGS: dict[str, str] = {
    "ratio_law": "Perturbation-ratio law (optimism)",
    "multi_layer": "Multi-layer vs single-layer steering (optimism)",
    "metrics_vs_steering": "Extraction metrics vs steering success",
    "detection_vs_control": "Detection vs control",
    "refusal_dynamics": "Refusal dynamics token by token",
    "jailbreaks": "Steering against jailbreaks",
    "cross_model": "Cross-model steering (base → instruct through a ridge map)",
}


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


def default_command(quick: bool, out_dir: Path, model: str) -> str:
    parts = ["traitscope reproduce steering"]
    if quick:
        parts.append("--quick")
    if Path(out_dir) != DEFAULT_OUT:
        parts.append(f"--out {out_dir}")
    if model != DEFAULT_MODEL:
        parts.append(f"--model {model}")
    return " ".join(parts)


def reproduce_steering(
    out_dir: Path,
    quick: bool,
    model: str = DEFAULT_MODEL,
    report_path: Path | None = Path("docs/REPRODUCTION.md"),
    reporter: Reporter = Silent(),
    *,
    base_model: str = DEFAULT_BASE_MODEL,
    command: str | None = None,
    load: Callable[[str], LoadedModel] | None = None,
    profile: SteeringProfile | None = None,
) -> dict[str, Any]:
    """Run every steering finding; save ``<out_dir>/steering-<profile>.json``; write the plots and
    the report section when ``report_path`` is given. Returns the results dict."""
    from traitscope.models import load_model

    load = load or load_model
    profile = profile or (QUICK if quick else FULL)
    out_dir = Path(out_dir)
    t0, started = time.perf_counter(), datetime.now(UTC)
    lm = load(model)
    ctx = Context(lm=lm, judge=None, judge_label="", profile=profile, out=out_dir, reporter=reporter)
    findings = run_findings(ctx, base_model, load)
    ctx.timings["total"] = time.perf_counter() - t0
    results = {
        "meta": meta(ctx, started, command or default_command(quick, out_dir, model), base_model),
        "findings": findings,
    }
    atomic_write_json(out_dir / f"steering-{profile.name}.json", results)
    if report_path is not None:
        from traitscope.reproduce.steering_report import publish

        results["written"] = {k: str(v) for k, v in publish(results, Path(report_path)).items()}
    return results


def run_findings(ctx: Context, base_model: str, load: Callable[[str], LoadedModel]) -> dict[str, dict[str, Any]]:
    lm, p = ctx.lm, ctx.profile
    with Timer(ctx, "extract optimism"):
        opt_run, opt_eval = ensure_extraction(ctx, lm, OPTIMISM, ("residual",), ("probe", "mean_diff", "random"))
    with Timer(ctx, "extract refusal"):
        ref_run, ref_eval = ensure_extraction(ctx, lm, REFUSAL, p.refusal_sites, ("probe", "mean_diff"))
    optimism, refusal = trait_subset(OPTIMISM, None), trait_subset(REFUSAL, None)
    ctx.judge, ctx.judge_label = pick_judge(lm, optimism, opt_run)
    questions = optimism.steering_questions[: p.questions]
    with Timer(ctx, "baseline"):
        base, _ = steer_rows(ctx, optimism, opt_run, [], questions)
    ctx.floor = coherence_floor(base["coherence"])

    scan = scan_layers(lm.n_layers, p.scan_step)
    sweep = sorted({depth_layer(d, lm.n_layers, scan) for d in p.sweep_depths})
    f: dict[str, dict[str, Any]] = {}
    with Timer(ctx, "ratio_law"):
        f["ratio_law"] = ex.ratio_law(ctx, optimism, opt_run, sweep, questions)
    ctx.working_ratio = f["ratio_law"]["working_ratio"]
    with Timer(ctx, "metrics_vs_steering"):
        scanned = ex.layer_scan(ctx, optimism, opt_run, opt_eval, scan, questions)
        f["metrics_vs_steering"] = {**ex.metrics_vs_steering(scanned, lm.n_layers), "scan": scanned}
    with Timer(ctx, "multi_layer"):
        singles = f["ratio_law"]["rows"] + scanned["rows"]
        f["multi_layer"] = ex.multi_layer(ctx, optimism, opt_run, singles, questions)
    with Timer(ctx, "cross_model"):
        target_layer = f["metrics_vs_steering"]["best_steering"]["layer"]
        f["cross_model"] = _guard(
            lambda: cross_model(ctx, optimism, opt_run, opt_eval, target_layer, questions, base_model, load)
        )
    with Timer(ctx, "detection_vs_control"):
        f["detection_vs_control"] = ex.detection_vs_control(scanned, f["cross_model"])
    with Timer(ctx, "refusal_dynamics"):
        f["refusal_dynamics"] = refusal_dynamics(ctx, ref_run, ref_eval)
    with Timer(ctx, "jailbreaks"):
        f["jailbreaks"] = jailbreaks(ctx, refusal, ref_run, ref_eval)
    for key, finding in f.items():
        finding["setup"] = _setup(ctx, key, opt_eval, ref_eval, len(questions))
        _judge(finding)
    ctx.extra = {
        "optimism": {"run_dir": str(opt_run), "n": opt_eval["n"], "positive": opt_eval["n_positive"]},
        "refusal": {"run_dir": str(ref_run), "n": ref_eval["n"], "positive": ref_eval["n_positive"]},
        "baseline": base,
        "scan_layers": scan,
        "sweep_layers": sweep,
    }
    return {k: f[k] for k in FINDINGS}


def _guard(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A finding that needs something missing here (a model package) is untestable, not a crash."""
    try:
        return fn()
    except TraitscopeError as exc:
        return {"untestable": str(exc), "checks": []}


def _judge(finding: dict[str, Any]) -> None:
    checks = finding.get("checks", [])
    finding["verdict"] = combine(checks) if checks else UNTESTABLE
    finding["untestable_reasons"] = untestable_reasons(checks) + (
        [finding["untestable"]] if "untestable" in finding else []
    )
    finding["checks"] = [c.as_dict() for c in checks]


def _setup(ctx: Context, key: str, opt_eval: dict[str, Any], ref_eval: dict[str, Any], n_q: int) -> dict[str, Any]:
    """What this finding ran on, in the report's words."""
    p = ctx.profile
    is_refusal = key in ("refusal_dynamics", "jailbreaks")
    ev = ref_eval if is_refusal else opt_eval
    data = f"{'refusal' if is_refusal else 'optimism'} vectors from {ev['n']} rollouts ({ev['n_positive']} positive)"
    if key == "refusal_dynamics":
        q = f"bundled harmful + benign prompt sets (14 + 14), {p.monitor_tokens}-token greedy answers"
    elif key == "jailbreaks":
        q = (
            "search on the 14 bundled harmful prompts, then the 18 bundled jailbreaks and the 14 benign prompts; "
            f"{p.answer_tokens}-token greedy answers"
        )
    else:
        q = f"{n_q} optimism steering questions × {p.answer_tokens}-token greedy answers per configuration"
    return {"data": data, "questions": q, "wall_seconds": ctx.timings.get(key, 0.0)}


def meta(ctx: Context, started: datetime, command: str, base_model: str) -> dict[str, Any]:
    from traitscope import __version__
    from traitscope.reproduce.detection import machine

    lm = ctx.lm
    return {
        "command": command,
        "profile": ctx.profile.name,
        "profile_description": ctx.profile.describe(),
        "position": POSITION,
        "model": {
            "name": lm.name,
            "model_type": lm.model_type,
            "n_layers": lm.n_layers,
            "hidden_size": lm.hidden_size,
            "device": str(lm.device),
            "dtype": str(next(lm.model.parameters()).dtype).replace("torch.", ""),
        },
        "base_model": base_model,
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
