"""``reproduce detection``: run the research log's detection experiments on the models at hand and
judge each finding: ``run(profile, setup) -> Results`` (the report is :func:`report.publish`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from traitscope.errors import TraitscopeError
from traitscope.models.loader import LoadedModel
from traitscope.reproduce.common.profiles import Profile
from traitscope.reproduce.common.runs import RunData, ensure_run, neutral_cache
from traitscope.reproduce.common.session import Results, Setup, Timings, machine, model_info
from traitscope.reproduce.common.verdict import judge_finding, untestable
from traitscope.reproduce.detection.experiments.base_to_instruct import base_to_instruct
from traitscope.reproduce.detection.experiments.components import compare_components
from traitscope.reproduce.detection.experiments.elicitation import compare_elicitation
from traitscope.reproduce.detection.experiments.methods import compare_methods
from traitscope.reproduce.detection.experiments.transfer import cross_distribution, cross_language, cross_topic
from traitscope.reproduce.detection.findings import ELICITATION_PAIRS, FINDINGS, TRANSFER_TRAIT


def run(profile: Profile, setup: Setup) -> Results:
    """Every detection experiment on ``setup.traits`` (default: every bundled trait); a JSON-ready
    dict (``meta``, ``findings`` in report order, each with its verdict)."""
    from traitscope.traits import bundled_names

    timings = Timings()
    started = datetime.now(UTC)
    with timings.block("total"):
        lm = timings.timed("load model", lambda: setup.load_model(setup.model))
        runs: dict[str, RunData] = {}
        for name in list(setup.traits or bundled_names()):
            runs[name] = timings.timed(
                f"extract {name}",
                lambda n=name: ensure_run(lm, n, setup.out, profile, reporter=setup.reporter),
            )
        findings = {key: timings.timed(key, fn) for key, fn in _experiments(profile, setup, lm, runs).items()}
        for key, f in findings.items():
            f["seconds"] = timings.get(key, 0.0)
            judge_finding(f)
    return {"meta": _meta(profile, setup, lm, runs, started, timings), "findings": findings}


def _experiments(
    p: Profile, setup: Setup, lm: LoadedModel, runs: dict[str, RunData]
) -> dict[str, Callable[[], dict[str, Any]]]:
    """Each finding's experiment, in report order, as a call to time."""
    step = setup.reporter.stage("methods table (6 methods)", len(runs))
    todo: dict[str, Callable[[], dict[str, Any]]] = {
        "methods": lambda: compare_methods(list(runs.values()), p, step),
        "cross_lang": lambda: _needs(runs, "uncertainty", lambda r: cross_language(r, p)),
        "cross_topic": lambda: _needs(runs, "uncertainty", lambda r: cross_topic(r, p)),
        "cross_dist": lambda: _needs(runs, "optimism", lambda r: cross_distribution(r, p)),
        "components": lambda: compare_components(list(runs.values())),
    }
    for pair, (natural, instruction) in ELICITATION_PAIRS.items():
        todo[f"elicitation_{pair}"] = lambda pair=pair, a=natural, b=instruction: (
            compare_elicitation(runs[a], runs[b], p, pair)
            if a in runs and b in runs
            else untestable(f"needs the traits {a} and {b}")
        )
    todo["base_to_instruct"] = lambda: _transfer(p, setup, lm, runs)
    assert list(todo) == list(FINDINGS)
    return todo


def _needs(runs: dict[str, RunData], trait: str, fn: Callable[[RunData], dict[str, Any]]) -> dict[str, Any]:
    return fn(runs[trait]) if trait in runs else untestable(f"needs the trait {trait}")


def _transfer(p: Profile, setup: Setup, lm: LoadedModel, runs: dict[str, RunData]) -> dict[str, Any]:
    if TRANSFER_TRAIT not in runs:
        return untestable(f"needs the trait {TRANSFER_TRAIT}")
    try:
        base = setup.load_model(setup.base_model)
    except TraitscopeError as exc:  # e.g. the base model's package is not installed
        return untestable(f"cannot load the base model {setup.base_model!r}: {exc}")
    src = ensure_run(base, TRANSFER_TRAIT, setup.out, p, sites=("residual", "attn_out"), reporter=setup.reporter)
    result = base_to_instruct(
        base,
        lm,
        src,
        runs[TRANSFER_TRAIT],
        neutral_cache(setup.out, p.name),
        p.folds,
        p.neutral_cap,
        p.seed,
        p.batch_size,
        reporter=setup.reporter,
    )
    result["base_model"] = model_info(base)
    return result


def _meta(
    p: Profile, setup: Setup, lm: LoadedModel, runs: dict[str, RunData], started: datetime, timings: Timings
) -> dict[str, Any]:
    from traitscope import __version__

    return {
        "command": setup.command,
        "profile": p.name,
        "profile_description": p.describe(),
        "position": p.position,
        "folds": p.folds,
        "model": model_info(lm),
        "layers": runs[next(iter(runs))].layers if runs else [],
        "data": {
            name: {"rows": r.n, "positive": int(r.y.sum()), "run_dir": str(r.run_dir), "resumed": r.resumed}
            for name, r in runs.items()
        },
        "machine": machine(),
        "started": started.isoformat(timespec="seconds"),
        "wall_seconds": timings.get("total", 0.0),
        "timings": dict(timings),
        "traitscope": __version__,
    }
