"""Verdicts: every finding is a list of checks, each a number from the run compared with two
thresholds written down before any run (never chosen after seeing the result).

A check *holds* past its ``holds`` threshold, *holds weaker* past its ``weaker`` threshold (the
same direction, smaller), and otherwise *does not hold*; a check with no number is *cannot test
here* with the reason. A finding takes its worst testable check, so one failed claim is never
hidden by another that held; it is *cannot test here* only when none of its checks could run.

One rule type and one check type serve both reproductions; each side keeps its own table of
thresholds (``detection.findings.RULES``, ``steering.findings.RULES``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

HOLDS = "holds"
WEAKER = "holds weaker"
FAILS = "does not hold"
UNTESTABLE = "cannot test here"
_RANK = {HOLDS: 0, WEAKER: 1, FAILS: 2}

# Near-perfect scores leave no room to see one site or method beat another.
CEILING = 0.98


def fmt(value: float | None, unit: str = "num") -> str:
    """A number as the reports print it. Units: ``pct`` (0.9 -> 90.0%), ``pp`` (a difference of two
    fractions in percentage points: 0.05 -> +5.0 pts), ``pts`` (already on a 0-100 scale, e.g. judge
    points: 5 -> +5.0 pts), ``x`` (a factor), ``tokens``, ``r`` (Pearson's r), ``ratio``/``num``."""
    if value is None:
        return "—"
    formats: dict[str, Callable[[float], str]] = {
        "pct": lambda v: f"{v:.1%}",
        "pp": lambda v: f"{v * 100:+.1f} pts",
        "pts": lambda v: f"{v:+.1f} pts",
        "x": lambda v: f"{v:.2f}×",
        "tokens": lambda v: f"{v:.0f} tokens",
        "r": lambda v: f"r = {v:+.3f}",
    }
    return formats.get(unit, lambda v: f"{v:.2f}")(value)


@dataclass(frozen=True)
class Rule:
    """``higher``: larger values support the claim (else smaller ones do)."""

    holds: float
    weaker: float
    higher: bool = True
    unit: str = "num"

    def judge(self, value: float) -> str:
        def past(threshold: float) -> bool:
            return value >= threshold if self.higher else value <= threshold

        if past(self.holds):
            return HOLDS
        return WEAKER if past(self.weaker) else FAILS

    def describe(self) -> str:
        op = "≥" if self.higher else "≤"
        return f"holds if {op} {fmt(self.holds, self.unit)}; weaker if {op} {fmt(self.weaker, self.unit)}"


@dataclass
class Check:
    """One claim of a finding: the log's figure (quoted), ours, and the rule between them."""

    key: str
    rule: Rule
    claim: str
    log: str
    ours: float | None
    why_untestable: str | None = None
    shown: str | None = None  # how to print ours, when the rule's unit does not suit it

    @property
    def verdict(self) -> str:
        if self.ours is None or self.why_untestable:
            return UNTESTABLE
        return self.rule.judge(self.ours)

    def ours_text(self) -> str:
        if self.why_untestable or self.ours is None:
            return f"— ({self.why_untestable or 'no number'})"
        return self.shown or fmt(self.ours, self.rule.unit)

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


CheckFactory = Callable[..., Check]


def checker(rules: Mapping[str, Rule]) -> CheckFactory:
    """``check(key, claim, log, ours, why_untestable=None, shown=None)`` judged by ``rules[key]``."""

    def check(key: str, claim: str, log: str, ours: float | None, *args: Any, **kwargs: Any) -> Check:
        return Check(key, rules[key], claim, log, ours, *args, **kwargs)

    return check


def combine(checks: Sequence[Check]) -> str:
    """A finding's verdict: its worst testable check."""
    testable = [c.verdict for c in checks if c.verdict != UNTESTABLE]
    if not testable:
        return UNTESTABLE
    return max(testable, key=_RANK.__getitem__)


def untestable_reasons(checks: Sequence[Check]) -> list[str]:
    return [f"{c.claim}: {c.why_untestable}" for c in checks if c.verdict == UNTESTABLE and c.why_untestable]


def judge_finding(finding: dict[str, Any]) -> dict[str, Any]:
    """Turn a finding's Check objects into its verdict, reasons and JSON-ready checks (in place)."""
    checks: list[Check] = finding.get("checks", [])
    finding["verdict"] = combine(checks) if checks else UNTESTABLE
    finding["untestable_reasons"] = untestable_reasons(checks) + (
        [finding["untestable"]] if "untestable" in finding else []
    )
    finding["checks"] = [c.as_dict() for c in checks]
    return finding


def untestable(why: str, **extra: Any) -> dict[str, Any]:
    """A finding that could not run here, with the reason."""
    return {"untestable": why, "checks": [], **extra}
