"""What ``traitscope run`` does, as a library call: extract -> steering evaluation -> monitoring -> report.

Every choice the command makes is a parameter here; each stage resumes from what the run
directory holds, and the directory is locked for the whole job."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traitscope.extraction import ExtractConfig, ExtractResult, extract
from traitscope.models.loader import LoadedModel
from traitscope.progress import Reporter, Silent
from traitscope.specs import parse_layers
from traitscope.steering.evaluate import best_config, evaluate_configs, grid
from traitscope.steering.spec import check_ratio
from traitscope.store import RunDir, locked
from traitscope.store.runs import load_evaluation
from traitscope.traits.schema import Trait


@dataclass
class TraitRun:
    """What one ``run_trait`` produced (all of it is also on disk under ``run``)."""

    run: RunDir
    extraction: ExtractResult
    judge: str
    steering: list[dict[str, Any]]
    best_steering: dict[str, Any] | None
    traces: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None


def default_prompt_set(trait: Trait) -> str:
    return "harmful" if trait.name == "refusal" else "neutral"


def run_trait(
    lm: LoadedModel,
    trait: Trait,
    run: RunDir,
    extract_config: ExtractConfig | None = None,
    steer_layers: str = "25%,33%,45%",
    ratios: Sequence[float] = (0.15, 0.3, 0.45),
    questions: int = 6,
    judge: str = "default",
    prompt_set: str | None = None,
    monitor_prompts_n: int = 4,
    max_new_tokens: int = 40,
    reporter: Reporter = Silent(),
) -> TraitRun:
    """Extract vectors, evaluate steering at the probe's residual vectors on ``steer_layers`` x
    ``ratios``, monitor ``monitor_prompts_n`` prompts of a bundled set at the best layer, write report.html."""
    from traitscope.generation import SamplingConfig
    from traitscope.judges.registry import get_judge
    from traitscope.monitor import load_bank, monitor_prompts, write_trace
    from traitscope.prompts import load_prompt_set
    from traitscope.report.html import write_report

    ratios = [check_ratio(r) for r in ratios]
    layers = parse_layers(steer_layers, lm.n_layers)
    pset = load_prompt_set(prompt_set or default_prompt_set(trait))
    with locked(run.root):
        result = extract(lm, trait, run, extract_config or ExtractConfig(model=lm.name), reporter=reporter)
        j = get_judge(judge, trait=trait, run_dir=run.root, lm=lm)
        rows = evaluate_configs(
            lm, trait, run, grid("probe", "residual", layers, ratios), j,
            questions=trait.steering_questions[:questions], max_new_tokens=max_new_tokens, reporter=reporter,
        )  # fmt: skip
        best = best_config(rows)
        bank = load_bank(lm, run.root.parent.parent, [run.trait], model_slug=run.root.parent.name)
        traces = monitor_prompts(
            lm, pset.prompts[:monitor_prompts_n], bank, SamplingConfig(max_new_tokens=max_new_tokens), pset.name
        )
        for trace in traces:
            write_trace(run.monitor(pset.name) / f"{trace['id']}.json", trace)
        report = write_report(run.report, load_evaluation(run), rows, traces, best)
    return TraitRun(run, result, getattr(j, "name", judge), rows, best, traces, report)
