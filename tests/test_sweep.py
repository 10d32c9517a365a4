"""`traitscope sweep`: the grid runs through the same code as extract/steer-eval into the same
run-root files; on a local Ray cluster the results equal a local run's, and a job whose worker is
killed mid-way is retried without writing any result line twice."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from traitscope.store import RunDir, read_jsonl
from traitscope.store.layout import sweep_index
from traitscope.sweep import SweepSettings, plan_jobs, run_sweep
from traitscope.sweep.worker import FAULT_ENV

TINY = SweepSettings(
    layers="4,14",
    methods=("probe",),
    limit=4,
    max_new_tokens=6,
    folds=2,
    n_random=20,
    batch_size=8,
    steer_layers="4,14",
    ratios=(0.3, 0.8),
    judge="lexicon",
    questions=2,
    steer_tokens=8,
)
TRAITS = ["optimism", "formality"]
MODEL = "smollm2-135m-instruct"


def _results(root, trait):
    run = RunDir.of(MODEL, trait, root)
    rows = read_jsonl(run.steering_results)
    return rows, json.loads(run.evaluation.read_text())["best"]


@pytest.fixture(scope="module")
def local_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep-local")
    run_sweep(plan_jobs(TRAITS, [MODEL], ["extract", "steer-eval"], root, TINY), "local")
    return root


def test_local_sweep_writes_the_cli_files(local_root):
    index = json.loads(sweep_index(local_root).read_text())["jobs"]
    assert [j["trait"] for j in index] == TRAITS
    for trait in TRAITS:
        rows, best = _results(local_root, trait)
        assert "residual/probe" in best
        assert len(rows) == 1 + 2 * 2  # baseline + 2 layers x 2 ratios
        assert len({r["config"]["id"] for r in rows}) == len(rows)


def test_ray_sweep_equals_local_and_a_killed_worker_is_retried(local_root, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is optional; this test needs it")
    root = tmp_path / "sweep-ray"
    faults = tmp_path / "faults"
    monkeypatch.setenv(FAULT_ENV, f"2,{faults}")  # each job's first attempt dies after writing 2 result lines
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        run_sweep(plan_jobs(TRAITS, [MODEL], ["extract", "steer-eval"], root, TINY), "ray", num_cpus=1)
    finally:
        ray.shutdown()
    for trait in TRAITS:
        assert (faults / f"{MODEL}--{trait}").exists()  # the worker really died once
        rows, best = _results(root, trait)
        local_rows, local_best = _results(local_root, trait)
        assert [r["config"]["id"] for r in rows] == [r["config"]["id"] for r in local_rows]  # no duplicates
        assert best == local_best
        for a, b in zip(rows, local_rows, strict=True):
            assert a["trait_mean"] == pytest.approx(b["trait_mean"], abs=1e-6)
            assert a["coherence_mean"] == b["coherence_mean"]
            assert [x["answer"] for x in a["answers"]] == [x["answer"] for x in b["answers"]]


def test_bad_stage_is_one_line(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "traitscope",
        "sweep",
        "--traits",
        "optimism",
        "--stages",
        "extract,train",
        "--run-root",
        str(tmp_path),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "unknown stage(s) train" in r.stderr and "Traceback" not in r.stderr
