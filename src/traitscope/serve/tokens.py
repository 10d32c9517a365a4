"""Tokens as OpenAI reports them: chat prompts to ids, token ids to (text, UTF-8 bytes), and
log-probability entries with their top alternatives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from traitscope.models.loader import LoadedModel
from traitscope.serve.protocol import ChatMessage


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte <-> printable-character table used by byte-level BPE vocabularies."""
    keep = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = keep[:]
    n = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(keep, map(chr, chars), strict=True))


_UNICODE_TO_BYTE = {c: b for b, c in _bytes_to_unicode().items()}


@dataclass
class TokenText:
    """Turns token ids into (text, bytes); byte-level vocabularies give exact bytes even for a
    token holding half of a UTF-8 character."""

    tokenizer: Any
    byte_level: bool = field(init=False)
    special: frozenset[int] = field(init=False)

    def __post_init__(self) -> None:
        decoder = getattr(getattr(self.tokenizer, "backend_tokenizer", None), "decoder", None)
        self.byte_level = "ByteLevel" in type(decoder).__name__ or "ByteLevel" in repr(decoder)[:200]
        self.special = frozenset(self.tokenizer.all_special_ids)

    def __call__(self, token_id: int) -> tuple[str, list[int]]:
        if self.byte_level and token_id not in self.special:
            piece = self.tokenizer.convert_ids_to_tokens(token_id)
            if isinstance(piece, str) and all(c in _UNICODE_TO_BYTE for c in piece):
                raw = bytes(_UNICODE_TO_BYTE[c] for c in piece)
                return raw.decode("utf-8", errors="replace"), list(raw)
        text = self.tokenizer.decode([token_id])
        return text, list(text.encode("utf-8"))


def logprob_entry(logp: torch.Tensor, token: int, k: int, token_text: TokenText) -> dict[str, Any]:
    """OpenAI's ``logprobs.content[i]``: the chosen token and the ``k`` most likely ones."""
    text, raw = token_text(token)
    top: list[dict[str, Any]] = []
    if k > 0:
        values, ids = logp.topk(k)
        for value, tid in zip(values.tolist(), ids.tolist(), strict=True):
            t_text, t_raw = token_text(tid)
            top.append({"token": t_text, "logprob": value, "bytes": t_raw})
    return {"token": text, "logprob": float(logp[token]), "bytes": raw, "top_logprobs": top}


def chat_prompt_ids(lm: LoadedModel, messages: list[ChatMessage]) -> list[int]:
    """The chat template applied to the messages (plain concatenation for a base model)."""
    turns = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in messages]
    if lm.uses_template():
        text = lm.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        return list(lm.tokenizer(text, add_special_tokens=False).input_ids)
    text = "\n\n".join(t["content"] for t in turns)
    return list(lm.tokenizer(text).input_ids)


def context_length(lm: LoadedModel) -> int:
    config = lm.model.config
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(getattr(text_config, "max_position_embeddings", 0) or 2048)


def first_stop(text: str, stops: list[str]) -> int:
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(hits) if hits else -1


def held_back(text: str, stops: list[str]) -> int:
    """How many trailing characters could still become the start of a stop sequence."""
    keep = 0
    for s in stops:
        for n in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:n]):
                keep = max(keep, n)
                break
    return keep
