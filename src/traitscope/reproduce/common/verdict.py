"""Verdicts: every finding is a list of checks, each a number from the run compared with a rule
written down before any run (never chosen after seeing the result).

A rule names the claim's direction, its ``null`` (where the claim's sign flips: no effect, or the
edge of what the claim allows) and its ``holds`` bar (near the log's size, on the claim's side of
the null). A check carries its number and, where the experiment can measure one, its noise (the
half-width of a 95% bootstrap CI of a paired difference, a CI from fold spread, a Fisher-z CI of
a correlation); the rule's ``margin`` is the least noise ever assumed, so no claim passes exactly
at its null.

- *holds*: on the claim's side of the null by more than the noise, and past the holds bar;
- *holds weaker*: on the claim's side by more than the noise, short of the bar (same sign);
- *inconclusive*: within the noise of the null;
- *does not hold*: on the wrong side by more than the noise;
- *cannot test here*: no number, a degenerate one (NaN) or data that cannot carry the claim,
  with the reason. Never a pass.

A finding takes its worst testable check, so one failed claim is never hidden by another that
held; it is *cannot test here* only when none of its checks could run. One rule type and one
check type serve both reproductions; each side keeps its own table of rules
(``detection.findings.RULES``, ``steering.findings.RULES``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

HOLDS = "holds"
WEAKER = "holds weaker"
INCONCLUSIVE = "inconclusive"
FAILS = "does not hold"
UNTESTABLE = "cannot test here"
_RANK = {HOLDS: 0, WEAKER: 1, INCONCLUSIVE: 2, FAILS: 3}

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
        "pp_abs": lambda v: f"{v * 100:.1f} pts",
        "pts_abs": lambda v: f"{v:.1f} pts",
        "x": lambda v: f"{v:.2f}×",
        "tokens": lambda v: f"{v:.0f} tokens",
        "r": lambda v: f"r = {v:+.3f}",
    }
    return formats.get(unit, lambda v: f"{v:.2f}")(value)


@dataclass(frozen=True)
class Rule:
    """``higher``: larger values support the claim (else smaller ones do). ``null``: where the
    claim's sign flips; ``holds``: the bar for the full claim, on the claim's side of ``null`` (or
    at it); ``margin`` (> 0): the least noise assumed around ``null``."""

    holds: float
    null: float
    higher: bool = True
    unit: str = "num"
    margin: float = 0.0

    def __post_init__(self) -> None:
        if self.margin <= 0:
            raise ValueError(f"a rule needs a noise margin > 0 (got {self.margin})")
        if self.support(self.holds) < 0:
            raise ValueError(f"the holds bar {self.holds} lies on the wrong side of the null {self.null}")

    def support(self, value: float) -> float:
        """How far ``value`` lies on the claim's side of the null (negative: the wrong side)."""
        return value - self.null if self.higher else self.null - value

    def judge(self, value: float, noise: float | None = None) -> str:
        allowance = max(noise or 0.0, self.margin)
        s = self.support(value)
        if s > allowance:
            return HOLDS if s >= self.support(self.holds) else WEAKER
        return FAILS if s < -allowance else INCONCLUSIVE

    def describe(self) -> str:
        op, side = ("≥", ">") if self.higher else ("≤", "<")
        return (
            f"holds if {op} {fmt(self.holds, self.unit)}; weaker if {side} {fmt(self.null, self.unit)} by more than "
            f"the noise (at least {fmt(self.margin, _noise_unit(self.unit))}); inconclusive within it"
        )


@dataclass
class Check:
    """One claim of a finding: the log's figure (quoted), ours, its noise, and the rule between them."""

    key: str
    rule: Rule
    claim: str
    log: str
    ours: float | None
    why_untestable: str | None = None
    shown: str | None = None  # how to print ours, when the rule's unit does not suit it
    noise: float | None = None  # 95% half-width measured by the experiment (None: the rule's margin only)

    @property
    def verdict(self) -> str:
        if self.ours is None or self.why_untestable or math.isnan(self.ours):
            return UNTESTABLE
        return self.rule.judge(self.ours, self.noise)

    def ours_text(self) -> str:
        if self.why_untestable or self.ours is None or math.isnan(self.ours):
            return f"— ({self.why_untestable or 'no number'})"
        text = self.shown or fmt(self.ours, self.rule.unit)
        return text if self.noise is None else f"{text} ± {fmt(abs(self.noise), _noise_unit(self.rule.unit))}"

    def as_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "claim": self.claim,
            "log": self.log,
            "ours": self.ours,
            "noise": self.noise,
            "ours_text": self.ours_text(),
            "rule": self.rule.describe(),
            "verdict": self.verdict,
            "why_untestable": self.why_untestable,
        }


def _noise_unit(unit: str) -> str:
    """Noise is a size, not a signed difference: print it without a sign."""
    return {"pp": "pp_abs", "pts": "pts_abs", "r": "num"}.get(unit, unit)


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
