"""steer-eval and the end-to-end report on a small real run of the bundled model."""

import json
import subprocess
import sys

import pytest

from traitscope.extraction import ExtractConfig, extract
from traitscope.judges.registry import get_judge
from traitscope.steering.evaluate import SteerConfig, best_config, evaluate_configs
from traitscope.store import RunDir, read_jsonl
from traitscope.traits import load_trait


@pytest.fixture(scope="module")
def run(lm, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("steer") / "smollm2-135m-instruct" / "optimism"
    extract(
        lm,
        load_trait("optimism"),
        run_dir,
        ExtractConfig(
            layers="9,20",
            sites=("residual",),
            methods=("probe", "mean_diff"),
            max_new_tokens=6,
            limit=6,
            folds=3,
            batch_size=6,
            n_random=20,
        ),
    )
    return run_dir


def test_steer_eval_scores_appends_and_skips_done_configs(lm, run):
    trait = load_trait("optimism")
    judge = get_judge("default", trait=trait, run_dir=run, lm=lm)
    configs = [
        SteerConfig("probe", "residual", (), baseline=True),
        SteerConfig("probe", "residual", (9,), ratio=0.3),
        SteerConfig("mean_diff", "residual", (9, 20), ratio=0.3, mode="orthogonal"),
    ]
    rows = evaluate_configs(lm, trait, run, configs, judge, questions=trait.steering_questions[:2], max_new_tokens=16)
    assert [r["config"]["baseline"] for r in rows] == [True, False, False]
    assert rows[0]["delta"] == 0
    for r in rows:
        assert r["n"] == 2 and len(r["answers"]) == 2
        assert r["trait_mean"] is None or 0 <= r["trait_mean"] <= 100
        assert 0 <= r["coherence_mean"] <= 100
    assert set(rows[2]["config"]["coefs"]) == {"9", "20"}
    lines = read_jsonl(RunDir(run).steering_results)
    assert len(lines) == 3
    again = evaluate_configs(lm, trait, run, configs, judge, questions=trait.steering_questions[:2], max_new_tokens=16)
    assert len(read_jsonl(RunDir(run).steering_results)) == 3  # nothing re-run
    assert [r["answers"] for r in again] == [r["answers"] for r in rows]
    assert best_config(rows, floor=0) is not None


def test_steer_and_steer_eval_cli(run):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "traitscope",
            "steer",
            "optimism",
            "--run",
            str(run),
            "--layers",
            "9",
            "--ratio",
            "0.3",
            "--prompt",
            "Is my old car worth fixing?",
            "--max-new-tokens",
            "12",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["unsteered"] and out["steered"] and out["unsteered"] != out["steered"]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "traitscope",
            "steer-eval",
            "optimism",
            "--run",
            str(run),
            "--layers",
            "20",
            "--ratios",
            "0.2",
            "--questions",
            "2",
            "--max-new-tokens",
            "12",
            "--judge",
            "lexicon",
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [c["config"] for c in out["configs"]][0] == "baseline (unsteered)"
    assert len(out["configs"]) == 2
    r = subprocess.run(
        [sys.executable, "-m", "traitscope", "steer", "optimism", "--run", str(run), "--layers", "5", "--prompt", "hi"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "no vector for layer 5" in r.stderr


def test_report_html_is_self_contained(lm, run):
    from traitscope.extraction import load_evaluation
    from traitscope.monitor import GenerationConfig, load_bank, monitor_prompts
    from traitscope.prompts import load_prompt_set
    from traitscope.report.html import write_report

    trait = load_trait("optimism")
    judge = get_judge("lexicon")
    rows = evaluate_configs(
        lm,
        trait,
        run,
        [SteerConfig("probe", "residual", (), baseline=True), SteerConfig("probe", "residual", (9,), ratio=0.2)],
        judge,
        questions=trait.steering_questions[:2],
        max_new_tokens=8,
    )
    bank = load_bank(lm, run.parent.parent, ["optimism"], model_slug=run.parent.name)
    traces = monitor_prompts(lm, load_prompt_set("neutral").prompts[:1], bank, GenerationConfig(max_new_tokens=6))
    path = write_report(RunDir(run).report, load_evaluation(run), rows, traces, None)
    page = path.read_text()
    assert page.count("data:image/png;base64,") == 3  # extraction, steering, one trajectory
    assert "residual/probe" in page and "http://" not in page and "https://" not in page
