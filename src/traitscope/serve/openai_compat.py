"""``traitscope serve``: an OpenAI-compatible chat-completions server over one LoadedModel, with
steering, monitoring and conditional steering per request (the ``traitscope`` request field).

``POST /v1/chat/completions`` (with or without ``stream: true``) applies the chat template to
``messages`` and queues the request with the :class:`~traitscope.serve.batcher.Batcher`, which
generates concurrent requests as rows of one batch. ``GET /v1/models`` lists the model. Bad
requests get OpenAI-shaped 4xx errors whose ``param`` names the field; a full queue gets 429, a
request that runs past ``timeout_s`` 504. Bodies and ``max_tokens`` are capped; the server binds
127.0.0.1 unless told otherwise and answers only to its own Host names (see
:mod:`traitscope.serve.guard`).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from traitscope.models.loader import LoadedModel
from traitscope.serve.batcher import Batcher, Job
from traitscope.serve.guard import Guard, allowed_hosts
from traitscope.serve.protocol import ApiError, ChatMessage, ChatRequest, bad, param_path
from traitscope.serve.resolve import TraitSource
from traitscope.serve.tokens import TokenText, chat_prompt_ids, context_length

__all__ = ["ChatMessage", "TokenText", "chat_prompt_ids", "create_app"]

DEFAULT_HOST = "127.0.0.1"
MAX_BODY_BYTES = 1_000_000
MAX_TOKENS_CAP = 1024
DEFAULT_MAX_TOKENS = 256
DEFAULT_TIMEOUT_S = 300.0

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


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
        response = ApiError(413, f"request body exceeds {self.max_bytes} bytes").response()
        await response(scope, receive, send)


class _Exchange:
    """One request's events, from the batcher thread into the event loop."""

    def __init__(self, timeout_s: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s = timeout_s

    def emit(self, event: str, data: dict[str, Any]) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (event, data))

    async def next(self, job: Job) -> tuple[str, dict[str, Any]]:
        try:
            return await asyncio.wait_for(self.queue.get(), max(self.deadline - time.monotonic(), 0.001))
        except TimeoutError:
            job.cancelled.set()
            raise ApiError(
                504, f"the request did not finish within {self.timeout_s:g} s", None, "timeout", "timeout_error"
            ) from None


