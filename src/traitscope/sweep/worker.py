"""One sweep job, wherever it runs: load the model, run each stage through the library functions
the CLI calls, into the job's run directory (holding its lock, as the CLI does). Both stages
resume from what is on disk, so a job that is run again (a retried Ray task whose worker was
killed; the lock dies with the process) redoes only what is missing and never appends a result
line twice (``steering/results.jsonl`` is keyed by configuration)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from traitscope.sweep.jobs import SweepJob

# Fault injection for tests: "N,DIR" makes the first attempt of each job exit its process (as if
# killed) once N steering result lines are written; a marker file in DIR makes it once per job.
FAULT_ENV = "TRAITSCOPE_SWEEP_KILL_AFTER"


def _maybe_fault(job: SweepJob, written: int) -> None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    after, _, folder = spec.partition(",")
    marker = Path(folder) / job.name.replace("/", "--")
    if written >= int(after) and not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(str(os.getpid()))
        os._exit(137)  # no cleanup, no exception: what a killed worker leaves behind


def _extract(lm: Any, trait: Any, job: SweepJob) -> dict[str, Any]:
    from traitscope.extraction import ExtractConfig, extract

    s = job.settings
    config = ExtractConfig(
        model=job.model, layers=s.layers, sites=s.sites, methods=s.methods, position=s.position,
        max_new_tokens=s.max_new_tokens, batch_size=s.batch_size, folds=s.folds, limit=s.limit, n_random=s.n_random,
    )  # fmt: skip
    result = extract(lm, trait, job.run, config)
    return {"rollouts": result.n_rollouts, "best": {k: v["layer"] for k, v in result.best.items()}}


def _steer_eval(lm: Any, trait: Any, job: SweepJob) -> dict[str, Any]:
    from traitscope.judges.registry import get_judge
    from traitscope.specs import parse_layers
    from traitscope.steering.evaluate import best_config, evaluate_configs, grid

    s = job.settings
    judge = get_judge(s.judge, trait=trait, run_dir=job.run.root, lm=lm)
    questions = trait.steering_questions[: s.questions] if s.questions else trait.steering_questions
    kw = dict(questions=questions, max_new_tokens=s.steer_tokens, batch_size=s.batch_size)
    layers = parse_layers(s.steer_layers, lm.n_layers)
    baseline, *_ = grid(s.steer_method, "residual", layers, s.ratios, position=s.position)
    rows = evaluate_configs(lm, trait, job.run, [baseline], judge, **kw)
    _maybe_fault(job, len(rows))
    for layer in layers:  # one chunk per layer: progress lands on disk as it is made
        configs = grid(s.steer_method, "residual", [layer], s.ratios, position=s.position)
        rows += evaluate_configs(lm, trait, job.run, configs, judge, **kw)[1:]
        _maybe_fault(job, len(rows))
    best = best_config(rows)
    return {"configs": len(rows), "best": None if best is None else best["config"]["label"]}


def run_job(job: SweepJob) -> dict[str, Any]:
    """Run one job's stages; returns a summary line for the sweep's index."""
    import torch

    from traitscope.models import load_model
    from traitscope.models.placement import parse_max_memory
    from traitscope.store import locked
    from traitscope.traits import load_trait

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    start = time.perf_counter()
    trait = load_trait(job.trait)
    s = job.settings
    lm = load_model(job.model, device_map=s.device_map, max_memory=parse_max_memory(s.max_memory))
    out: dict[str, Any] = {"job": job.name, "model": lm.name, "trait": trait.name, "run_dir": str(job.run.root)}
    with locked(job.run.root):
        for stage in job.stages:
            out[stage] = _extract(lm, trait, job) if stage == "extract" else _steer_eval(lm, trait, job)
    out["seconds"] = round(time.perf_counter() - start, 1)
    return out
