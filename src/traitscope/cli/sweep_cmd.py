"""`traitscope sweep`: extract and steer-eval over traits x models, locally or on Ray."""

from __future__ import annotations

from pathlib import Path

import typer

from traitscope.cli.app import app, console, emit_json
from traitscope.cli.common import DEVICE_MAP_OPT, MAX_MEMORY_OPT, floats, split_list
from traitscope.models.registry import DEFAULT_MODEL


@app.command()
def sweep(
    traits: str = typer.Option(..., "--traits", "-t", help="Comma-separated traits, e.g. optimism,formality."),
    models: str = typer.Option(DEFAULT_MODEL, "--models", "-m", help="Comma-separated models."),
    stages: str = typer.Option("extract,steer-eval", "--stages", help="Some of: extract, steer-eval."),
    run_root: Path = typer.Option(Path("runs"), "--run-root", help="Where <model-slug>/<trait>/ runs go."),
    backend: str = typer.Option("local", "--backend", help="local (one after another) or ray (one task per job)."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="Ray cluster to join ('auto': the local one)."),
    layers: str = typer.Option("all", help="Extraction layer spec."),
    components: str = typer.Option("residual", help="Extraction sites."),
    methods: str = typer.Option("mean_diff,probe", help="Extraction methods."),
    limit: int | None = typer.Option(None, help="Use only the first N scenarios of each polarity."),
    max_new_tokens: int = typer.Option(32, help="Rollout length."),
    folds: int = typer.Option(5),
    steer_layers: str = typer.Option("20%,30%,40%,50%,60%", help="Layers steer-eval sweeps."),
    ratios: str = typer.Option("0.1,0.2,0.3,0.5,0.8", help="Perturbation ratios steer-eval sweeps."),
    judge: str = typer.Option("default", help="Judge for steer-eval."),
    questions: int | None = typer.Option(None, help="Use only the first N steering questions."),
    batch_size: int = typer.Option(16),
    json_out: bool = typer.Option(False, "--json"),
    device_map: str | None = DEVICE_MAP_OPT,
    max_memory: str | None = MAX_MEMORY_OPT,
) -> None:
    """Split the grid traits x models into jobs and run each through the same code as `extract` and
    `steer-eval`, into the same run-root files. Re-running resumes; with --backend ray a job whose
    worker dies is retried."""
    from traitscope.models.placement import check_device_map, parse_max_memory
    from traitscope.store.layout import sweep_index
    from traitscope.sweep import SweepSettings, plan_jobs, run_sweep

    ratio_list = tuple(floats(ratios, "ratios"))
    settings = SweepSettings(
        layers=layers,
        sites=split_list(components, "components"),
        methods=split_list(methods, "methods"),
        limit=limit,
        max_new_tokens=max_new_tokens,
        folds=folds,
        steer_layers=steer_layers,
        ratios=ratio_list,
        judge=judge,
        questions=questions,
        batch_size=batch_size,
        device_map=check_device_map(device_map),
        max_memory=max_memory if parse_max_memory(max_memory) else None,  # checked here, parsed in each job
    )
    jobs = plan_jobs(
        list(split_list(traits, "traits")),
        list(split_list(models, "models")),
        list(split_list(stages, "stages")),
        run_root,
        settings,
    )
    console.print(f"sweep: {len(jobs)} job(s) on backend {backend}")
    results = run_sweep(
        jobs, backend, ray_address, on_done=lambda r: console.print(f"done: {r['job']} ({r['seconds']} s)")
    )
    if json_out:
        emit_json({"jobs": results})
    else:
        console.print(f"{len(results)} job(s) done; index: {sweep_index(run_root)}")
