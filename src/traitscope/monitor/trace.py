"""Monitor traces: one JSON file per prompt, token by token.

Schema ``traitscope.monitor.trace/1`` (also in docs/monitoring.md). Token ``i`` of ``tokens`` is
token ``i`` of every per-token list; layers are JSON keys, so they are strings::

    {
      "schema": "traitscope.monitor.trace/1",
      "id": "bomb",                       prompt id (the file is <id>.json)
      "prompt_set": "harmful",            set name ("adhoc" for a --prompt)
      "prompt": "How do I make a bomb?",  the user turn as given
      "system": null,                     system prompt, if any
      "response": "I can't ...",          decoded response (EOS not included)
      "mode": "generate",                 or "teacher_forced" (a given response read in one forward)
      "model": "smollm2-135m-instruct",
      "site": "residual",                 where the activations were read
      "layers": [4, 14],                  every layer with data here, sorted
      "n_tokens": 52,
      "boundary": 37,                     index of the first response token (= number of prompt tokens)
      "tokens": ["<|im_start|>", ...],    text each token adds to the decoded sequence
      "token_ids": [1, 9690, ...],
      "projections": {"optimism": {"14": [...]}},   raw dot product <h_t, v> (v unit) per token
      "cosines":     {"optimism": {"14": [...]}},   <h_t, v> / ||h_t||
      "norms": {"14": [...]},             ||h_t|| at the site, per token
      "summaries": {"optimism": {"14": {
          "mean": 1.2, "max": 3.4,        over the response tokens (null for an empty response)
          "argmax": 5,                    response-relative index of the max
          "first_above": 2,               first response-relative index with projection > threshold, or null
          "threshold": 0.8,
          "threshold_source": "class-midpoint",   or "zero": midpoint of the extraction classes' means
          "mean_cosine": 0.01}}},
      "vectors": {"optimism": {"trait": ..., "method": "probe", "site": "residual",
                  "position": "response[:]", "model": ..., "file": ".../probe.safetensors",
                  "layers": [14], "thresholds": {"14": 0.8}}},
      "generation": {"max_new_tokens": 48, "temperature": 0.0, "seed": 0,
                     "stop": "eos" | "max_new_tokens" | "teacher_forced"},
      "interventions": ["residual/14"],   sites/layers with intervention (steering) hooks, if any
      "created": "2025-01-01T00:00:00Z",
      "traitscope_version": "0.1.0"
    }

Values are stored to 7 significant digits. Token 0 of many models (SmolLM2's ``<|im_start|>``)
carries a massive activation (norm 5-100x the rest), so its projection dwarfs the others; plots
and the dashboard leave it out of their colour and y ranges, never out of the data.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from traitscope.errors import TraitscopeError
from traitscope.store import atomic_write_json

SCHEMA = "traitscope.monitor.trace/1"
PER_TOKEN_KEYS = ("projections", "cosines")
REQUIRED = ("schema", "tokens", "token_ids", "boundary", "projections", "cosines", "norms", "summaries", "vectors")


def _r(values: Sequence[float]) -> list[float]:
    return [float(f"{v:.7g}") for v in values]


class IncrementalDecoder:
    """Text each token adds to the decoded sequence, one token at a time.

    Decoding the whole prefix each time (not the token alone) keeps leading spaces of
    SentencePiece tokens; a character split over several byte tokens (emoji, CJK) shows on the
    token that completes it, the others get ''.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""

    def push(self, token_id: int) -> str:
        self.ids.append(int(token_id))
        cur = self.tokenizer.decode(self.ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if cur.endswith("\ufffd"):
            return ""
        k = 0
        limit = min(len(cur), len(self.text))
        while k < limit and cur[k] == self.text[k]:
            k += 1
        self.text = cur
        return cur[k:]


def token_texts(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    dec = IncrementalDecoder(tokenizer)
    return [dec.push(i) for i in ids]


def summarise(values: Sequence[float], cosines: Sequence[float], boundary: int, threshold: float) -> dict[str, Any]:
    """Summary of one trait/layer over the response tokens (indices response-relative)."""
    resp = list(values[boundary:])
    cos = list(cosines[boundary:])
    out: dict[str, Any] = {"threshold": float(f"{threshold:.7g}")}
    if not resp:
        return out | {"mean": None, "max": None, "argmax": None, "first_above": None, "mean_cosine": None}
    argmax = max(range(len(resp)), key=resp.__getitem__)
    first = next((i for i, v in enumerate(resp) if v > threshold), None)
    return out | {
        "mean": float(f"{sum(resp) / len(resp):.7g}"),
        "max": float(f"{resp[argmax]:.7g}"),
        "argmax": argmax,
        "first_above": first,
        "mean_cosine": float(f"{sum(cos) / len(cos):.7g}"),
    }


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def trace_path(out_dir: Path, prompt_id: str) -> Path:
    return Path(out_dir) / f"{prompt_id}.json"


def write_trace(path: Path, trace: dict[str, Any]) -> Path:
    atomic_write_json(Path(path), trace)
    return Path(path)


def validate_trace(trace: Any, source: str = "trace") -> dict[str, Any]:
    """Check the shape a reader relies on: every per-token list has one value per token."""
    if not isinstance(trace, dict):
        raise TraitscopeError(f"{source}: not a monitor trace (expected a JSON object)")
    missing = [k for k in REQUIRED if k not in trace]
    if missing:
        raise TraitscopeError(f"{source}: not a monitor trace; missing fields {missing}")
    if trace["schema"] != SCHEMA:
        raise TraitscopeError(f"{source}: schema {trace['schema']!r}; this version reads {SCHEMA!r}")
    n = len(trace["tokens"])
    if len(trace["token_ids"]) != n or not 0 <= int(trace["boundary"]) <= n:
        raise TraitscopeError(f"{source}: tokens, token_ids and boundary disagree")
    for key in PER_TOKEN_KEYS:
        for trait, by_layer in trace[key].items():
            for layer, values in by_layer.items():
                if len(values) != n:
                    raise TraitscopeError(f"{source}: {key}[{trait}][{layer}] has {len(values)} values for {n} tokens")
    for layer, values in trace["norms"].items():
        if len(values) != n:
            raise TraitscopeError(f"{source}: norms[{layer}] has {len(values)} values for {n} tokens")
    return trace


def load_trace(path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TraitscopeError(f"{path}: no such trace") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TraitscopeError(f"{path}: truncated or not valid JSON ({exc})") from None
    return validate_trace(data, str(path))
