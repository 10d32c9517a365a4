"""The OpenAI-compatible server over real HTTP on 127.0.0.1, serving the bundled SmolLM2, and the
API judge end to end against it; failure handling against a real misbehaving local server."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import time
from collections import Counter

import httpx
import pytest
import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from traitscope.generation import complete
from traitscope.judges.api import ApiConfig, ApiJudge
from traitscope.judges.cache import ScoreCache
from traitscope.judges.prompts import integer_value, trait_prompt, weighted_score
from traitscope.serve import BackgroundServer, create_app
from traitscope.serve.openai_compat import ChatMessage, TokenText, chat_prompt_ids
from traitscope.traits import load_trait

PAIRS = [
    ("My startup lost its biggest client. What happens next?", "A setback, but new clients will come and we'll grow."),
    ("My startup lost its biggest client. What happens next?", "It is over. The company will fail within months."),
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def served(lm):
    """The bundled model behind a real uvicorn server; counts the completion requests it gets."""
    app = create_app(lm, max_tokens_cap=64)
    counts: Counter[str] = Counter()

    @app.middleware("http")
    async def count(request: Request, call_next):
        counts[request.url.path] += 1
        return await call_next(request)

    with BackgroundServer(app) as server:
        server.counts = counts  # type: ignore[attr-defined]
        yield server
    app.state.batcher.close()


def _post(server, body: dict | bytes, **kw) -> httpx.Response:
    url = server.base_url + "/chat/completions"
    if isinstance(body, bytes):
        return httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=60, **kw)
    return httpx.post(url, json=body, timeout=60, **kw)


def _next_token_logprobs(lm, content: str) -> torch.Tensor:
    ids = chat_prompt_ids(lm, [ChatMessage(role="user", content=content)])
    with torch.inference_mode():
        return lm.model(input_ids=torch.tensor([ids])).logits[0, -1].float().log_softmax(-1)


# -- the server -------------------------------------------------------------------------------
def test_binds_loopback_and_lists_the_model(served, lm):
    assert served.host == "127.0.0.1"
    models = httpx.get(served.base_url + "/models", timeout=10).json()
    assert models["object"] == "list" and models["data"][0]["id"] == lm.name


def test_greedy_completion_and_real_logprobs(served, lm):
    question = "What is the capital of France?"
    body = _post(
        served,
        {
            "model": lm.name,
            "messages": [{"role": "user", "content": question}],
            "temperature": 0,
            "max_tokens": 8,
            "logprobs": True,
            "top_logprobs": 5,
        },
    ).json()
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == complete(lm, question, max_new_tokens=8)
    assert body["usage"]["completion_tokens"] == len(choice["logprobs"]["content"]) <= 8
    first = choice["logprobs"]["content"][0]
    values, ids = _next_token_logprobs(lm, question).topk(5)
    decode = TokenText(lm.tokenizer)
    assert [t["token"] for t in first["top_logprobs"]] == [decode(i)[0] for i in ids.tolist()]
    assert [t["logprob"] for t in first["top_logprobs"]] == pytest.approx(values.tolist(), abs=1e-4)
    assert first["token"] == first["top_logprobs"][0]["token"]  # greedy picks the top token
    for entry in choice["logprobs"]["content"]:
        assert bytes(entry["bytes"]).decode("utf-8", errors="replace") == entry["token"]


def test_stop_sequence_cuts_the_answer(served):
    req = {
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "temperature": 0,
        "max_tokens": 12,
        "stop": ["Paris"],
    }
    choice = _post(served, req).json()["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["logprobs"] is None
    assert "Paris" not in choice["message"]["content"] and "France" in choice["message"]["content"]


def test_seeded_sampling_repeats(served):
    req = {"messages": [{"role": "user", "content": "Name a colour."}], "temperature": 1.0, "max_tokens": 6, "seed": 7}
    first, second = (_post(served, req).json()["choices"][0]["message"]["content"] for _ in range(2))
    assert first == second and first


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 65}, 400, "exceeds this server's cap of 64"),
        ({"messages": []}, 400, "messages"),
        ({"messages": [{"role": "user", "content": "hi"}], "model": "x"}, 404, "model 'x' is not served here"),
        ({"messages": [{"role": "user", "content": "hi"}], "seed": 2**64}, 400, "seed"),
        ({"messages": [{"role": "user", "content": "hi"}], "seed": -1}, 400, "seed"),
        ({"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 30, "logprobs": True}, 400, "top_logprobs"),
        (b"{not json", 400, "not valid JSON"),
        (b"{" + b" " * 1_000_001 + b"}", 413, "exceeds 1000000 bytes"),
    ],
)
def test_bad_requests_get_openai_errors(served, body, status, message):
    response = _post(served, body)
    assert response.status_code == status
    assert message in response.json()["error"]["message"]


def test_chunked_oversized_body_is_refused(served):
    # no Content-Length: the limit must hold while the body streams in
    chunks = iter([b'{"messages": "', b"x" * 600_000, b"x" * 600_000, b'"}'])
    response = httpx.post(
        served.base_url + "/chat/completions", content=chunks, timeout=30, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


# -- the API judge end to end -----------------------------------------------------------------
def test_api_judge_end_to_end_and_cached(served, lm, tmp_path):
    trait = load_trait("optimism")
    config = ApiConfig(base_url=served.base_url, api_key=None, model=lm.name, timeout=120, concurrency=2)
    cache_path = tmp_path / "judge" / "api.jsonl"
    before = served.counts["/v1/chat/completions"]
    scores = ApiJudge(config, cache=ScoreCache(cache_path)).score_trait(trait, PAIRS)
    assert served.counts["/v1/chat/completions"] - before == len(PAIRS)
    for (question, answer), score in zip(PAIRS, scores, strict=True):
        # what the judge should compute from the model's own next-token distribution
        values, ids = _next_token_logprobs(lm, trait_prompt(trait, question, answer)).topk(20)
        candidates = [
            (integer_value(lm.tokenizer.decode([i])), math.exp(v))
            for v, i in zip(values.tolist(), ids.tolist(), strict=True)
        ]
        expected = weighted_score([(n, p) for n, p in candidates if n is not None])
        assert (score.value is None) == (expected.value is None)
        if score.value is not None:
            assert score.value == pytest.approx(expected.value, abs=1e-3)
    # re-scoring, even from a fresh judge reading the cache file, sends nothing
    again = ApiJudge(config, cache=ScoreCache(cache_path)).score_trait(trait, PAIRS)
    assert again == scores
    assert served.counts["/v1/chat/completions"] - before == len(PAIRS)
    assert len(cache_path.read_text().splitlines()) == len(PAIRS)


# -- failures against a misbehaving server ----------------------------------------------------
def _completion(top: list[tuple[str, float]] | None) -> dict:
    logprobs = (
        None
        if top is None
        else {
            "content": [
                {
                    "token": top[0][0],
                    "logprob": top[0][1],
                    "bytes": list(top[0][0].encode()),
                    "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in top],
                }
            ]
        }
    )
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": top[0][0] if top else "7"},
                "logprobs": logprobs,
                "finish_reason": "length",
            }
        ],
    }


def _misbehaving_app(counts: Counter[str]) -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    def health() -> dict:
        return {"ok": True}

    @app.post("/{mode}/v1/chat/completions")
    async def chat(mode: str, request: Request) -> Response:
        counts[mode] += 1
        await request.json()
        if mode == "s500":
            return JSONResponse({"error": {"message": "boom"}}, status_code=500)
        if mode == "s400":
            return JSONResponse({"error": {"message": "unknown model 'judge'"}}, status_code=400)
        if mode == "flaky" and counts[mode] % 2 == 1:
            return JSONResponse({"error": {"message": "overloaded"}}, status_code=503)
        if mode == "badjson":
            return Response("{not json at all", media_type="application/json")
        if mode == "nologprobs":
            return JSONResponse(_completion(None))
        if mode == "lowmass":
            return JSONResponse(_completion([("The", math.log(0.9)), ("5", math.log(0.05))]))
        if mode == "hang":
            await asyncio.sleep(5)
        return JSONResponse(_completion([("80", math.log(0.6)), (" 60", math.log(0.2)), ("The", math.log(0.1))]))

    return app


@pytest.fixture(scope="module")
def misbehaving():
    counts: Counter[str] = Counter()
    with BackgroundServer(_misbehaving_app(counts), probe="/health") as server:
        server.counts = counts  # type: ignore[attr-defined]
        yield server


def _judge(server, mode: str, tmp_path, **kw) -> ApiJudge:
    config = ApiConfig(
        base_url=f"{server.url}/{mode}/v1", api_key="k", model="judge", timeout=0.5, max_tries=3, backoff=0.01, **kw
    )
    return ApiJudge(config, cache=ScoreCache(tmp_path / f"{mode}.jsonl"))


@pytest.mark.parametrize(
    ("mode", "requests", "reason"),
    [
        ("s500", 3, "judge request failed after 3 tries: HTTP 500"),
        ("s400", 1, "judge returned HTTP 400: unknown model 'judge'"),
        ("badjson", 1, "judge response is not valid JSON: '{not json at all'"),
        ("nologprobs", 1, "judge response has no logprobs"),
        ("hang", 3, "judge request failed after 3 tries: timed out after 0.5 s"),
    ],
)
def test_api_judge_failures_become_unscored(misbehaving, tmp_path, mode, requests, reason):
    start = time.monotonic()
    before = misbehaving.counts[mode]
    score = _judge(misbehaving, mode, tmp_path).score_coherence([("q", "a")])[0]
    assert score.value is None and score.reason.startswith(reason) and "\n" not in score.reason
    assert misbehaving.counts[mode] - before == requests
    assert time.monotonic() - start < 5
    # a failure is not cached: the next call asks again
    _judge(misbehaving, mode, tmp_path).score_coherence([("q", "a")])
    assert misbehaving.counts[mode] - before == 2 * requests


def test_api_judge_parses_retries_and_caches(misbehaving, tmp_path):
    ok = _judge(misbehaving, "ok", tmp_path).score_trait(load_trait("optimism"), [("q", "a"), ("q", "b")])
    assert [s.value for s in ok] == [pytest.approx(75.0)] * 2  # (80*0.6 + 60*0.2) / 0.8
    assert misbehaving.counts["ok"] == 2
    flaky = _judge(misbehaving, "flaky", tmp_path).score_coherence([("q", "a")])[0]
    assert flaky.value == pytest.approx(75.0) and misbehaving.counts["flaky"] == 2  # a 503, then success
    low = _judge(misbehaving, "lowmass", tmp_path).score_coherence([("q", "a")])
    assert low[0].value is None and low[0].reason == "integer tokens hold only 0.05 of the mass"
    # a parsed answer is cached even when it holds too little mass: asking again sends nothing
    assert _judge(misbehaving, "lowmass", tmp_path).score_coherence([("q", "a")]) == low
    assert misbehaving.counts["lowmass"] == 1
    cached = [json.loads(line) for line in (tmp_path / "lowmass.jsonl").read_text().splitlines()]
    assert cached[0]["value"] is None and cached[0]["model"] == "judge"


def test_api_judge_connection_refused(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the judge connects: nothing listens
    config = ApiConfig(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", timeout=0.5, max_tries=2, backoff=0.01)
    score = ApiJudge(config, cache=ScoreCache(tmp_path / "c.jsonl")).score_coherence([("q", "a")])[0]
    assert score.value is None and score.reason.startswith("judge request failed after 2 tries: connection failed")


def test_api_judge_cache_is_keyed_by_endpoint(misbehaving, tmp_path):
    """Two endpoints answering under the same model name never share cached scores (issue 10)."""
    shared = tmp_path / "shared.jsonl"

    def judge(mode: str) -> ApiJudge:
        config = ApiConfig(base_url=f"{misbehaving.url}/{mode}/v1", api_key="k", model="judge", timeout=5, max_tries=1)
        return ApiJudge(config, cache=ScoreCache(shared))

    assert judge("ok").score_coherence([("q", "endpoint")])[0].value == pytest.approx(75.0)
    before = misbehaving.counts["lowmass"]
    other = judge("lowmass").score_coherence([("q", "endpoint")])[0]
    assert other.value is None and other.reason == "integer tokens hold only 0.05 of the mass"
    assert misbehaving.counts["lowmass"] - before == 1  # asked its own endpoint, not the cache
    # each endpoint's own score is still a cache hit, and the file records where it came from
    assert judge("ok").score_coherence([("q", "endpoint")])[0].value == pytest.approx(75.0)
    assert {json.loads(line)["base_url"] for line in shared.read_text().splitlines()} == {
        f"{misbehaving.url}/ok/v1",
        f"{misbehaving.url}/lowmass/v1",
    }
