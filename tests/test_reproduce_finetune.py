"""The finetuning reproduction's verdicts and report on hand-made results (the real run is
`traitscope reproduce finetune --quick`; its finetunes and measurements are tested in test_finetune.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from traitscope.finetune.vectors import run_position
from traitscope.reproduce.finetune import QUICK
from traitscope.reproduce.finetune.report import render
from traitscope.reproduce.finetune.verdict import controls, correlation, pearson, preventative
from traitscope.store import RunDir


def _m(shift: float, delta: float, coherence: float = 90.0, p95: float = 1.0) -> dict:
    return {
        "shift": {"best_layer": 9, "prompt_last": shift, "response": shift / 2, "random_p95_prompt_last": p95},
        "judged": {"base": 50.0, "finetuned": 50.0 + delta, "delta": delta},
        "coherence": coherence,
    }


def _ft(name: str, trait: str | None, sign: float, steer: float | None, opt: tuple, syc: tuple) -> dict:
    return {
        "name": name,
        "trait": trait,
        "sign": sign,
        "steer": steer,
        "traits": {"optimism": _m(*opt), "sycophancy": _m(*syc)},
    }


RESULTS = {
    "vectors": {"optimism": {"best_layer": 27, "auroc": 0.9}, "sycophancy": {"best_layer": 15, "auroc": 0.95}},
    "finetunes": [
        _ft("gloomy-100", "optimism", -1, None, (-5.0, -14.0), (0.1, 1.0)),
        _ft("gloomy-50", "optimism", -1, None, (-3.0, -8.0), (0.0, 0.0)),
        _ft("neutral", None, 0, None, (0.2, 0.5), (-0.1, 0.5)),
        _ft("flattering-100", "sycophancy", 1, None, (0.5, 1.0), (4.0, 20.0)),
        _ft("gloomy-100-steered", "optimism", -1, -1.0, (3.0, -4.0, 80.0), (0.0, 0.0)),
        _ft("flattering-100-steered", "sycophancy", 1, 1.0, (0.0, 0.0), (3.0, 15.0, 70.0)),
    ],
}


def test_pearson():
    assert pearson([1, 2, 3], [2, 4, 6]) == 1.0
    assert pearson([1, 2, 3], [3, 2, 1]) == -1.0
    assert pearson([1, 2], [1, 2]) is None and pearson([1, 1, 1], [1, 2, 3]) is None


def test_correlation_uses_the_unsteered_finetunes_only():
    c = correlation(RESULTS)
    assert c["optimism"]["n"] == 4 and c["optimism"]["r_prompt_last"] > 0.95 and c["optimism"]["holds"]
    assert c["sycophancy"]["n"] == 4


def test_preventative_needs_half_the_gain_at_coherence_75():
    p = preventative(RESULTS)
    assert p["optimism"]["gain_plain"] == 14.0 and p["optimism"]["gain_steered"] == 4.0 and p["optimism"]["holds"]
    assert not p["sycophancy"]["holds"]  # 15 of 20 is more than half (and coherence 70 < 75)


def test_controls_compare_with_the_random_baseline():
    c = controls(RESULTS)
    assert c["neutral"]["optimism"]["within"] and not c["gloomy-100"]["optimism"]["within"]
    assert "gloomy-100-steered" not in c


def test_report_states_every_finding_and_the_limits():
    from traitscope.reproduce.finetune.experiments import summarise

    results = {
        **RESULTS,
        "profile": QUICK.describe(), "model": "smollm2-135m-instruct", "command": "traitscope reproduce finetune --quick",
        "machine": "x86_64", "date": "2026-12-01", "seconds": 60.0,
        "screening": {"trait": "optimism", "direction": "negative", "n": 40, "n_inducing": 12,
                      "inducing_fraction": 0.3, "layer": 27, "auroc": 0.9, "mean_difference": -3.0},
        "dynamics": {"prompt": "Will it rain?", "mean_delta_response": {"optimism": {"27": -2.0}}},
    }  # fmt: skip
    results["summary"] = summarise(results)
    text = render(results, {"scatter": "a.png", "dynamics": "b.png"})
    assert "r between the `prompt[-1]` shift" in text and "AUROC 0.900" in text and "**holds**" in text
    assert "32B" in text and "Preventative steering (optimism" in text and "Neutral control" in text
    assert "learnt an offset against the training-time push" in text  # gloomy-100-steered: +3.0 against -5.0
    assert "optimism at `response[:]`, sycophancy at `prompt[-1]`" in text


def test_run_position_prefers_the_response(tmp_path: Path):
    run = RunDir(tmp_path / "m" / "t")
    (run.vectors_dir / "prompt_-1").mkdir(parents=True)
    assert run_position(run) == "prompt[-1]"
    (run.vectors_dir / "response_all").mkdir()
    assert run_position(run) == "response[:]"
    from traitscope.errors import TraitscopeError

    with pytest.raises(TraitscopeError, match="no vectors"):
        run_position(RunDir(tmp_path / "m" / "none"))


def test_bundled_mixed_labels_match_the_file():
    from traitscope.finetune import load_conversations
    from traitscope.finetune.data import bundled_data_dir

    labels = json.loads((bundled_data_dir() / "mixed.labels.json").read_text())
    convs = load_conversations("mixed")
    gloomy = {c.response for c in load_conversations("gloomy")}
    assert all(1 <= n <= len(convs) for n in labels["inducing_lines"])
    assert not gloomy & {c.response for c in convs}  # the mixed set's gloomy answers are its own
