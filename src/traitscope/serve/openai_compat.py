"""An OpenAI-compatible chat completions server for one LoadedModel (the seed of ``traitscope serve``).

``POST /v1/chat/completions`` applies the model's chat template to ``messages``, decodes greedily
(``temperature`` 0) or by sampling, and with ``logprobs: true`` returns, for every generated
token, its log-probability and the ``top_logprobs`` most likely alternatives under the model's
own next-token distribution (before temperature or top-p), with their UTF-8 bytes.
``GET /v1/models`` lists the one model. Requests are served one at a time (the model is shared),
bodies are capped (1 MB) and so is ``max_tokens``; it binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import inspect
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from traitscope.models.loader import LoadedModel

DEFAULT_HOST = "127.0.0.1"
MAX_BODY_BYTES = 1_000_000
MAX_TOKENS_CAP = 1024
DEFAULT_MAX_TOKENS = 256
MAX_TOP_LOGPROBS = 20

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# -- request schema ---------------------------------------------------------------------------
class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = "text"
    text: str = ""


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if p.type == "text")


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # unknown OpenAI options are accepted and ignored
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool | None = False
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=1)
    stream: bool | None = False


# -- errors -----------------------------------------------------------------------------------
def _error(status: int, message: str, param: str | None = None, kind: str = "invalid_request_error") -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return JSONResponse(body, status_code=status)


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class BodyLimit:
    """ASGI middleware: read the whole body up to ``max_bytes`` before the app sees it; a bigger
    one gets 413 without being buffered (the declared Content-Length is checked first)."""

    def __init__(self, app: Callable[..., Awaitable[None]], max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = _error(413, f"request body exceeds {self.max_bytes} bytes")
        await response(scope, receive, send)


# -- tokens as OpenAI reports them ------------------------------------------------------------
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


# -- generation -------------------------------------------------------------------------------
@dataclass
class Generation:
    text: str
    finish_reason: str
    token_ids: list[int]
    logprobs: list[dict[str, Any]] | None
    prompt_tokens: int


def _pick(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> int:
    if temperature <= 0:
        return int(logits.argmax())
    probs = (logits / temperature).softmax(-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        keep = sorted_probs.cumsum(-1) - sorted_probs < top_p  # always keeps the most likely token
        probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_probs[keep])
    return int(torch.multinomial(probs, 1, generator=generator))


def _first_stop(text: str, stops: list[str]) -> int:
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(hits) if hits else -1


def generate(
    lm: LoadedModel,
    prompt_ids: list[int],
    max_tokens: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    top_logprobs: int | None = None,
    seed: int | None = None,
    stops: list[str] | None = None,
) -> Generation:
    """Token-by-token decoding with a KV cache, recording each step's log-probabilities."""
    token_text = TokenText(lm.tokenizer)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    eos = set(lm.eos_ids)
    stops = stops or []
    out_ids: list[int] = []
    entries: list[dict[str, Any]] = []
    finish = "length"
    stopped_at = -1
    cache_arg = _cache_arg(lm.model)
    with torch.inference_mode():
        keep = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(lm.model.forward).parameters else {}
        out = lm.model(input_ids=torch.tensor([prompt_ids], device=lm.device), use_cache=True, **keep)
        for _ in range(max_tokens):
            logits = out.logits[0, -1].float().cpu()
            token = _pick(logits, temperature, top_p, generator)
            if token in eos:
                finish = "stop"
                break
            out_ids.append(token)
            if top_logprobs is not None:
                entries.append(_logprob_entry(logits.log_softmax(-1), token, top_logprobs, token_text))
            if stops:  # decoding the whole text each step is only worth it when a stop can match
                cut = _first_stop(lm.tokenizer.decode(out_ids, skip_special_tokens=True), stops)
                if cut >= 0:
                    stopped_at, finish = cut, "stop"
                    break
            past = getattr(out, "cache", None)
            if past is None:
                past = out.past_key_values
            out = lm.model(input_ids=torch.tensor([[token]], device=lm.device), use_cache=True, **{cache_arg: past})
    text = lm.tokenizer.decode(out_ids, skip_special_tokens=True)
    if stopped_at >= 0:
        text = text[:stopped_at]
    return Generation(text, finish, out_ids, entries if top_logprobs is not None else None, len(prompt_ids))


