"""Sweeps over traits x models (x stages): a grid of jobs, each running the same library code as
``traitscope extract`` / ``steer-eval`` into the same run-root files, locally or as Ray tasks."""

from traitscope.sweep.jobs import STAGES, SweepJob, SweepSettings, plan_jobs
from traitscope.sweep.runner import run_sweep
from traitscope.sweep.worker import run_job

__all__ = ["STAGES", "SweepJob", "SweepSettings", "plan_jobs", "run_job", "run_sweep"]
