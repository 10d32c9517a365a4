"""Verdicts: every finding is a list of checks, each a number from the run compared with two
thresholds written down here (never chosen after seeing the result).

A check *holds* past its ``holds`` threshold, *holds weaker* past its ``weaker`` threshold (the
same direction, smaller), and otherwise *does not hold*; a check with no number is *cannot test
here* with the reason. A finding takes its worst testable check, so one failed claim is never
hidden by another that held; it is *cannot test here* only when none of its checks could run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

HOLDS = "holds"
WEAKER = "holds weaker"
FAILS = "does not hold"
UNTESTABLE = "cannot test here"
_RANK = {HOLDS: 0, WEAKER: 1, FAILS: 2}

# Near-perfect scores leave no room to see one site or method beat another.
CEILING = 0.98


@dataclass(frozen=True)
class Rule:
    """``higher``: larger values support the claim (else smaller ones do)."""

    holds: float
    weaker: float
    higher: bool = True
    unit: str = "pct"  # how to print thresholds: pct (0.9 -> 90%), pts (0.05 -> 5 pts), num

    def judge(self, value: float) -> str:
        def past(threshold: float) -> bool:
            return value >= threshold if self.higher else value <= threshold

        if past(self.holds):
            return HOLDS
        return WEAKER if past(self.weaker) else FAILS

    def show(self, value: float) -> str:
        """A threshold as the report prints it (subclasses add units)."""
        return fmt(value, self.unit)

    def describe(self) -> str:
        op = "≥" if self.higher else "≤"
        return f"holds if {op} {self.show(self.holds)}; weaker if {op} {self.show(self.weaker)}"


def fmt(value: float | None, unit: str = "pct") -> str:
    if value is None:
        return "—"
    if unit == "pct":
        return f"{value:.1%}"
    if unit == "pts":
        return f"{value * 100:+.1f} pts"
    return f"{value:.2f}"


# Thresholds, one per claim. The "holds" bar sits near the log's own number, a little below it
# (the bundled models are 10-50x smaller than the log's and the quick profile is noisier); the
# "weaker" bar keeps the claim's direction but not its size.
RULES: dict[str, Rule] = {
    # 1. methods: probe has ~no polarity failures (log 0/234) and the best accuracy
    "probe_polarity_failures": Rule(0.02, 0.10, higher=False),
    "probe_acc_margin": Rule(0.0, -0.03, unit="pts"),  # probe mean accuracy minus the best other method
    "gradient_polarity_failures": Rule(0.15, 0.30, higher=False),  # log 11.5%
    "mean_diff_below_probe": Rule(0.10, 0.0, unit="pts"),  # probe minus mean_diff accuracy (log 20 pts)
    # ICA / PCA-diff "no better than random": their mean accuracy minus random's
    "pca_diff_vs_random": Rule(0.05, 0.15, higher=False, unit="pts"),
    "ica_vs_random": Rule(0.05, 0.15, higher=False, unit="pts"),
    # 2. cross-language (log 99.6% cross, drop 0.4%) and cross-topic (91.4%, drop 8.6%)
    "cross_lang_probe": Rule(0.95, 0.80),
    "cross_lang_drop": Rule(0.05, 0.15, higher=False, unit="pts"),
    "cross_lang_probe_minus_mean_diff": Rule(0.25, 0.05, unit="pts"),  # log: ~100% vs ~50%
    "cross_topic_probe": Rule(0.85, 0.70),
    "cross_topic_drop": Rule(0.10, 0.20, higher=False, unit="pts"),
    # 3. cross-distribution (optimism domains): probe transfers (log 98.75%), mean_diff less (76.25%)
    "cross_dist_probe": Rule(0.90, 0.75),
    "cross_dist_probe_minus_mean_diff": Rule(0.10, 0.0, unit="pts"),
    # 4. components: attn_out beats residual by ~10 pts accuracy; V beats residual by ~0.17 AUROC
    "attn_out_minus_residual_acc": Rule(0.05, 0.0, unit="pts"),
    "v_minus_residual_auroc": Rule(0.05, 0.0, unit="num"),
    # 5. natural vs instruction: the log's diagnostic (> 0.5 same concept, < 0.3 different)
    "sycophancy_cosine": Rule(0.30, 0.50, higher=False, unit="num"),
    "sycophancy_cross_acc": Rule(0.65, 0.80, higher=False),  # log ~50% (chance)
    "optimism_cosine": Rule(0.50, 0.30, unit="num"),
    "optimism_cross_acc": Rule(0.90, 0.75),  # log 97-100%
    # 6. base -> instruct: the carried vector detects on the target (log 90% accuracy)
    "carried_accuracy": Rule(0.85, 0.70),
    "carried_vs_own_auroc": Rule(-0.05, -0.15, unit="num"),  # carried minus the target's own vector
}


@dataclass
class Check:
    """One claim of a finding: the log's figure (quoted), ours, and the rule between them."""

    key: str  # a RULES entry
    claim: str
    log: str
    ours: float | None
    why_untestable: str | None = None
    shown: str | None = None  # how to print ours, when the rule's unit does not suit it

    @property
    def rule(self) -> Rule:
        return RULES[self.key]

    @property
    def verdict(self) -> str:
        if self.ours is None or self.why_untestable:
            return UNTESTABLE
        return self.rule.judge(self.ours)

    def as_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "claim": self.claim,
            "log": self.log,
            "ours": self.ours,
            "ours_text": self.ours_text(),
            "rule": self.rule.describe(),
            "verdict": self.verdict,
            "why_untestable": self.why_untestable,
        }

    def ours_text(self) -> str:
        if self.why_untestable:
            return f"— ({self.why_untestable})"
        return self.shown or fmt(self.ours, self.rule.unit)


def combine(checks: Sequence[Check]) -> str:
    """A finding's verdict: its worst testable check."""
    testable = [c.verdict for c in checks if c.verdict != UNTESTABLE]
    if not testable:
        return UNTESTABLE
    return max(testable, key=_RANK.__getitem__)


def untestable_reasons(checks: Sequence[Check]) -> list[str]:
    return [f"{c.claim}: {c.why_untestable}" for c in checks if c.verdict == UNTESTABLE and c.why_untestable]
