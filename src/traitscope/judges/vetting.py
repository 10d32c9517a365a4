"""Vetting rollouts with a judge: keep a rollout only when it shows its polarity (a positive
scenario's answer scores at or above the threshold, a negative one's below). Rollouts the judge
cannot score are kept: a missing score is not evidence against them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from traitscope.judges.base import Judge
from traitscope.traits.schema import Trait


def vetter(judge: Judge, threshold: float = 50.0):
    """A ``Vetter`` for ``extraction.extract``: rows -> [(keep, score)]."""

    def vet(trait: Trait, rows: Sequence[dict[str, Any]]) -> list[tuple[bool, float | None]]:
        scores = judge.score_trait(trait, [(r["prompt"], r["response"]) for r in rows])
        out = []
        for r, s in zip(rows, scores, strict=True):
            if s.value is None:
                out.append((True, None))
            else:
                shows = s.value >= threshold if r["polarity"] == "positive" else s.value < threshold
                out.append((shows, s.value))
        return out

    return vet
