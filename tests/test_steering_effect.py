"""Steering moves the trait (issue 10): on the bundled model, optimism steering at a calibrated
perturbation ratio raises the default offline judge's trait score over the unsteered baseline on
the steering questions, while coherence stays above the floor. Real extraction, real generation,
real judge; small enough for CI (12 scenarios per class, 6 questions, 24 new tokens)."""

from __future__ import annotations

import pytest

from traitscope.extraction import ExtractConfig, extract
from traitscope.judges.registry import get_judge
from traitscope.steering.evaluate import SteerConfig, evaluate_configs
from traitscope.traits import load_trait

LAYER, RATIO, FLOOR = 10, 0.25, 75.0  # bench/steering_quality.py: L10 is the best single layer on this model


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_optimism_steering_raises_the_default_judges_score(lm, tmp_path):
    trait = load_trait("optimism")
    run = tmp_path / "optimism"
    config = ExtractConfig(
        layers=str(LAYER), sites=("residual",), methods=("probe",), max_new_tokens=12, limit=12, folds=3, n_random=10
    )
    extract(lm, trait, run, config)
    judge = get_judge("default", trait=trait, run_dir=run, lm=lm)
    assert judge.name.startswith("default (lexicon")
    configs = [
        SteerConfig("probe", "residual", (), baseline=True),
        SteerConfig("probe", "residual", (LAYER,), ratio=RATIO),
    ]
    base, steered = evaluate_configs(
        lm, trait, run, configs, judge, questions=trait.steering_questions[:6], max_new_tokens=24
    )
    assert base["n_scored"] == steered["n_scored"] == 6
    assert steered["trait_mean"] >= base["trait_mean"] + 10, (base["trait_mean"], steered["trait_mean"])
    assert steered["coherence_mean"] >= FLOOR and base["coherence_mean"] >= FLOOR
    # the steered answers differ from the unsteered ones: the vector was really applied
    assert [a["answer"] for a in steered["answers"]] != [a["answer"] for a in base["answers"]]
