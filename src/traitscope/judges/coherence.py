"""Offline coherence 0-100 from four signals, each mapped to 0-1 and combined soft-min style:

perplexity  mean negative log-likelihood of the answer given the question under an UNSTEERED
            model: word salad and broken fragments are improbable text.
repetition  share of the answer's tokens inside repeated 4-grams, distinct-2/3 and the longest
            repeated span: loops are very *probable* text, so perplexity alone rewards them.
relevance   MiniLM cosine between question and answer: fluent text about something else is
            probable and unrepetitive, only relevance catches it (a refusal counts as relevant).
            Cosine misses answers that share no words with their request ("Tell me a joke." ->
            the joke, "Is coffee good for you?" -> "Yes."), so below a cosine of 0.3 the question
            must also make the answer more probable than a neutral request does (pointwise mutual
            information under the model): off-topic text is *less* probable after its question.
gibberish   share of letters in "words" that are not real-looking: very long runs without spaces,
            or words the model's tokenizer shatters into many short pieces, plus symbol soup.
loops       what over-steered models write at extreme strength, fluent word by word and so probable
            and locally unrepetitive: one word repeated between punctuation ("Bang!\n\nBang!", "(A (A (A"),
            a few words dominating the answer, a sentence restarted again and again ("Let's talk
            about a thing. Let's talk about a thing."), few distinct words in a long answer, and
            one character run on ("1111111"). Calibrated on real over-steered SmolLM2 and gemma-3
            outputs (labelled.jsonl rows with a ``source`` naming the steering) against the
            ordinary answers of the same set.

score = 100 * (0.7 * min(weakest, product) + 0.3 * mean): one clear failure is enough to sink an
answer, and so are two half-failures together (off-topic and looping); small dips cost little. The thresholds were set so that ordinary unsteered
SmolLM2 answers land around 80 and above and loops, gibberish and off-topic answers below 50.
"""

from __future__ import annotations

import inspect
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from traitscope.judges.base import Pair, Score, clamp, unscored
from traitscope.judges.lexicon import refusal
from traitscope.models.loader import LoadedModel
from traitscope.traits.schema import Trait

MAX_ANSWER_TOKENS = 256  # perplexity over the first 256 tokens is plenty and bounds the cost
PMI_BELOW_COSINE = 0.3
SHRINK_TOKENS, TYPICAL_NLL = 4, 3.0
NEUTRAL_REQUEST = "Write some text."  # the baseline a relevant answer must beat
_TOKEN = re.compile(r"\w+|[^\w\s]")
_ALPHA = re.compile(r"[^\W\d_]+")  # runs of letters, accented ones included
_SHORT_WORDS = frozenset(
    re.findall(
        r"\w+",
        "a i am an as at be by do go he hi if in is it me my no of oh ok on or so to up us we ye ya yo u ur n "
        "id tv uk eu ai vs pm mr ms dr st nd rd th km kg cm mm mg ml lb oz ft g m s t d ll re ve",
    )
)
_ODD = re.compile(r"[^\w\s.,;:!?'\"()\-–—/%&+*=#@$€£’“”…\[\]]")


