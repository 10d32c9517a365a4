"""The judge interface: batch scoring of (question, answer) pairs for a trait and for coherence.

A score is 0-100, or ``None`` with a one-line reason when the judge could not score: a failure
is never a zero, so means and AUROCs are computed over real scores only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol, runtime_checkable

from traitscope.traits.schema import Trait

Pair = tuple[str, str]  # (question, answer)


@dataclass(frozen=True)
class Score:
    value: float | None  # 0-100, or None when the judge could not score
    reason: str | None = None  # why None (or a short note)

    @property
    def ok(self) -> bool:
        return self.value is not None


@runtime_checkable
class Judge(Protocol):
    name: str

    def score_trait(self, trait: Trait, pairs: Sequence[Pair]) -> list[Score]: ...

    def score_coherence(self, pairs: Sequence[Pair]) -> list[Score]: ...


def one_line(text: object, limit: int = 200) -> str:
    """Collapse whitespace and cap the length: every reason is fit to print on one line."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def unscored(n: int, reason: str) -> list[Score]:
    return [Score(None, one_line(reason)) for _ in range(n)]


def clamp(value: float) -> float:
    return float(min(100.0, max(0.0, value)))


class CombinedJudge:
    """Trait scores from one judge, coherence from another (e.g. lexicon + perplexity)."""

    def __init__(self, trait_judge: Judge, coherence_judge: Judge, name: str | None = None) -> None:
        self.trait_judge = trait_judge
        self.coherence_judge = coherence_judge
        self.name = name or f"{trait_judge.name}+{coherence_judge.name}"

    def score_trait(self, trait: Trait, pairs: Sequence[Pair]) -> list[Score]:
        return self.trait_judge.score_trait(trait, pairs)

    def score_coherence(self, pairs: Sequence[Pair]) -> list[Score]:
        return self.coherence_judge.score_coherence(pairs)


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A short hash of the judges' code (every module of this package): part of the key under which
    judged steering rows are cached, so rows scored by an older judge (another rubric wording,
    another coherence calibration) are judged again instead of being reused under the same name."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]
