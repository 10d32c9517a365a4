"""Judge-free A/B evaluation on the bundled model: ab_questions in trait.yaml, questions built from
minimal pairs, balanced A/B order, steering moves the A/B score, `steer-eval --eval ab` end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from traitscope.errors import TraitscopeError
from traitscope.extraction import ExtractConfig, extract
from traitscope.steering.ab import (
    ab_questions,
    attach_ab,
    build_items,
    evaluate_ab,
    format_question,
    items_from_pairs,
    letter_ids,
    pick_ab,
    rank_agreement,
)
from traitscope.steering.evaluate import SteerConfig
from traitscope.store import RunDir, read_jsonl
from traitscope.traits import bundled_dir, bundled_names, load_trait

SRC = Path(__file__).resolve().parents[1] / "src"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run(lm, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ab") / "optimism"
    config = ExtractConfig(
        layers="10", sites=("residual",), methods=("probe",), max_new_tokens=12, limit=12, folds=3, n_random=10
    )
    extract(lm, load_trait("optimism"), run_dir, config)
    return run_dir


def test_bundled_traits_carry_30_ab_questions():
    for name in bundled_names():
        trait = load_trait(name)
        assert len(trait.ab_questions) >= 30, name
        assert len({q.question for q in trait.ab_questions}) == len(trait.ab_questions), name
        assert all(q.trait_answer != q.opposite_answer for q in trait.ab_questions)


def _copy_trait(tmp_path: Path, name: str, ab: object = "drop") -> Path:
    folder = tmp_path / name
    shutil.copytree(bundled_dir() / name, folder)
    meta = yaml.safe_load((folder / "trait.yaml").read_text())
    if ab == "drop":
        meta.pop("ab_questions")
    else:
        meta["ab_questions"] = ab
    (folder / "trait.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return folder


@pytest.mark.parametrize(
    ("ab", "message"),
    [
        ({"question": "q"}, "ab_questions: expected a list"),
        (
            [{"question": "q", "trait_answer": "yes"}],
            r"ab_questions\[0\]: needs non-empty strings .*bad: opposite_answer",
        ),
        (
            [{"question": "q", "trait_answer": "same", "opposite_answer": "same"}],
            r"ab_questions\[0\]: .* the same text",
        ),
    ],
)
def test_bad_ab_questions_are_one_line_errors(tmp_path, ab, message):
    with pytest.raises(TraitscopeError, match=message):
        load_trait(_copy_trait(tmp_path, "optimism", ab))


def test_questions_from_minimal_pairs_and_clear_error_without(tmp_path):
    # instruction elicitation: both halves of a pair ask the same prompt; their rollouts answer it two ways
    trait = load_trait(_copy_trait(tmp_path, "optimism-instruction"))
    assert trait.ab_questions == ()
    run = tmp_path / "run"
    run.mkdir()
    pairs = {}
    for s in trait.scenarios:
        pairs.setdefault(s.pair, []).append(s)
    lines = []
    for k, (a, b) in enumerate(list(pairs.values())[:6]):
        for s in (a, b):
            lines.append(
                {
                    "id": s.id,
                    "polarity": s.polarity,
                    "prompt": s.prompt,
                    "kept": k != 0,
                    "response": f"{'Bright' if s.polarity == 'positive' else 'Grim'} outlook {k}.",
                }
            )
    (run / "rollouts.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    items = items_from_pairs(trait, run)
    assert len(items) == 5  # pair 0's rollouts were not kept
    assert all(q.trait_answer.startswith("Bright") and q.opposite_answer.startswith("Grim") for q in items)
    got, source = ab_questions(trait, run)
    assert got == items and "has no ab_questions: built 5 from minimal pairs" in source
    assert "warning" not in source  # "Bright outlook 1." / "Grim outlook 1." share half their words
    # a model that answers both halves alike: the questions are built, and the source line says so
    for x in lines[:8]:
        x["response"] = f"Gardening is a rewarding and {'joyful' if x['polarity'] == 'positive' else 'calm'} hobby."
    (run / "rollouts.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    _, source = ab_questions(trait, run)
    assert "warning: in 3 of them the two answers share over 60% of their words" in source
    # natural elicitation: the two prompts of a pair differ, so no question can be built from them
    natural = load_trait(_copy_trait(tmp_path, "optimism"))
    with pytest.raises(
        TraitscopeError, match="trait optimism has no ab_questions and its minimal pairs cannot make them"
    ):
        ab_questions(natural, run)


def test_letters_format_balanced_and_readable(lm):
    paren, a, b = letter_ids(lm)
    assert lm.tokenizer.decode(paren) == "(" and lm.tokenizer.decode([a]) == "A" and lm.tokenizer.decode([b]) == "B"
    questions = list(load_trait("optimism").ab_questions)
    items = build_items(lm, questions, seed=3)
    assert sum(it.trait_letter == 0 for it in items) == len(items) // 2  # half put the trait answer first
    assert [it.trait_letter for it in build_items(lm, questions, seed=3)] == [it.trait_letter for it in items]
    first = items[0]
    shown = format_question(questions[0], first.trait_letter == 0)
    assert shown.index(questions[0].trait_answer) < shown.index(questions[0].opposite_answer) or first.trait_letter == 1
    assert lm.tokenizer.decode(first.ids).endswith("assistant\n(")


def test_steering_raises_the_ab_score_and_rows_resume(lm, run):
    trait = load_trait("optimism")
    questions = list(trait.ab_questions)
    configs = [SteerConfig("probe", "residual", (), baseline=True), SteerConfig("probe", "residual", (10,), ratio=0.25)]
    base, steered = evaluate_ab(lm, trait, run, configs, questions, "test")
    assert base["ab_delta"] == 0 and 0 < base["ab_score"] < 1
    assert steered["ab_delta"] > 0.015, steered["ab_delta"]  # measured +0.035 at L10 ratio 0.2-0.4 (24 pairs)
    assert len(steered["items"]) == len(questions) and steered["trait_mean"] is None
    assert len(read_jsonl(RunDir(run).steering_results)) == 2
    again = evaluate_ab(lm, trait, run, configs, questions, "test")
    assert len(read_jsonl(RunDir(run).steering_results)) == 2  # nothing re-run
    assert [r["ab_score"] for r in again] == [base["ab_score"], steered["ab_score"]]
    # letters: a different row kind, cached apart; the model puts most of its mass on A or B
    letters = evaluate_ab(lm, trait, run, configs[:1], questions[:8], "test", fmt="letters")[0]
    assert letters["ab_format"] == "letters" and all(it["letter_mass"] > 0.3 for it in letters["items"])
    merged = attach_ab([{"config": {"label": c.label()}, "delta": 1.0} for c in configs], again)
    assert merged[1]["ab_delta"] == steered["ab_delta"] and merged[1]["delta"] == 1.0


def test_steer_eval_ab_cli(run):
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    args = [
        sys.executable,
        "-m",
        "traitscope",
        "steer-eval",
        "optimism",
        "--run",
        str(run),
        "--layers",
        "10",
        "--ratios",
        "0.25",
        "--eval",
        "ab",
        "--json",
    ]
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["judge"] == "ab (judge-free)" and out["ab_source"] == "32 ab_questions from trait.yaml"
    base, steered = out["configs"]
    assert base["ab_delta"] == 0 and steered["ab_delta"] > 0 and steered["delta"] is None
    assert base["ab_nll_delta"] == 0 and steered["ab_nll"] > 0 and steered["ab_nll_delta"] is not None
    # the one configuration is a pick exactly when it stays under the fluency limit
    assert out["ab_picks"] == ([steered["config"]] if steered["ab_nll_delta"] <= 1.0 else [])
    # the dashboard's grids: the A/B rows form their own group with an ab_delta heatmap
    from traitscope.report.data import steering_grids

    grids = steering_grids(read_jsonl(RunDir(run).steering_results))
    answers_group = next(g for g in grids["groups"] if "ab (judge-free)" in g["key"])
    assert answers_group["ratios"] == ["0.25"] and answers_group["ab_delta"][0][0] == pytest.approx(steered["ab_delta"])
    assert any(b["ab_score"] == pytest.approx(base["ab_score"]) for b in grids["baselines"])
    bad = subprocess.run([*args[:-1], "--ab-format", "words"], capture_output=True, text=True, env=env, timeout=600)
    assert bad.returncode == 2 and "--ab-format 'words' is not valid; use one of: answers, letters" in bad.stderr


def test_fluency_cost_grows_with_strength_and_gates_the_pick(lm, run):
    trait = load_trait("optimism")
    questions = list(trait.ab_questions)[:6]
    configs = [SteerConfig("probe", "residual", (), baseline=True)] + [
        SteerConfig("probe", "residual", (10,), ratio=r) for r in (0.1, 0.3, 1.5)
    ]
    rows = evaluate_ab(lm, trait, run, configs, questions, "test")
    base, low, mid, high = rows
    assert base["ab_nll_delta"] == 0 and 0.5 < base["ab_nll"] < 3  # the model's own greedy answers are probable
    assert 0 < low["ab_nll_delta"] < mid["ab_nll_delta"] < high["ab_nll_delta"]
    # bench/RESULTS.md: every optimism configuration under 1.0 generated coherent text, all above 1.7 did not
    assert low["ab_nll_delta"] < 0.5 and high["ab_nll_delta"] > 1.7, (low["ab_nll_delta"], high["ab_nll_delta"])
    assert high not in pick_ab(rows, top=3)  # the default fluency limit
    # the pick: highest ab_delta among rows under the fluency limit; no limit lets the broken one in
    limit = (mid["ab_nll_delta"] + high["ab_nll_delta"]) / 2
    assert high not in pick_ab(rows, top=3, max_nll_delta=limit)
    assert pick_ab(rows, top=3, max_nll_delta=limit) == sorted([low, mid], key=lambda r: -r["ab_delta"])
    assert len(pick_ab(rows, top=3, max_nll_delta=None)) == 3 and base not in pick_ab(rows, 3, None)
    # one per layer: all three steer layer 10, so only the best of them is left
    assert pick_ab(rows, 3, None, one_per_layer=True) == [max([low, mid, high], key=lambda r: r["ab_delta"])]


def test_rank_agreement_of_ab_and_judged_deltas():
    def row(layers, ab, delta):
        return {"layers": layers, "ab_delta": ab, "delta": delta}

    base = row([], 0.0, 0.0)  # the baseline never counts
    same = [base, row([6], 0.01, 2.0), row([8], 0.03, 5.0), row([10], 0.02, 4.0), row([12], 0.05, 9.0)]
    assert rank_agreement(same) == {"spearman": pytest.approx(1.0), "p": pytest.approx(0.0, abs=1e-6), "n": 4}
    flipped = [{**r, "delta": -r["delta"]} for r in same]
    assert rank_agreement(flipped)["spearman"] == pytest.approx(-1.0)
    # one discordant pair out of six: Spearman 1 - 6 * (1 + 1) / (4 * 15) = 0.8
    swapped = [base, row([6], 0.01, 2.0), row([8], 0.02, 5.0), row([10], 0.03, 4.0), row([12], 0.05, 9.0)]
    assert rank_agreement(swapped)["spearman"] == pytest.approx(0.8)
    assert rank_agreement(same[:3]) is None  # two configurations rank nothing
    assert rank_agreement([*same, row([14], None, 3.0)])["n"] == 4  # a judge-only row is left out
    assert rank_agreement([base, *(row([k], 0.02, float(k)) for k in (6, 8, 10))]) is None  # constant A/B side
