"""Verdict rules that cannot lean: for every claim of both reproductions, a number on the wrong
side never passes, a number within the noise of the claim's null is inconclusive, missing or
degenerate data is "cannot test here", and "holds weaker" keeps the claim's sign. Plus the cases
the reviewer found (probe worse than gradient, multi-layer worse than single, ICA far above
random, a pass at exactly 0, no coherent configuration, finding 5 on a vector that encodes no
refusal)."""

from __future__ import annotations

import math

import pytest

from traitscope.reproduce.common.stats import bootstrap_halfwidth, d_halfwidth, fold_halfwidth, r_halfwidth
from traitscope.reproduce.common.verdict import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    UNTESTABLE,
    WEAKER,
    Check,
    Rule,
    combine,
)
from traitscope.reproduce.detection.findings import RULES as DETECTION_RULES
from traitscope.reproduce.steering.findings import RULES as STEERING_RULES

ALL_RULES = [(f"detection/{k}", r) for k, r in DETECTION_RULES.items()] + [
    (f"steering/{k}", r) for k, r in STEERING_RULES.items()
]
IDS = [name for name, _ in ALL_RULES]


def _at(rule: Rule, support: float) -> float:
    """The value that lies ``support`` on the claim's side of the rule's null."""
    return rule.null + support if rule.higher else rule.null - support


def _judge(rule: Rule, value: float | None, noise: float | None = None) -> str:
    return Check("k", rule, "claim", "log", value, noise=noise).verdict


@pytest.mark.parametrize(("name", "rule"), ALL_RULES, ids=IDS)
def test_every_rule_keeps_the_claims_order_and_sign(name, rule):
    # the holds bar lies on the claim's side of the null, and the margin is a real allowance
    assert rule.support(rule.holds) >= 0 and rule.margin > 0
    bar = max(rule.support(rule.holds), 2 * rule.margin)
    # past the bar and outside the noise: holds
    assert _judge(rule, _at(rule, bar)) == HOLDS
    # exactly at the null, or within the margin of it on either side: inconclusive, never a pass
    for s in (0.0, 0.5 * rule.margin, -0.5 * rule.margin):
        assert _judge(rule, _at(rule, s)) == INCONCLUSIVE, s
    # the wrong side, beyond the noise: does not hold, however far
    for s in (-1.5 * rule.margin, -10 * bar - 1):
        assert _judge(rule, _at(rule, s)) == FAILS, s
    # a measured noise wider than the distance from the null makes even the bar inconclusive
    assert _judge(rule, _at(rule, bar), noise=2 * bar) == INCONCLUSIVE
    assert _judge(rule, _at(rule, -bar), noise=2 * bar) == INCONCLUSIVE
    # "holds weaker" only ever on the claim's side, beyond the noise, short of the bar
    if rule.support(rule.holds) > 2 * rule.margin:
        weaker = _at(rule, (rule.margin + rule.support(rule.holds)) / 2)
        assert _judge(rule, weaker) == WEAKER
    for s in (-bar, -rule.margin * 1.01, 0.0):
        assert _judge(rule, _at(rule, s)) not in (HOLDS, WEAKER)
    # no number, a NaN, or data that cannot carry the claim: cannot test here
    assert _judge(rule, None) == UNTESTABLE
    assert _judge(rule, math.nan) == UNTESTABLE
    assert Check("k", rule, "c", "l", _at(rule, bar), why_untestable="no refusals").verdict == UNTESTABLE


def test_rules_on_the_wrong_side_of_their_null_are_refused():
    with pytest.raises(ValueError, match="wrong side"):
        Rule(holds=-0.03, null=0.0, margin=0.01)  # "probe is best" passing when probe is 3 points worse
    with pytest.raises(ValueError, match="margin"):
        Rule(holds=0.0, null=0.0, margin=0.0)  # a pass at exactly 0 with no noise allowance


def test_the_cases_the_review_found_no_longer_lean():
    d, s = DETECTION_RULES, STEERING_RULES
    assert _judge(d["probe_acc_margin"], -0.03) == FAILS  # probe 3 points worse than gradient
    assert _judge(s["multi_minus_single"], -5.0) == FAILS  # multi-layer 5 points worse than single
    assert _judge(d["ica_vs_random"], 0.15) == FAILS  # ICA 15 points over random
    assert _judge(d["pca_diff_vs_random"], 0.15) == FAILS
    for key in ("multi_minus_single", "multi_minus_single_in_range", "late_layer_trap"):
        assert _judge(s[key], 0.0) == INCONCLUSIVE  # exactly 0 is not a pass
    assert _judge(d["mean_diff_below_probe"], 0.0) == INCONCLUSIVE
    assert _judge(s["late_layer_trap"], 3.0) == FAILS  # a late layer that steers *up* is no trap
    # the log's own numbers pass their rules
    assert _judge(d["ica_vs_random"], 0.014) == HOLDS and _judge(d["pca_diff_vs_random"], 0.045) == HOLDS
    assert _judge(d["probe_acc_margin"], 0.049) == HOLDS and _judge(s["multi_minus_single"], 1.5) == INCONCLUSIVE


def test_a_finding_takes_its_worst_testable_check():
    rule = DETECTION_RULES["cross_lang_probe"]
    ok, weak = Check("a", rule, "c", "l", 0.97), Check("b", rule, "c", "l", 0.85)
    unsure, bad = Check("c", rule, "c", "l", 0.80), Check("d", rule, "c", "l", 0.5)
    gone = Check("e", rule, "c", "l", None, why_untestable="no data")
    assert [c.verdict for c in (ok, weak, unsure, bad, gone)] == [HOLDS, WEAKER, INCONCLUSIVE, FAILS, UNTESTABLE]
    assert combine([ok, weak]) == WEAKER
    assert combine([ok, unsure]) == INCONCLUSIVE
    assert combine([ok, unsure, bad]) == FAILS
    assert combine([ok, gone]) == HOLDS and combine([gone]) == UNTESTABLE


def test_noise_estimates():
    assert bootstrap_halfwidth([1.0]) is None
    assert bootstrap_halfwidth([0.0] * 10) == 0.0
    wide, narrow = bootstrap_halfwidth([-3.0, 3.0] * 5), bootstrap_halfwidth([-0.3, 0.3] * 5)
    assert wide == pytest.approx(10 * narrow) and 1.0 < wide < 3.0
    assert fold_halfwidth([0.8, 0.8, 0.8]) == 0.0 and fold_halfwidth([0.7, 0.9]) == pytest.approx(0.196, abs=1e-3)
    assert r_halfwidth(0.9, 3) is None and 0.0 < r_halfwidth(0.9, 30) < r_halfwidth(0.9, 8)
    assert d_halfwidth(0.0, 14, 14) == pytest.approx(1.96 * math.sqrt(2 / 14), rel=1e-3)