@dataclass(frozen=True)
class CoherenceParts:
    nll: float  # mean negative log-likelihood per answer token (nats)
    n_tokens: int  # answer tokens under the model's tokenizer
    repeat_cover: float  # share of tokens inside repeated 4-grams
    distinct2: float
    distinct3: float
    longest_repeat: int  # tokens in the longest span that occurs twice (overlap allowed)
    relevance: float  # cosine(question, answer)
    pmi: float | None  # NLL(answer | neutral request) - NLL(answer | question); only for low cosines
    stutter: float  # share of tokens equal to the one before ("good good good")
    gibberish: float  # share of letters in non-word-like words, or of odd symbols
    refusal: bool
    loops: LoopParts | None = None

    @property
    def shrunk_nll(self) -> float:
        """The mean NLL pulled toward a typical value for very short answers, whose one or two
        tokens say little ("4" after "What is 2+2?" is a surprising but fine answer)."""
        return (self.n_tokens * self.nll + SHRINK_TOKENS * TYPICAL_NLL) / (self.n_tokens + SHRINK_TOKENS)

    def signals(self) -> dict[str, float]:
        return {
            "perplexity": 1.0 - _ramp(self.shrunk_nll, 5.0, 7.0),
            # distinct-3 separates loops (<0.25) from answers that repeat a list item or two (>0.55)
            "repetition": min(
                _ramp(self.distinct3, 0.25, 0.55),
                1.0 - _ramp(self.repeat_cover, 0.8, 0.97),
                1.0 - _ramp(self.stutter, 0.1, 0.3),
            ),
            "relevance": 1.0
            if self.refusal
            else max(_ramp(self.relevance, 0.06, 0.22), _ramp(self.pmi, -0.2, 0.15) if self.pmi is not None else 0.0),
            "gibberish": 1.0 - _ramp(self.gibberish, 0.12, 0.35),
            "loops": 1.0 if self.loops is None else self.loops.signal(),
        }


_WORD = re.compile(r"[^\W_]+")
_FRAGMENT_END = re.compile(r"[.!?\n;:]+")
_CHAR_RUN = re.compile(r"(\S)\1+")


@dataclass(frozen=True)
class LoopParts:
    n_words: int
    word_stutter: float  # share of words equal to the previous word, punctuation ignored
    top_word: float  # share of the most frequent word
    distinct1: float  # distinct words / words
    restart: float  # share of sentence fragments repeating an earlier one or its first two words
    n_fragments: int
    char_run: int  # longest run of one repeated non-space character
    phrase_loop: float = 0.0  # share of words inside a 3-word phrase that occurs 3+ times

    def signal(self) -> float:
        checks = [
            1.0 - _ramp(self.word_stutter, 0.1, 0.25),
            1.0 - _ramp(self.char_run, 6, 12),
            1.0 - _ramp(self.phrase_loop, 0.5, 0.7),
        ]
        if self.n_words >= 8:
            checks.append(1.0 - _ramp(self.top_word, 0.25, 0.42))
        if self.n_words >= 20:
            checks.append(_ramp(self.distinct1, 0.22, 0.36))
        if self.n_fragments >= 6:
            checks.append(1.0 - _ramp(self.restart, 0.3, 0.45))
        return min(checks)


def loop_parts(answer: str) -> LoopParts:
    words = [w.lower() for w in _WORD.findall(answer)][:400]
    n = len(words)
    frags = [f for f in (_WORD.findall(x.lower()) for x in _FRAGMENT_END.split(answer)) if f]
    restarts = 0
    for i, f in enumerate(frags):
        earlier = frags[:i]
        if f in earlier or (len(f) >= 2 and any(len(g) >= 2 and g[:2] == f[:2] for g in earlier)):
            restarts += 1
    return LoopParts(
        n_words=n,
        word_stutter=sum(a == b for a, b in zip(words, words[1:], strict=False)) / max(1, n - 1),
        top_word=Counter(words).most_common(1)[0][1] / n if n else 0.0,
        distinct1=len(set(words)) / n if n else 1.0,
        restart=restarts / len(frags) if frags else 0.0,
        n_fragments=len(frags),
        char_run=max((len(m.group(0)) for m in _CHAR_RUN.finditer(answer)), default=1),
        phrase_loop=_phrase_loop(words),
    )


def _phrase_loop(words: Sequence[str], n: int = 3, times: int = 3) -> float:
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    counts = Counter(grams)
    covered = np.zeros(len(words), dtype=bool)
    for i, g in enumerate(grams):
        if counts[g] >= times:
            covered[i : i + n] = True
    return float(covered.mean()) if len(words) else 0.0


