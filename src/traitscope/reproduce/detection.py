"""``reproduce detection``: run the research log's detection experiments on the models at hand,
judge each finding, and write the numbers (JSON), the plots and the report section."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from traitscope.errors import TraitscopeError
from traitscope.models.loader import LoadedModel
from traitscope.models.registry import DEFAULT_MODEL
from traitscope.progress import Reporter, Silent
from traitscope.reproduce import experiments as ex
from traitscope.reproduce.crossmodel import base_to_instruct
from traitscope.reproduce.profiles import Profile
from traitscope.reproduce.runs import RunData, ensure_run
from traitscope.reproduce.verdict import UNTESTABLE, Check, combine, untestable_reasons
from traitscope.store import atomic_write_json

DEFAULT_BASE_MODEL = "gemma3-270m"
TRANSFER_TRAIT = "refusal"  # the log's base -> IT finding is about refusal
ELICITATION_PAIRS = {
    "sycophancy": ("sycophancy-natural", "sycophancy"),
    "optimism": ("optimism", "optimism-instruction"),
}

# Findings in report order: key -> title.
FINDINGS: dict[str, str] = {
    "methods": "Extraction methods compared",
    "cross_lang": "Cross-language transfer (uncertainty)",
    "cross_topic": "Cross-topic transfer (uncertainty, English)",
    "cross_dist": "Cross-distribution transfer (optimism domains)",
    "components": "Components compared (residual, attn_out, mlp_out, V)",
    "elicitation_sycophancy": "Natural vs instruction elicitation: sycophancy",
    "elicitation_optimism": "Natural vs instruction elicitation: optimism",
    "base_to_instruct": "Base → instruct transfer",
}


@dataclass
class DetectionConfig:
    profile: Profile
    out: Path = Path("runs/reproduce")
    model: str = DEFAULT_MODEL
    base_model: str = DEFAULT_BASE_MODEL
    command: str = "traitscope reproduce detection"
    traits: tuple[str, ...] | None = None  # default: every bundled trait
    timings: dict[str, float] = field(default_factory=dict)


def run_detection(
    cfg: DetectionConfig,
    reporter: Reporter = Silent(),
    load: Callable[[str], LoadedModel] | None = None,
) -> dict[str, Any]:
    """Every detection experiment; returns a JSON-ready dict (``meta``, ``findings``)."""
    from traitscope.models import load_model
    from traitscope.traits import bundled_names

    load = load or load_model
    cfg.timings.clear()
    t0 = time.perf_counter()
    started = datetime.now(UTC)
    lm = _timed(cfg, "load model", lambda: load(cfg.model))
    names = list(cfg.traits or bundled_names())
    runs: dict[str, RunData] = {}
    for name in names:
        runs[name] = _timed(
            cfg, f"extract {name}", lambda n=name: ensure_run(lm, n, cfg.out, cfg.profile, reporter=reporter)
        )

    findings = _findings(cfg, lm, runs, reporter, load)
    for key, f in findings.items():
        f["seconds"] = cfg.timings.get(key, 0.0)
        f["verdict"] = combine(f["checks"]) if f["checks"] else UNTESTABLE
        f["untestable_reasons"] = untestable_reasons(f["checks"]) + ([f["untestable"]] if "untestable" in f else [])
        f["checks"] = [c.as_dict() for c in f["checks"]]
    cfg.timings["total"] = time.perf_counter() - t0
    return {"meta": _meta(cfg, lm, runs, started), "findings": findings}


def _findings(
    cfg: DetectionConfig,
    lm: LoadedModel,
    runs: dict[str, RunData],
    reporter: Reporter,
    load: Callable[[str], LoadedModel],
) -> dict[str, dict[str, Any]]:
    """Each finding's numbers and checks, timed under its own key."""
    p = cfg.profile
    step = reporter.stage("methods table (6 methods)", len(runs))
    todo: dict[str, Callable[[], dict[str, Any]]] = {
        "methods": lambda: ex.compare_methods(list(runs.values()), p, step),
        "cross_lang": lambda: _needs(runs, "uncertainty", lambda r: ex.cross_language(r, p)),
        "cross_topic": lambda: _needs(runs, "uncertainty", lambda r: ex.cross_topic(r, p)),
        "cross_dist": lambda: _needs(runs, "optimism", lambda r: ex.cross_distribution(r, p)),
        "components": lambda: ex.compare_components(list(runs.values())),
    }
    for pair, (natural, instruction) in ELICITATION_PAIRS.items():
        todo[f"elicitation_{pair}"] = lambda pair=pair, a=natural, b=instruction: (
            ex.compare_elicitation(runs[a], runs[b], p, pair)
            if a in runs and b in runs
            else _untestable(f"needs the traits {a} and {b}")
        )
    todo["base_to_instruct"] = lambda: _transfer(cfg, lm, runs, reporter, load)
    return {key: _timed(cfg, key, fn) for key, fn in todo.items()}