def _choice_logprobs(entries: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    return {"content": entries} if entries is not None else None


class Server:
    """The request handling behind the routes: checking, queueing, answering."""

    def __init__(
        self, lm: LoadedModel, name: str, source: TraitSource, batcher: Batcher, cap: int, timeout_s: float
    ) -> None:
        self.lm, self.name, self.source, self.batcher = lm, name, source, batcher
        self.cap, self.timeout_s = cap, timeout_s
        self.context = context_length(lm)

    def job(self, req: ChatRequest, emit: Callable[[str, dict[str, Any]], None]) -> Job:
        """Everything checked before the request queues (runs in a worker thread: it reads files)."""
        if req.model is not None and req.model not in (self.name, self.lm.name, self.lm.slug):
            raise ApiError(
                404,
                f"model {req.model!r} is not served here; this server serves {self.name!r}",
                "model",
                "model_not_found",
            )
        max_tokens = req.max_completion_tokens or req.max_tokens or min(DEFAULT_MAX_TOKENS, self.cap)
        which = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
        if max_tokens > self.cap:
            raise bad(f"{which} {max_tokens} exceeds this server's cap of {self.cap}", which)
        if req.top_logprobs is not None and not req.logprobs:
            raise bad("top_logprobs requires logprobs=true", "top_logprobs")
        ids = chat_prompt_ids(self.lm, req.messages)
        if len(ids) + max_tokens > self.context:
            raise bad(
                f"prompt of {len(ids)} tokens plus {which} {max_tokens} exceeds the context of {self.context}",
                "messages",
            )
        plan = self.source.plan(req.traitscope)
        return Job(
            ids,
            max_tokens,
            emit,
            temperature=1.0 if req.temperature is None else req.temperature,  # OpenAI's default
            top_p=req.top_p or 1.0,
            seed=req.seed,
            stops=req.stops(),
            top_logprobs=(req.top_logprobs or 0) if req.logprobs else None,
            plan=plan,
        )

    def _head(self, cid: str, kind: str) -> dict[str, Any]:
        return {"id": cid, "object": kind, "created": int(time.time()), "model": self.name}

    async def complete(self, req: ChatRequest) -> dict[str, Any]:
        ex = _Exchange(self.timeout_s)
        job = await asyncio.to_thread(self.job, req, ex.emit)
        self.batcher.submit(job)
        while True:
            event, data = await ex.next(job)
            if event == "error":
                raise ApiError(data.get("status", 500), data["message"], kind="server_error")
            if event == "done":
                return self._completion(data)

    def _completion(self, done: dict[str, Any]) -> dict[str, Any]:
        n_prompt, n_completion = done["prompt_tokens"], done["completion_tokens"]
        return {
            **self._head(f"chatcmpl-{uuid.uuid4().hex}", "chat.completion"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": done["text"]},
                    "logprobs": _choice_logprobs(done["logprobs"]),
                    "finish_reason": done["finish_reason"],
                }
            ],
            "usage": {
                "prompt_tokens": n_prompt,
                "completion_tokens": n_completion,
                "total_tokens": n_prompt + n_completion,
            },
            "traitscope": done["traitscope"],
        }

    async def stream(self, req: ChatRequest) -> StreamingResponse:
        ex = _Exchange(self.timeout_s)
        job = await asyncio.to_thread(self.job, req, ex.emit)
        self.batcher.submit(job)  # a full queue answers 429 before the stream starts
        usage = bool((req.stream_options or {}).get("include_usage"))
        return StreamingResponse(
            self._events(job, ex, usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _events(self, job: Job, ex: _Exchange, usage: bool) -> AsyncIterator[str]:
        head = self._head(f"chatcmpl-{uuid.uuid4().hex}", "chat.completion.chunk")

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            choice = {"index": 0, "delta": delta, "logprobs": extra.pop("logprobs", None), "finish_reason": finish}
            return f"data: {json.dumps({**head, 'choices': [choice], **extra}, ensure_ascii=False)}\n\n"

        try:
            yield chunk({"role": "assistant", "content": ""})
            while True:
                try:
                    event, data = await ex.next(job)
                except ApiError as exc:
                    yield f"data: {json.dumps(exc.body())}\n\n"
                    return
                if event == "token":
                    values = {
                        t: {"layer": next(iter(v)), "per_token": [v[next(iter(v))]], "threshold": data["thresholds"][t]}
                        for t, v in data.get("values", {}).items()
                    }
                    yield chunk(
                        {"content": data["text"]},
                        logprobs=_choice_logprobs(data.get("logprobs")),
                        traitscope={"token_ids": data["token_ids"], "trait_scores": values},
                    )
                elif event == "error":
                    err = ApiError(data.get("status", 500), data["message"], kind="server_error")
                    yield f"data: {json.dumps(err.body())}\n\n"
                    return
                else:
                    yield chunk({}, data["finish_reason"], traitscope=data["traitscope"])
                    if usage:
                        n_p, n_c = data["prompt_tokens"], data["completion_tokens"]
                        u = {"prompt_tokens": n_p, "completion_tokens": n_c, "total_tokens": n_p + n_c}
                        yield f"data: {json.dumps({**head, 'choices': [], 'usage': u})}\n\n"
                    yield "data: [DONE]\n\n"
                    return
        finally:
            job.cancelled.set()  # a client that went away frees its row


def create_app(
    lm: LoadedModel,
    model_name: str | None = None,
    run_root: Path | None = None,
    max_tokens_cap: int = MAX_TOKENS_CAP,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_batch: int = 16,
    max_queue: int = 64,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    api_key: str | None = None,
    host: str = DEFAULT_HOST,
    extra_hosts: tuple[str, ...] = (),
    model_slug: str | None = None,
    batch_wait_s: float = 0.02,
) -> FastAPI:
    """The app for one model; ``app.state.batcher`` is its batcher (``close()`` it when done)."""
    name = model_name or lm.name
    app = FastAPI(
        title=f"traitscope OpenAI-compatible server ({name})", docs_url=None, redoc_url=None, openapi_url=None
    )
    batcher = Batcher(lm, max_batch=max_batch, max_queue=max_queue, gather_s=batch_wait_s)
    server = Server(lm, name, TraitSource(lm, run_root, model_slug), batcher, max_tokens_cap, timeout_s)
    app.state.batcher, app.state.server = batcher, server
    created = int(time.time())

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            return ApiError(400, "request body is not valid JSON").response()
        where = param_path(first.get("loc", ()))
        return bad(f"invalid request: {where or 'body'}: {first.get('msg', 'malformed')}", where).response()

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.get("/v1/models")
    def list_models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": created, "owned_by": "traitscope"}],
        }

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(req: ChatRequest) -> dict[str, Any] | StreamingResponse:
        return await (server.stream(req) if req.stream else server.complete(req))

    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(Guard, allowed=allowed_hosts(host, extra_hosts), api_key=api_key)
    return app