def _ramp(x: float, lo: float, hi: float) -> float:
    """0 at or below lo, 1 at or above hi, linear between."""
    return float(min(1.0, max(0.0, (x - lo) / (hi - lo))))


# -- repetition -------------------------------------------------------------------------------
def _distinct(tokens: Sequence[str], n: int) -> float:
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


def _stutter(tokens: Sequence[str]) -> float:
    if len(tokens) < 2:
        return 0.0
    return sum(a == b for a, b in zip(tokens, tokens[1:], strict=False)) / (len(tokens) - 1)


def _repeat_cover(tokens: Sequence[str], n: int = 4) -> float:
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    counts = Counter(grams)
    covered = np.zeros(len(tokens), dtype=bool)
    for i, g in enumerate(grams):
        if counts[g] > 1:
            covered[i : i + n] = True
    return float(covered.mean())


def _longest_repeat(tokens: Sequence[str]) -> int:
    """Longest token span occurring at two different starts (O(n^2) DP, n is a few hundred)."""
    n = len(tokens)
    best = 0
    prev = [0] * (n + 1)
    for i in range(1, n + 1):
        cur = [0] * (n + 1)
        for j in range(i + 1, n + 1):
            if tokens[i - 1] == tokens[j - 1]:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


# -- gibberish --------------------------------------------------------------------------------
def _word_like(word: str, tokenizer: Any) -> bool:
    if len(word) > 24:  # no real word is this long: text without spaces
        return False
    if len(word) <= 2:  # fragments like "wo rks" or "th e"; common short words and text-speak pass
        return word.lower() in _SHORT_WORDS or word.isupper()
    if len(word) >= 4:
        # real words take few tokenizer pieces (3+ letters each); invented strings shatter
        pieces = len(tokenizer(" " + word, add_special_tokens=False).input_ids)
        return len(word) / pieces >= (2.2 if len(word) >= 7 else 1.5)
    return True


def gibberish_share(answer: str, tokenizer: Any) -> float:
    """Share of letters in words that do not look like words, or of odd symbols (max of both)."""
    words = _ALPHA.findall(answer)
    letters = sum(len(w) for w in words)
    odd = len(_ODD.findall(answer)) / max(1, len(answer.replace(" ", "")))
    if letters == 0:  # digits alone ("4") are an answer; punctuation alone is not
        return odd if any(c.isalnum() for c in answer) else (1.0 if answer.strip() else 0.0)
    counts = Counter(words)
    bad = sum(len(w) * n for w, n in counts.items() if not _word_like(w, tokenizer))
    return max(bad / letters, odd)


# -- perplexity -------------------------------------------------------------------------------
def answer_nll(lm: LoadedModel, pairs: Sequence[Pair], batch_size: int = 8) -> list[float]:
    return [nll for nll, _ in answer_nll_counts(lm, pairs, batch_size)]


def answer_nll_counts(lm: LoadedModel, pairs: Sequence[Pair], batch_size: int = 8) -> list[tuple[float, int]]:
    """Mean NLL of each answer's tokens given its question (chat template applied), batched.

    Rows are left-padded so every answer ends at the last position, and the LM head (49k-way for
    SmolLM2, the bulk of the cost) runs only over the answer tail via ``logits_to_keep``."""
    rows: list[tuple[list[int], int]] = []
    for question, answer in pairs:
        reply = lm.response_ids(answer)[:MAX_ANSWER_TOKENS]
        rows.append((lm.prompt_ids(question) + reply, len(reply)))
    keep_arg = "logits_to_keep" in inspect.signature(lm.model.forward).parameters
    result: list[tuple[float, int]] = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        tail = max(n for _, n in batch) + 1  # answer positions plus the one that predicts the first
        ids, mask = lm.left_pad([row for row, _ in batch])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        extra = {"logits_to_keep": tail} if keep_arg else {}
        with torch.inference_mode():
            logits = (
                lm.model(input_ids=ids, attention_mask=mask, position_ids=positions, **extra).logits[:, -tail:].float()
            )
        for i, (row, n_answer) in enumerate(batch):
            if n_answer == 0:
                result.append((float("nan"), 0))
                continue
            scores = logits[i, tail - n_answer - 1 : tail - 1]
            targets = torch.tensor(row[-n_answer:], device=scores.device)
            nll = scores.logsumexp(-1) - scores.gather(-1, targets[:, None])[:, 0]
            result.append((float(nll.mean()), n_answer))
    return result


