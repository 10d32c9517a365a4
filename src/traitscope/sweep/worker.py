"""One sweep job, wherever it runs: load the model, run each stage through the library functions
the CLI calls, into the job's run directory. Both stages resume from what is on disk, so a job
that is run again (a retried Ray task whose worker was killed) redoes only what is missing and
never appends a result line twice (``steering/results.jsonl`` is keyed by configuration)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from traitscope.store.atomic import atomic_write_text
from traitscope.sweep.jobs import SweepJob

# Fault injection for tests: the first attempt of a job exits its process after this many
# steering configurations were written (a marker file in the run directory makes it once only).
FAULT_ENV = "TRAITSCOPE_SWEEP_KILL_AFTER"


def _status(job: SweepJob, **info: Any) -> None:
    import json

    path = job.run_dir / "sweep-status.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"job": job.name, "pid": os.getpid(), "host": socket.gethostname(), **info}))


def _extract(lm: Any, trait: Any, job: SweepJob) -> dict[str, Any]:
    from traitscope.extraction import ExtractConfig, extract

    s = job.settings
    config = ExtractConfig(
        model=job.model,
        layers=s.layers,
        sites=s.sites,
        methods=s.methods,
        position=s.position,
        max_new_tokens=s.max_new_tokens,
        batch_size=s.batch_size,
        folds=s.folds,
        limit=s.limit,
        n_random=s.n_random,
    )
    result = extract(lm, trait, job.run_dir, config)
    return {"rollouts": result.n_rollouts, "best": {k: v["layer"] for k, v in result.best.items()}}


def _maybe_fault(job: SweepJob, written: int) -> None:
    after = os.environ.get(FAULT_ENV)
    marker = job.run_dir / ".sweep-fault-fired"
    if after is not None and written >= int(after) and not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(137)  # as if the worker were killed: no cleanup, no exception


def _steer_eval(lm: Any, trait: Any, job: SweepJob) -> dict[str, Any]:
    from traitscope.activations import parse_layers
    from traitscope.judges.registry import get_judge
    from traitscope.steering.evaluate import SteerConfig, best_config, evaluate_configs

    s = job.settings
    judge = get_judge(s.judge, trait=trait, run_dir=job.run_dir, lm=lm)
    questions = trait.steering_questions[: s.questions] if s.questions else trait.steering_questions
    kw = dict(questions=questions, max_new_tokens=s.steer_tokens, batch_size=s.batch_size)
    baseline = SteerConfig(s.steer_method, "residual", (), baseline=True)
    rows = evaluate_configs(lm, trait, job.run_dir, [baseline], judge, **kw)
    _maybe_fault(job, 1)
    for layer in parse_layers(s.steer_layers, lm.n_layers):  # one chunk per layer: progress lands on disk
        configs = [SteerConfig(s.steer_method, "residual", (layer,), ratio=r) for r in s.ratios]
        rows += evaluate_configs(lm, trait, job.run_dir, [baseline, *configs], judge, **kw)[1:]
        _maybe_fault(job, len(rows))
    best = best_config(rows)
    return {"configs": len(rows), "best": None if best is None else best["config"]["label"]}


def run_job(job: SweepJob) -> dict[str, Any]:
    """Run one job's stages; returns a summary line for the sweep's index."""
    import torch

    from traitscope.models import load_model
    from traitscope.traits import load_trait

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    start = time.perf_counter()
    _status(job, state="running")
    trait = load_trait(job.trait)
    lm = load_model(job.model)
    out: dict[str, Any] = {"job": job.name, "model": lm.name, "trait": trait.name, "run_dir": str(job.run_dir)}
    for stage in job.stages:
        out[stage] = _extract(lm, trait, job) if stage == "extract" else _steer_eval(lm, trait, job)
    out["seconds"] = round(time.perf_counter() - start, 1)
    _status(job, state="done", seconds=out["seconds"])
    return out


def run_dir_of(job: SweepJob) -> Path:
    return job.run_dir
