"""Runs never mix inputs: fingerprints, per-scenario resume, vetting, explicit vector selection,
steering results keyed by vector file, and one writer per run directory (issue: results a
researcher can trust). Real extraction on the bundled model, kept tiny."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import pytest
import torch

from traitscope.errors import TraitscopeError
from traitscope.extraction import ExtractConfig, extract
from traitscope.models.identity import model_identity
from traitscope.store import RunDir, VectorSet, load_vectors, locked, save_vectors
from traitscope.store.runs import load_run_vectors, load_site
from traitscope.traits import load_trait
from traitscope.traits.loader import bundled_dir

TINY = dict(layers="4,8", sites=("residual",), methods=("mean_diff",), max_new_tokens=4, limit=4, folds=2,
            batch_size=8, n_random=10)  # fmt: skip


@pytest.fixture()
def trait_copy(tmp_path):
    """A private copy of the bundled optimism folder that a test may edit."""
    dst = tmp_path / "optimism"
    shutil.copytree(bundled_dir() / "optimism", dst)
    return dst


def _rows(run: RunDir) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, run.rollouts.read_text().splitlines())}


def test_a_changed_scenario_is_regenerated_alone(lm, tmp_path, trait_copy):
    run = RunDir(tmp_path / "run")
    extract(lm, load_trait(trait_copy), run, ExtractConfig(**TINY))
    before = _rows(run)
    lines = (trait_copy / "scenarios.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["prompt"] = "Describe, with real enthusiasm, the best thing about a sunny morning walk."
    (trait_copy / "scenarios.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    extract(lm, load_trait(trait_copy), run, ExtractConfig(**TINY))
    after = _rows(run)
    assert after[first["id"]]["prompt"] == first["prompt"]
    assert after[first["id"]]["scenario"] != before[first["id"]]["scenario"]
    unchanged = [i for i in before if i != first["id"]]
    assert all(after[i] == before[i] for i in unchanged)
    _, _, ids, _ = load_site(run, "response[:]", "residual")
    assert set(ids) == {i for i, r in after.items() if r["kept"]}
    from safetensors import safe_open

    from traitscope.extraction.activations import rows_digest

    with safe_open(str(run.activation_file("response[:]", "residual")), framework="pt") as f:
        assert f.metadata()["rows"] == rows_digest([after[i] for i in ids])  # recaptured from the new rollout


def test_other_settings_or_model_stop_with_one_line_and_force_redoes(lm, tmp_path):
    run = RunDir(tmp_path / "run")
    trait = load_trait("optimism")
    extract(lm, trait, run, ExtractConfig(**TINY))
    with pytest.raises(TraitscopeError, match=r"settings max_new_tokens 4 -> 5.*--force"):
        extract(lm, trait, run, ExtractConfig(**{**TINY, "max_new_tokens": 5}))
    cfg = json.loads(run.config.read_text())
    cfg["fingerprint"]["model"]["weights"] = "someothermodel00"
    run.config.write_text(json.dumps(cfg))
    with pytest.raises(TraitscopeError, match="model weights 'someothermodel00'"):
        extract(lm, trait, run, ExtractConfig(**TINY))
    res = extract(lm, trait, run, ExtractConfig(**{**TINY, "max_new_tokens": 5}), force=True)
    assert res.n_rollouts == 8
    assert all(len(r["response_ids"]) <= 5 for r in _rows(run).values())


def test_a_corrupt_config_is_an_error_not_a_fresh_start(lm, tmp_path):
    run = RunDir(tmp_path / "run")
    extract(lm, load_trait("optimism"), run, ExtractConfig(**TINY))
    run.config.write_text('{"trait": "optimism", "config": {')
    with pytest.raises(TraitscopeError, match="config.json is corrupt"):
        extract(lm, load_trait("optimism"), run, ExtractConfig(**TINY))


def test_model_identity_follows_weights_not_names(lm, base_lm):
    a, b = model_identity(lm), model_identity(base_lm)
    assert a["weights"] != b["weights"] and a["config"] != b["config"]
    assert model_identity(lm) == a  # cached, stable


def test_vetting_is_decided_afresh_on_every_run(lm, tmp_path):
    trait = load_trait("optimism")
    run = RunDir(tmp_path / "run")
    calls: list[int] = []

    def drop_first_two(t, rows):
        calls.append(len(rows))
        return [(i >= 2, None if i < 2 else 70.0) for i in range(len(rows))]

    five = {**TINY, "limit": 5}
    cfg = ExtractConfig(**{**five, "vet": "test-judge"})
    res = extract(lm, trait, run, cfg, vetter=drop_first_two)
    assert res.n_kept == 8 and calls == [10]
    # None scores (a judge that failed) are asked again; the others are not
    res = extract(lm, trait, run, cfg, vetter=drop_first_two)
    assert calls == [10, 2]
    # without a vetter nothing stays dropped from the vetted run
    res = extract(lm, trait, run, ExtractConfig(**five))
    assert res.n_kept == 10 and all(r["kept"] for r in _rows(run).values())


def test_vectors_are_selected_by_position_not_directory_order(lm, tmp_path):
    run = RunDir(tmp_path / "run")
    extract(lm, load_trait("optimism"), run, ExtractConfig(**TINY))
    real = load_vectors(run.vector_file("response[:]", "residual", "mean_diff"))
    assert real.provenance.position == "response[:]"
    # a vector file at another position sorts first ("prompt_-1" < "response_all")
    decoy = VectorSet({k: -v for k, v in real.vectors.items()}, real.provenance)
    decoy.provenance.position = "prompt[-1]"
    save_vectors(run.vector_file("prompt[-1]", "residual", "mean_diff"), decoy)
    picked = load_run_vectors(run, "residual", "mean_diff")
    assert torch.equal(picked[4], real[4]) and picked.source == run.vector_file("response[:]", "residual", "mean_diff")
    assert torch.equal(load_run_vectors(run, "residual", "mean_diff", "prompt[-1]")[4], -real[4])
    with pytest.raises(TraitscopeError, match=r"no residual/mean_diff vectors at position response\[:5\]"):
        load_run_vectors(run, "residual", "mean_diff", "response[:5]")
    # a file whose provenance disagrees with its folder is refused
    shutil.copy(
        run.vector_file("prompt[-1]", "residual", "mean_diff"), run.vector_file("response[:]", "residual", "probe")
    )
    with pytest.raises(TraitscopeError, match=r"made at prompt\[-1\], not response\[:\]"):
        load_run_vectors(run, "residual", "probe")


def test_steering_results_are_keyed_by_the_vector_file(lm, tmp_path, monkeypatch):
    from traitscope.judges.base import code_fingerprint
    from traitscope.judges.registry import get_judge
    from traitscope.steering.evaluate import SteerConfig, evaluate_configs

    trait = load_trait("optimism")
    run = RunDir(tmp_path / "run")
    extract(lm, trait, run, ExtractConfig(**TINY))
    configs = [SteerConfig("mean_diff", "residual", (), baseline=True), SteerConfig("mean_diff", "residual", (4,), 0.3)]
    kw = dict(questions=trait.steering_questions[:2], max_new_tokens=4)
    judge = get_judge("lexicon")
    first = evaluate_configs(lm, trait, run, configs, judge, **kw)
    again = evaluate_configs(lm, trait, run, configs, judge, **kw)
    assert [r["config"]["id"] for r in again] == [r["config"]["id"] for r in first]
    assert len(run.steering_results.read_text().splitlines()) == 2  # reused, nothing new
    vf = run.vector_file("response[:]", "residual", "mean_diff")
    vs = load_vectors(vf)
    save_vectors(vf, VectorSet({k: -v for k, v in vs.vectors.items()}, vs.provenance))
    changed = evaluate_configs(lm, trait, run, configs, judge, **kw)
    assert changed[0]["config"]["id"] == first[0]["config"]["id"]  # the baseline uses no vector
    assert changed[1]["config"]["id"] != first[1]["config"]["id"]
    assert changed[1]["vectors"]["sha"] != first[1]["vectors"]["sha"]
    assert len(run.steering_results.read_text().splitlines()) == 3
    # a judge whose code changed (same name: another rubric wording, another calibration) judges again
    assert changed[0]["judge_code"] == code_fingerprint()
    monkeypatch.setattr("traitscope.steering.evaluate.code_fingerprint", lambda: "changed-judge")
    rejudged = evaluate_configs(lm, trait, run, configs, judge, **kw)
    assert {r["judge_code"] for r in rejudged} == {"changed-judge"}
    assert len(run.steering_results.read_text().splitlines()) == 5


def test_a_second_process_on_a_run_directory_gets_one_line_naming_the_holder(lm, tmp_path):
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from traitscope.store import locked\n"
         f"with locked({str(run.root)!r}):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TraitscopeError, match=rf"in use by pid {holder.pid} on .*wait for it"):
            extract(lm, load_trait("optimism"), run, ExtractConfig(**TINY))
        r = subprocess.run(
            [sys.executable, "-m", "traitscope", "extract", "optimism", "--out", str(run.root), "--limit", "4"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert r.returncode == 2 and f"pid {holder.pid}" in r.stderr and "Traceback" not in r.stderr
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    with locked(run.root), locked(run.root):  # released by the kill; re-entrant within one process
        pass