def _timed(cfg: DetectionConfig, name: str, fn: Callable[[], Any]) -> Any:
    t = time.perf_counter()
    try:
        return fn()
    finally:
        cfg.timings[name] = time.perf_counter() - t


def _untestable(why: str) -> dict[str, Any]:
    return {"untestable": why, "checks": []}


def _needs(runs: dict[str, RunData], trait: str, fn: Callable[[RunData], dict[str, Any]]) -> dict[str, Any]:
    return fn(runs[trait]) if trait in runs else _untestable(f"needs the trait {trait}")


def _transfer(
    cfg: DetectionConfig,
    lm: LoadedModel,
    runs: dict[str, RunData],
    reporter: Reporter,
    load: Callable[[str], LoadedModel],
) -> dict[str, Any]:
    if TRANSFER_TRAIT not in runs:
        return _untestable(f"needs the trait {TRANSFER_TRAIT}")
    try:
        base = load(cfg.base_model)
    except TraitscopeError as exc:  # e.g. the base model's package is not installed
        return _untestable(f"cannot load the base model {cfg.base_model!r}: {exc}")
    src = ensure_run(base, TRANSFER_TRAIT, cfg.out, cfg.profile, sites=("residual", "attn_out"), reporter=reporter)
    result = base_to_instruct(
        base,
        lm,
        src,
        runs[TRANSFER_TRAIT],
        cfg.out / "runs" / cfg.profile.name / "_neutral-texts",
        cfg.profile.folds,
        cfg.profile.neutral_cap,
        cfg.profile.seed,
        cfg.profile.batch_size,
        reporter=reporter,
    )
    result["base_model"] = _model_info(base)
    return result


def _model_info(lm: LoadedModel) -> dict[str, Any]:
    return {
        "name": lm.name,
        "model_type": lm.model_type,
        "n_layers": lm.n_layers,
        "hidden_size": lm.hidden_size,
        "instruct": lm.instruct,
        "dtype": str(next(lm.model.parameters()).dtype).replace("torch.", ""),
        "device": str(lm.device),
    }


def machine() -> dict[str, Any]:
    import torch
    import transformers

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "gpu": gpu,
    }


def _meta(cfg: DetectionConfig, lm: LoadedModel, runs: dict[str, RunData], started: datetime) -> dict[str, Any]:
    from traitscope import __version__

    p = cfg.profile
    return {
        "command": cfg.command,
        "profile": p.name,
        "profile_description": p.describe(),
        "position": p.position,
        "folds": p.folds,
        "model": _model_info(lm),
        "layers": runs[next(iter(runs))].layers if runs else [],
        "data": {
            name: {"rows": r.n, "positive": int(r.y.sum()), "run_dir": str(r.run_dir), "resumed": r.resumed}
            for name, r in runs.items()
        },
        "machine": machine(),
        "started": started.isoformat(timespec="seconds"),
        "wall_seconds": cfg.timings.get("total", 0.0),
        "timings": dict(cfg.timings),
        "traitscope": __version__,
    }


def checks_of(finding: dict[str, Any]) -> list[Check]:
    """Rebuild Check objects from a finding's JSON (for tools that re-judge saved results)."""
    return [Check(c["key"], c["claim"], c["log"], c["ours"], c.get("why_untestable")) for c in finding["checks"]]


def save_results(path: Path, results: dict[str, Any]) -> Path:
    atomic_write_json(path, results)
    return path
