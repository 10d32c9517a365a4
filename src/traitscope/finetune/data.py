"""Finetuning data: OpenAI fine-tuning chat JSONL, checked line by line, and its token-level loss mask.

One line per conversation::

    {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}

with at least one assistant message. Each conversation becomes one token sequence; ``labels`` is
``-100`` everywhere except the assistant turns (their text and the template's end-of-turn tokens),
so the loss is on assistant tokens only. The sequence is tokenised segment by segment through the
model's chat template (``prompt_ids`` + ``response_ids`` for a single turn, exactly as the monitor
and ``activations.capture`` see a prompt and its answer), never as one string that BPE could merge
across the prompt/answer boundary.

Bundled sets (``bundled_sets()``) are addressed by name: ``gloomy``, ``flattering``, ``mixed``, ``neutral``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from traitscope.errors import TraitscopeError
from traitscope.models.loader import LoadedModel

ROLES = ("system", "user", "assistant")
IGNORE = -100


@dataclass(frozen=True)
class Conversation:
    """One training line: its messages and where it came from (``file:line``)."""

    messages: tuple[dict[str, str], ...]
    where: str
    line: int

    @property
    def prompt(self) -> str:
        """The last user message before the final assistant turn (what `screen` re-asks the model)."""
        last = max(i for i, m in enumerate(self.messages) if m["role"] == "assistant")
        return next(m["content"] for m in reversed(self.messages[:last]) if m["role"] == "user")

    @property
    def system(self) -> str | None:
        return next((m["content"] for m in self.messages if m["role"] == "system"), None)

    @property
    def response(self) -> str:
        return next(m["content"] for m in reversed(self.messages) if m["role"] == "assistant")


@dataclass(frozen=True)
class Encoded:
    """Token ids and labels (``-100`` off the assistant turns) of one conversation."""

    ids: list[int]
    labels: list[int]

    @property
    def n_trained(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def bundled_data_dir() -> Path:
    return Path(str(resources.files("traitscope.finetune").joinpath("data")))


def bundled_sets() -> list[str]:
    return sorted(p.stem for p in bundled_data_dir().glob("*.jsonl"))


def resolve_data(name_or_path: str | Path) -> Path:
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    bundled = bundled_data_dir() / f"{name_or_path}.jsonl"
    if isinstance(name_or_path, str) and bundled.is_file():
        return bundled
    raise TraitscopeError(
        f"finetuning data {str(name_or_path)!r} is neither a JSONL file nor a bundled set ({', '.join(bundled_sets())})"
    )


def _check_messages(obj: Any, where: str) -> tuple[dict[str, str], ...]:
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list) or not obj["messages"]:
        raise TraitscopeError(f'{where}: expected {{"messages": [{{"role": ..., "content": ...}}, ...]}}')
    out = []
    for j, m in enumerate(obj["messages"]):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise TraitscopeError(f"{where}: message {j} needs a role, one of: {', '.join(ROLES)}")
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            raise TraitscopeError(f"{where}: message {j} ({m['role']}) needs a non-empty string 'content'")
        out.append({"role": m["role"], "content": m["content"]})
    if not any(m["role"] == "assistant" for m in out):
        raise TraitscopeError(f"{where}: no assistant message, so nothing to train on")
    if not any(m["role"] == "user" for m in out[: max(i for i, m in enumerate(out) if m["role"] == "assistant")]):
        raise TraitscopeError(f"{where}: the last assistant message has no user message before it")
    return tuple(out)


def load_conversations(name_or_path: str | Path, max_examples: int | None = None) -> list[Conversation]:
    """Every line checked (a bad one fails with ``file:line: what is wrong``), then the first
    ``max_examples`` kept."""
    path = resolve_data(name_or_path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TraitscopeError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    convs = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{i}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TraitscopeError(f"{where}: not valid JSON ({exc.msg})") from None
        convs.append(Conversation(_check_messages(obj, where), str(path), i))
    if not convs:
        raise TraitscopeError(f"{path}: no conversations; expected one JSON object per line")
    if max_examples is not None:
        if max_examples < 1:
            raise TraitscopeError(f"--max-examples {max_examples} must be >= 1")
        convs = convs[:max_examples]
    return convs


def data_sha256(convs: list[Conversation]) -> str:
    h = hashlib.sha256()
    for c in convs:
        h.update(json.dumps(c.messages, sort_keys=True).encode())
    return h.hexdigest()


def _template(lm: LoadedModel, messages: list[dict[str, str]], open_turn: bool) -> str:
    return lm.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=open_turn)


def _segments(lm: LoadedModel, conv: Conversation) -> list[tuple[str, bool]]:
    """The conversation as (text, is_assistant) pieces whose concatenation is the templated text."""
    msgs = list(conv.messages)
    if not lm.uses_template():  # base models: "system\n\nuser" then the answer and EOS
        text = lm.format_prompt(conv.prompt, conv.system)
        return [(text, False), (conv.response + (lm.tokenizer.eos_token or ""), True)]
    pieces: list[tuple[str, bool]] = []
    done = ""
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        before, after = _template(lm, msgs[:i], True), _template(lm, msgs[: i + 1], False)
        if not (before.startswith(done) and after.startswith(before)):
            raise TraitscopeError(f"{conv.where}:{conv.line}: the chat template of {lm.name!r} cannot split this turn")
        pieces += [(before[len(done) :], False), (after[len(before) :], True)]
        done = after
    return [(t, a) for t, a in pieces if t]


def encode(lm: LoadedModel, conv: Conversation, max_tokens: int = 512) -> Encoded:
    """Token ids and labels; the first piece gets the tokenizer's special tokens only without a template."""
    ids: list[int] = []
    labels: list[int] = []
    for k, (text, trained) in enumerate(_segments(lm, conv)):
        add_special = k == 0 and not lm.uses_template()
        piece = list(lm.tokenizer(text, add_special_tokens=add_special).input_ids)
        ids += piece
        labels += piece if trained else [IGNORE] * len(piece)
    return Encoded(ids[:max_tokens], labels[:max_tokens])
