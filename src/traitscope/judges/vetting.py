"""Vetting rollouts with a judge: drop a rollout when the judge says it shows the *opposite* of
its polarity (a positive scenario's answer scoring below ``50 - margin``, a negative one's above
``50 + margin``). Neutral answers and answers the judge cannot score are kept: short rollouts are
often neutral, and a missing score is not evidence against them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from traitscope.judges.base import Judge
from traitscope.traits.schema import Trait


def shows_polarity(polarity: str, score: float | None, margin: float = 10.0) -> bool:
    if score is None:
        return True
    return score >= 50 - margin if polarity == "positive" else score <= 50 + margin


def vetter(judge: Judge, margin: float = 10.0):
    """A ``Vetter`` for ``extraction.extract``: rows -> [(keep, score)]."""

    def vet(trait: Trait, rows: Sequence[dict[str, Any]]) -> list[tuple[bool, float | None]]:
        scores = judge.score_trait(trait, [(r["prompt"], r["response"]) for r in rows])
        return [(shows_polarity(r["polarity"], s.value, margin), s.value) for r, s in zip(rows, scores, strict=True)]

    return vet


def vetter_for(name: str | None, trait: Trait, lm: Any = None):
    """The vetter for ``--vet NAME`` (None: no vetting)."""
    if not name:
        return None
    from traitscope.judges.registry import get_judge

    return vetter(get_judge(name, trait=trait, lm=lm))
