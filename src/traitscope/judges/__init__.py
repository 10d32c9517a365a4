"""Judges: score (question, answer) pairs 0-100 for a trait and for coherence.

``get_judge(name)`` gives one of: default (offline lexicon/embedding + coherence), api
(logprob-weighted rubric over an OpenAI-compatible server), local (the rubric through a local
instruct model), embedding, lexicon. Failures are ``Score(None, reason)``, never zeros.
"""

from traitscope.judges.base import CombinedJudge, Judge, Pair, Score
from traitscope.judges.registry import JUDGE_NAMES, get_judge, needs_model

__all__ = ["JUDGE_NAMES", "CombinedJudge", "Judge", "Pair", "Score", "get_judge", "needs_model"]
