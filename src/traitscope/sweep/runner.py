"""Running a sweep's jobs: one after another here (``local``), or as Ray tasks (``ray``), each
asking for one GPU where the cluster has GPUs. Ray retries a task whose worker died; the job
resumes from its run directory. The driver writes ``<run-root>/sweep.json`` (one entry per job)
once every job is done."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from traitscope.errors import TraitscopeError
from traitscope.store.atomic import atomic_write_text
from traitscope.store.layout import sweep_index
from traitscope.sweep.jobs import SweepJob
from traitscope.sweep.worker import run_job

BACKENDS = ("local", "ray")


def _local(jobs: Sequence[SweepJob], on_done: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    out = []
    for job in jobs:
        out.append(run_job(job))
        on_done(out[-1])
    return out


def _ray(
    jobs: Sequence[SweepJob],
    address: str | None,
    num_cpus: float,
    max_retries: int,
    on_done: Callable[[dict[str, Any]], None],
) -> list[dict[str, Any]]:
    from traitscope.serve.ray_app import require_ray

    ray = require_ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    task = ray.remote(run_job).options(
        num_gpus=gpus, num_cpus=0 if gpus else num_cpus, max_retries=max_retries, retry_exceptions=False
    )
    refs = {task.remote(job): job for job in jobs}
    results: dict[str, dict[str, Any]] = {}
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        job = refs[done[0]]
        try:
            results[job.name] = ray.get(done[0])
        except ray.exceptions.RayTaskError as exc:
            cause = exc.as_instanceof_cause()
            if isinstance(cause, TraitscopeError):
                raise TraitscopeError(f"sweep job {job.name}: {str(cause).splitlines()[-1]}") from None
            raise
        on_done(results[job.name])
    return [results[job.name] for job in jobs]


def run_sweep(
    jobs: Sequence[SweepJob],
    backend: str = "local",
    address: str | None = None,
    num_cpus: float = 1.0,
    max_retries: int = 3,
    on_done: Callable[[dict[str, Any]], None] = lambda _: None,
) -> list[dict[str, Any]]:
    """Run every job; returns their summaries (in job order) and writes them to sweep.json."""
    if backend not in BACKENDS:
        raise TraitscopeError(f"--backend {backend!r} is not valid; use one of: {', '.join(BACKENDS)}")
    if backend == "local" and address is not None:
        raise TraitscopeError("--ray-address goes with --backend ray")
    results = _local(jobs, on_done) if backend == "local" else _ray(jobs, address, num_cpus, max_retries, on_done)
    roots = {Path(job.run_root) for job in jobs}
    for root in roots:
        mine = [r for r, job in zip(results, jobs, strict=True) if Path(job.run_root) == root]
        atomic_write_text(sweep_index(root), json.dumps({"jobs": mine}, indent=2, default=str))
    return results
