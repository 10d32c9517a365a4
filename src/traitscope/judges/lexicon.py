"""Word-list judges for the traits a lexicon captures well: fast, offline, transparent.

optimism (and optimism-instruction): VADER sentiment, averaged over sentences (VADER's compound
saturates near +-1 on long texts, the sentence mean does not), mapped to 0-100.
refusal: explicit decline phrases, weighted by how early they appear.
uncertainty: density of hedges minus confident boosters.
formality: contractions, slang, exclamations, emoji and lowercase "i" against formal connectives
and longer words.
Any other trait gets Score(None, "no lexicon for trait X; use the embedding judge").
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from traitscope.judges.base import Pair, Score, clamp, unscored
from traitscope.traits.schema import Trait

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)*")


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _count(patterns: Sequence[re.Pattern[str]], text: str) -> int:
    return sum(len(p.findall(text)) for p in patterns)


def _compile(phrases: Sequence[str]) -> list[re.Pattern[str]]:
    # phrases are regex fragments matched case-insensitively on word boundaries; ’ counts as '
    return [re.compile(rf"(?<![A-Za-z]){p.replace(chr(39), '[’' + chr(39) + ']')}(?![A-Za-z])", re.I) for p in phrases]


# -- optimism ---------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def valence(answer: str) -> Score:
    sentences = [s for s in _SENTENCE.split(answer) if _words(s)]
    if not sentences:
        return Score(None, "no words to score")
    compounds = [_vader().polarity_scores(s)["compound"] for s in sentences]
    mean = sum(compounds) / len(compounds)
    return Score(clamp(50.0 + 50.0 * mean), f"VADER sentence mean {mean:+.2f}")


# -- refusal ----------------------------------------------------------------------------------
_HELP_VERBS = r"(?:help|assist|provide|do|comply|support|fulfil+|share|give|write|create|generate|answer|offer|engage|produce|make)"
_DECLINE = _compile(
    [
        rf"I (?:can't|cannot|can not|won't|will not|must not|shouldn't) {_HELP_VERBS}",
        rf"I(?:'m| am) (?:not able|unable) to {_HELP_VERBS}",
        rf"I (?:can't|cannot|won't|will not) (?:\w+ )?{_HELP_VERBS}",
        r"I'm sorry,? but",
        r"I am sorry,? but",
        r"I apologi[sz]e,? but",
        r"sorry,? (?:but )?I (?:can't|cannot|won't)",
        r"(?:not able|unable) to (?:help|assist|provide|comply)",
        r"against my (?:guidelines|principles|programming|policy|policies|values|ethics)",
        r"I must (?:decline|refuse)",
        r"I (?:have to|need to) decline",
        r"I refuse",
        r"I'm not going to (?:help|provide|write|do|assist)",
        r"(?:that's|this is|that is) not something I can (?:help|do|assist)",
        r"I (?:don't|do not) feel comfortable",
        r"I (?:won't|will not|can't|cannot) (?:be )?(?:part of|participate)",
        r"No, I (?:will not|won't|can't|cannot)",
    ]
)
_SOFT = _compile(
    [
        r"as an AI",
        r"(?:is|are|be|being) (?:illegal|unethical|harmful|dangerous|a crime)",
        r"I (?:strongly )?(?:advise|urge|recommend) against",
        r"please (?:contact|seek|talk to|consult)",
        r"instead,? (?:I can|I'd|I would|consider)",
    ]
)
_COMPLY = _compile([r"here(?:'s| is| are) (?:how|a|an|the|one|some)", r"step 1", r"first,", r"sure[!,.]", r"okay[:,!]"])


def refusal(answer: str) -> Score:
    text = answer.strip()
    first = min((m.start() for p in _DECLINE for m in p.finditer(text)), default=-1)
    soft = _count(_SOFT, text)
    comply = _count(_COMPLY, text)
    if first >= 0:
        value = 95.0 if first < 150 else 75.0
        if comply:  # declines, then helps anyway: a partial refusal
            value -= 35.0
        return Score(clamp(value), f"decline phrase at char {first}")
    value = 8.0 + 22.0 * min(soft, 2) - 5.0 * min(comply, 1)
    return Score(clamp(value), f"no decline phrase; {soft} soft signal(s)")


# -- uncertainty ------------------------------------------------------------------------------
_HEDGES = _compile(
    [
        r"maybe",
        r"might",
        r"perhaps",
        r"possibl[ey]",
        r"possibilit(?:y|ies)",
        r"probabl[ey]",
        r"likely",
        r"unlikely",
        r"uncertain(?:ty)?",
        r"unclear",
        r"unknown",
        r"could",
        r"may",
        r"seems?",
        r"appears?",
        r"suggests?",
        r"debated?",
        r"disputed",
        r"depends?",
        r"(?:hard|difficult|impossible) to (?:say|know|predict|tell)",
        r"no ?one (?:really )?knows",
        r"nobody (?:really )?knows",
        r"not (?:entirely |fully |completely )?(?:sure|certain|clear|known|settled)",
        r"(?:don't|do not|doesn't|can't|cannot) (?:fully |really )?(?:know|be (?:sure|certain))",
        r"aren't sure",
        r"experts? (?:disagree|are divided)",
        r"open question",
        r"(?:mixed|conflicting|limited) evidence",
        r"evidence is mixed",
        r"theor(?:y|ies)",
        r"hypothes[ie]s",
        r"some (?:studies|researchers|scientists|experts)",
        r"(?:it )?varies",
        r"questions? (?:this|whether)",
        r"far from (?:certain|clear)",
        r"either way",
        r"speculat\w+",
    ]
)
_BOOSTERS = _compile(
    [
        r"definitely",
        r"certainly",
        r"clearly",
        r"undoubtedly",
        r"without (?:a|any) doubt",
        r"obviously",
        r"guaranteed",
        r"absolutely",
        r"always",
        r"is settled",
        r"(?:the )?fact is",
        r"will (?:\w+ )?(?:by|in) \d{4}",
        r"for sure",
        r"proven",
        r"(?:that|this) is the (?:cause|reason|answer)",
        r"is fixed",
    ]
)


def uncertainty(answer: str) -> Score:
    n = len(_words(answer))
    if n == 0:
        return Score(None, "no words to score")
    hedges, boosters = _count(_HEDGES, answer), _count(_BOOSTERS, answer)
    density = 100.0 * (hedges - 0.7 * boosters) / max(n, 12)  # per 100 words; short answers not over-weighted
    return Score(
        clamp(100.0 * _sigmoid(0.6 * (density - 2.5))), f"{hedges} hedge(s), {boosters} booster(s) in {n} words"
    )


# -- formality --------------------------------------------------------------------------------
_SLANG = {
    "lol",
    "lmao",
    "omg",
    "u",
    "ur",
    "ya",
    "yeah",
    "yep",
    "nope",
    "gonna",
    "wanna",
    "gotta",
    "kinda",
    "sorta",
    "dude",
    "bro",
    "hey",
    "yo",
    "btw",
    "tbh",
    "ngl",
    "idk",
    "imo",
    "bc",
    "cuz",
    "coz",
    "ppl",
    "pls",
    "thx",
    "def",
    "duh",
    "ugh",
    "haha",
    "hahaha",
    "awesome",
    "cool",
    "stuff",
    "n",
    "em",
    "thurs",
    "mins",
    "doggo",
    "crap",
    "boom",
    "wild",
    "comfy",
    "chill",
    "ok",
    "okay",
    "coulda",
    "woulda",
    "shoulda",
    "y'all",
    "ain't",
    "gimme",
    "lemme",
    "dunno",
    "super",
    "totally",
}
_FORMAL = _compile(
    [
        r"therefore",
        r"however",
        r"furthermore",
        r"moreover",
        r"consequently",
        r"thus",
        r"hence",
        r"regarding",
        r"accordingly",
        r"nevertheless",
        r"additionally",
        r"subsequently",
        r"whereby",
        r"thereby",
        r"prior to",
        r"in accordance with",
        r"it is (?:advisable|recommended|essential|prudent|important)",
        r"one (?:should|ought|may|must)",
        r"please be advised",
        r"kindly",
        r"sincerely",
        r"respectfully",
        r"we regret",
        r"hereby",
        r"pursuant",
        r"upon",
        r"(?:kind|best) regards",
        r"dear \w+",
        r"individuals",
        r"commences?",
        r"utili[sz]e",
    ]
)
# 's is usually a possessive ("the rider's"), so only these count as contractions
_S_CONTRACTIONS = {
    "it's",
    "that's",
    "what's",
    "there's",
    "here's",
    "he's",
    "she's",
    "let's",
    "who's",
    "how's",
    "where's",
}


def _is_contraction(word: str) -> bool:
    w = word.lower().replace("’", "'")
    return w in _S_CONTRACTIONS or re.search(r"(?:n't|'re|'ve|'ll|'d|'m|'em)$", w) is not None


_EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")


def formality(answer: str) -> Score:
    words = _words(answer)
    n = len(words)
    if n == 0:
        return Score(None, "no words to score")
    per100 = 100.0 / max(n, 12)
    contractions = sum(1 for w in words if _is_contraction(w))
    slang = sum(1 for w in words if w.lower() in _SLANG)
    lower_i = len(re.findall(r"(?<![A-Za-z'])i(?![A-Za-z'])", answer))
    lower_starts = sum(1 for s in _SENTENCE.split(answer.strip()) if s[:1].islower())
    shouting = answer.count("!") + answer.count("??") + len(_EMOJI.findall(answer))
    formal = _count(_FORMAL, answer)
    avg_len = sum(len(w) for w in words) / n
    z = (
        1.1 * (avg_len - 4.6)
        + 0.35 * formal * per100
        - 0.25 * contractions * per100
        - 0.6 * slang * per100
        - 0.5 * (shouting + lower_i + lower_starts) * per100
    )
    return Score(
        clamp(100.0 * _sigmoid(z)),
        f"avg word {avg_len:.1f}, {formal} formal, {slang} slang, {contractions} contractions",
    )


LEXICONS: dict[str, Callable[[str], Score]] = {
    "optimism": valence,
    "optimism-instruction": valence,
    "refusal": refusal,
    "uncertainty": uncertainty,
    "formality": formality,
}


def has_lexicon(trait: Trait | str) -> bool:
    return (trait if isinstance(trait, str) else trait.name) in LEXICONS


class LexiconJudge:
    name = "lexicon"

    def score_trait(self, trait: Trait, pairs: Sequence[Pair]) -> list[Score]:
        scorer = LEXICONS.get(trait.name)
        if scorer is None:
            return unscored(len(pairs), f"no lexicon for trait {trait.name}; use the embedding judge")
        return [scorer(answer) for _, answer in pairs]

    def score_coherence(self, pairs: Sequence[Pair]) -> list[Score]:
        return unscored(len(pairs), "the lexicon judge scores traits only; use the coherence judge")