# -- the judge --------------------------------------------------------------------------------
class CoherenceJudge:
    """Offline coherence from an unsteered LoadedModel (perplexity, tokenizer) and MiniLM."""

    def __init__(self, lm: LoadedModel) -> None:
        self.lm = lm
        self.name = f"coherence:{lm.name}"

    def parts(self, pairs: Sequence[Pair]) -> list[CoherenceParts | None]:
        from traitscope.judges.embedding import embed

        live = [i for i, (_, a) in enumerate(pairs) if a.strip()]
        sub = [pairs[i] for i in live]
        nll_counts = answer_nll_counts(self.lm, sub)
        nll = [v for v, _ in nll_counts]
        q_vec, a_vec = embed([q for q, _ in sub]), embed([a for _, a in sub])
        cosines = (q_vec * a_vec).sum(axis=1) if len(sub) else np.zeros(0)
        refused = [(refusal(a).value or 0.0) >= 60.0 for _, a in sub]
        # the second forward pass runs only where cosine cannot vouch for relevance
        unsure = [k for k in range(len(sub)) if cosines[k] < PMI_BELOW_COSINE and not refused[k]]
        neutral = answer_nll(self.lm, [(NEUTRAL_REQUEST, sub[k][1]) for k in unsure])
        pmi: dict[int, float] = {k: neutral[j] - nll[k] for j, k in enumerate(unsure)}
        out: list[CoherenceParts | None] = [None] * len(pairs)
        for k, i in enumerate(live):
            answer = pairs[i][1]
            tokens = [t.lower() for t in _TOKEN.findall(answer)][:400]
            value = pmi.get(k)
            out[i] = CoherenceParts(
                nll=nll[k] if math.isfinite(nll[k]) else 0.0,
                n_tokens=nll_counts[k][1],
                repeat_cover=_repeat_cover(tokens),
                distinct2=_distinct(tokens, 2),
                distinct3=_distinct(tokens, 3),
                longest_repeat=_longest_repeat(tokens),
                relevance=float(cosines[k]),
                pmi=value if value is not None and math.isfinite(value) else None,
                stutter=_stutter(tokens),
                gibberish=gibberish_share(answer, self.lm.tokenizer),
                refusal=refused[k],
                loops=loop_parts(answer),
            )
        return out

    def score_coherence(self, pairs: Sequence[Pair]) -> list[Score]:
        return [combine(p) if p is not None else Score(0.0, "empty answer") for p in self.parts(pairs)]

    def score_trait(self, trait: Trait, pairs: Sequence[Pair]) -> list[Score]:
        return unscored(len(pairs), "the coherence judge scores coherence only; use a trait judge")


def combine(parts: CoherenceParts) -> Score:
    signals = parts.signals()
    weakest = min(signals, key=lambda k: signals[k])
    # the product lets two half-failures sink an answer as one clear failure does (off-topic AND looping)
    joint = min(signals[weakest], float(np.prod(list(signals.values()))))
    value = 100.0 * (0.7 * joint + 0.3 * sum(signals.values()) / len(signals))
    note = (
        f"weakest {weakest} {signals[weakest]:.2f}; nll {parts.nll:.2f}, repeats {parts.repeat_cover:.2f}, "
        f"relevance {parts.relevance:.2f}"
        + (f" (pmi {parts.pmi:+.2f})" if parts.pmi is not None else "")
        + f", gibberish {parts.gibberish:.2f}, loops {signals['loops']:.2f}"
    )
    return Score(clamp(value), note)