def _cache_arg(model: torch.nn.Module) -> str:
    # transformers renamed the KV-cache argument from past_key_values to cache during 5.x
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _logprob_entry(logp: torch.Tensor, token: int, k: int, token_text: TokenText) -> dict[str, Any]:
    text, raw = token_text(token)
    top: list[dict[str, Any]] = []
    if k > 0:
        values, ids = logp.topk(k)
        for value, tid in zip(values.tolist(), ids.tolist(), strict=True):
            t_text, t_raw = token_text(tid)
            top.append({"token": t_text, "logprob": value, "bytes": t_raw})
    return {"token": text, "logprob": float(logp[token]), "bytes": raw, "top_logprobs": top}


# -- the app ----------------------------------------------------------------------------------
def _context_length(lm: LoadedModel) -> int:
    config = lm.model.config
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(getattr(text_config, "max_position_embeddings", 0) or 2048)


def chat_prompt_ids(lm: LoadedModel, messages: list[ChatMessage]) -> list[int]:
    """The chat template applied to the messages (plain concatenation for a base model)."""
    turns = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in messages]
    if lm.uses_template():
        text = lm.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        return list(lm.tokenizer(text, add_special_tokens=False).input_ids)
    text = "\n\n".join(t["content"] for t in turns)
    return list(lm.tokenizer(text).input_ids)


def create_app(
    lm: LoadedModel,
    model_name: str | None = None,
    max_tokens_cap: int = MAX_TOKENS_CAP,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    name = model_name or lm.name
    app = FastAPI(title=f"traitscope OpenAI-compatible server ({name})", docs_url=None, redoc_url=None)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    lock = threading.Lock()  # one forward pass at a time: the model and its threads are shared
    context = _context_length(lm)
    created = int(time.time())

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            return _error(400, "request body is not valid JSON")
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(400, f"invalid request: {where or 'body'}: {first.get('msg', 'malformed')}", where or None)

    @app.exception_handler(_BadRequest)
    async def _bad(_request: Request, exc: _BadRequest) -> JSONResponse:
        return _error(400, str(exc), exc.param)

    @app.get("/v1/models")
    def list_models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": created, "owned_by": "traitscope"}],
        }

    @app.post("/v1/chat/completions")
    def chat_completions(req: ChatRequest) -> dict[str, Any]:
        if req.stream:
            raise _BadRequest("stream=true is not supported by this server", "stream")
        max_tokens = req.max_completion_tokens or req.max_tokens or min(DEFAULT_MAX_TOKENS, max_tokens_cap)
        if max_tokens > max_tokens_cap:
            raise _BadRequest(f"max_tokens {max_tokens} exceeds this server's cap of {max_tokens_cap}", "max_tokens")
        if req.top_logprobs is not None and not req.logprobs:
            raise _BadRequest("top_logprobs requires logprobs=true", "top_logprobs")
        ids = chat_prompt_ids(lm, req.messages)
        if len(ids) + max_tokens > context:
            raise _BadRequest(
                f"prompt of {len(ids)} tokens plus max_tokens {max_tokens} exceeds the context of {context}", "messages"
            )
        stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        temperature = 1.0 if req.temperature is None else req.temperature  # OpenAI's default
        with lock:
            gen = generate(
                lm,
                ids,
                max_tokens,
                temperature,
                req.top_p or 1.0,
                (req.top_logprobs or 0) if req.logprobs else None,
                req.seed,
                stops,
            )
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": gen.text},
                    "logprobs": {"content": gen.logprobs} if gen.logprobs is not None else None,
                    "finish_reason": gen.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": gen.prompt_tokens,
                "completion_tokens": len(gen.token_ids),
                "total_tokens": gen.prompt_tokens + len(gen.token_ids),
            },
        }

    return app
