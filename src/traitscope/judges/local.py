"""The rubric judge run through a local instruct model, reading its distribution over numbers.

Tokenizers that spell every integer 0-100 as one token (with or without a leading space) need
only the next-token distribution, exactly as the API judge reads ``top_logprobs``. Many small
models (SmolLM2, Llama-2, Gemma, Qwen) split numbers into single digits, where the next token
alone cannot tell "1" from "100"; for those the probability of each whole number
``P(digits) * P(next token is not another digit)`` is computed exactly, in ONE forward pass: the
prompt followed by every prefix of every number, with a tree-shaped attention mask so that each
prefix token sees only the prompt and its own ancestors.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from traitscope.judges.base import Pair, Score
from traitscope.judges.prompts import MIN_MASS, coherence_prompt, trait_prompt, weighted_score
from traitscope.models.loader import LoadedModel
from traitscope.traits.schema import Trait

_TRIE_KEY = "judge_number_trie"


@dataclass(frozen=True)
class NumberTrie:
    """How a tokenizer spells the integers 0-100, as token sequences sharing prefixes."""

    numbers: dict[tuple[int, ...], int]  # token sequence -> the integer it spells
    nodes: list[tuple[int, ...]]  # every non-empty prefix of every sequence, shortest first
    digit_start: torch.Tensor  # bool over the vocabulary: tokens that would extend a number

    @property
    def single_token(self) -> bool:
        return all(len(seq) == 1 for seq in self.numbers)


def number_trie(lm: LoadedModel) -> NumberTrie:
    """Build (once per model, kept in ``lm.extra``) the token spellings of 0-100."""
    cached = lm.extra.get(_TRIE_KEY)
    if cached is not None:
        return cached
    tok = lm.tokenizer
    numbers: dict[tuple[int, ...], int] = {}
    for n in range(101):
        for text in (str(n), f" {n}"):
            seq = tuple(tok(text, add_special_tokens=False).input_ids)
            if seq and tok.decode(list(seq)).strip() == str(n):
                numbers.setdefault(seq, n)
    nodes = sorted({seq[:k] for seq in numbers for k in range(1, len(seq) + 1)}, key=lambda s: (len(s), s))
    vocab = lm.model.get_output_embeddings().weight.shape[0]
    digit_start = torch.zeros(vocab, dtype=torch.bool)
    for i in range(min(vocab, len(tok))):
        text = tok.decode([i])
        digit_start[i] = bool(text) and text[0].isdigit()
    trie = NumberTrie(numbers, nodes, digit_start)
    lm.extra[_TRIE_KEY] = trie
    return trie


def _tree_inputs(prompt: list[int], trie: NumberTrie, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Token ids, position ids and an additive 4-D mask for prompt + all trie prefixes."""
    p, t = len(prompt), len(trie.nodes)
    index = {node: p + k for k, node in enumerate(trie.nodes)}
    ids = torch.tensor([prompt + [node[-1] for node in trie.nodes]])
    positions = torch.tensor([list(range(p)) + [p + len(node) - 1 for node in trie.nodes]])
    allowed = torch.zeros((p + t, p + t), dtype=torch.bool)
    allowed[:p, :p] = torch.tril(torch.ones((p, p), dtype=torch.bool))
    for node in trie.nodes:
        row = index[node]
        allowed[row, :p] = True
        for k in range(1, len(node) + 1):  # ancestors and itself
            allowed[row, index[node[:k]]] = True
    mask = torch.zeros((p + t, p + t), dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    return ids, positions, mask[None, None]


def number_distribution(lm: LoadedModel, prompt_ids: list[int]) -> list[tuple[int, float]]:
    """(integer, probability) for 0-100 as the model's answer to a prompt (may sum to < 1)."""
    trie = number_trie(lm)
    device = lm.device
    with torch.inference_mode():
        if trie.single_token:
            extra = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(lm.model.forward).parameters else {}
            logits = lm.model(input_ids=torch.tensor([prompt_ids], device=device), **extra).logits[0, -1]
            probs = logits.float().softmax(-1).cpu()
            return [(n, float(probs[seq[0]])) for seq, n in trie.numbers.items()]
        dtype = next(lm.model.parameters()).dtype
        ids, positions, mask = _tree_inputs(prompt_ids, trie, dtype)
        keep = len(trie.nodes) + 1  # the last prompt position (the root) and every trie node
        extra = {"logits_to_keep": keep} if "logits_to_keep" in inspect.signature(lm.model.forward).parameters else {}
        out = lm.model(
            input_ids=ids.to(device), position_ids=positions.to(device), attention_mask=mask.to(device), **extra
        )
        logp = out.logits[0, -keep:].float().log_softmax(-1).cpu()
    row = {node: 1 + k for k, node in enumerate(trie.nodes)}
    root = 0
    stop = ~trie.digit_start[: logp.shape[1]]
    result: list[tuple[int, float]] = []
    for seq, n in trie.numbers.items():
        total = float(logp[root, seq[0]])
        for k in range(1, len(seq)):
            total += float(logp[row[seq[:k]], seq[k]])
        # the number ends here: the next token must not add another digit
        end = float(logp[row[seq]][stop].exp().sum())
        result.append((n, math.exp(total) * end))
    return result


class LocalJudge:
    """The API judge's rubric prompts, scored by a local instruct model's number distribution."""

    def __init__(self, lm: LoadedModel, min_mass: float = MIN_MASS) -> None:
        self.lm = lm
        self.min_mass = min_mass
        self.name = f"local:{lm.name}"

    def _score(self, prompt: str) -> Score:
        return weighted_score(number_distribution(self.lm, self.lm.prompt_ids(prompt)), self.min_mass)

    def score_trait(self, trait: Trait, pairs: Sequence[Pair]) -> list[Score]:
        return [self._score(trait_prompt(trait, q, a)) for q, a in pairs]

    def score_coherence(self, pairs: Sequence[Pair]) -> list[Score]:
        return [self._score(coherence_prompt(q, a)) for q, a in pairs]
