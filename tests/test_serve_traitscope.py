"""`traitscope serve` through the official `openai` client against a real server on 127.0.0.1:
steering, monitoring and conditions per request, streaming, batching that does not change a
request's greedy answer, and OpenAI-shaped errors that name the field."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from _runroot import TRAITS, make_run_root
from traitscope.generation import SamplingConfig
from traitscope.monitor import VectorBank, forced_monitored, generate_monitored, load_bank
from traitscope.serve import BackgroundServer, create_app
from traitscope.serve.openai_compat import ChatMessage, chat_prompt_ids
from traitscope.steering import SteeringSpec, build_terms, steer
from traitscope.store import RunDir, load_vectors

Q = "What is the capital of France?"
STEER = {"trait": "optimism", "layers": "10", "ratio": 0.4}
MONITOR = {"traits": ["optimism", "formality", "refusal"]}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run_root(lm, tmp_path_factory):
    return make_run_root(lm, tmp_path_factory.mktemp("serve-runs"))


@pytest.fixture(scope="module")
def server(lm, run_root):
    app = create_app(lm, run_root=run_root, max_tokens_cap=64, max_batch=8)
    with BackgroundServer(app) as srv:
        srv.app = app  # type: ignore[attr-defined]
        yield srv
    app.state.batcher.close()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def ask(client, lm, content: str = Q, ts: dict | None = None, **kw):
    extra = {"extra_body": {"traitscope": ts}} if ts is not None else {}
    return client.chat.completions.create(
        model=lm.name,
        messages=[{"role": "user", "content": content}],
        temperature=0,
        max_tokens=kw.pop("max_tokens", 10),
        **extra,
        **kw,
    )


def _steer_terms(lm, run_root, layer: int, ratio: float):
    vset = load_vectors(RunDir.of(lm.slug, "optimism", run_root).vector_file("response_all", "residual", "probe"))
    return build_terms(vset, [layer], ratio)


def test_models_and_plain_completion(client, lm):
    assert [m.id for m in client.models.list().data] == [lm.name]
    r = ask(client, lm)
    assert r.choices[0].message.content.startswith("The capital of France is Paris")
    assert r.traitscope == {"steered": False, "condition_score": None, "trait_scores": {}}


def test_steer_and_monitor_equal_the_library(client, lm, run_root):
    r = ask(client, lm, ts={"steer": [STEER], "monitor": MONITOR}, max_tokens=8)
    ts = r.traitscope
    assert ts["steered"] is True
    assert set(ts["trait_scores"]) == set(TRAITS)
    ids = chat_prompt_ids(lm, [ChatMessage(role="user", content=Q)])
    bank = load_bank(lm, run_root, list(TRAITS))
    with steer(lm, SteeringSpec(_steer_terms(lm, run_root, 10, 0.4))):
        mon = generate_monitored(lm, [ids], bank, SamplingConfig(max_new_tokens=8))[0]
    assert r.choices[0].message.content == lm.tokenizer.decode(mon.response_ids, skip_special_tokens=True)
    assert r.usage.completion_tokens == len(mon.response_ids)
    for trait, best in TRAITS.items():
        score = ts["trait_scores"][trait]
        assert score["layer"] == best
        j = [e.trait for e in bank.at(best)].index(trait)
        expected = mon.dots[best][len(ids) :, j].tolist()
        assert len(score["per_token"]) == r.usage.completion_tokens
        assert score["per_token"] == pytest.approx(expected, abs=1e-4)
        assert score["mean"] == pytest.approx(sum(expected) / len(expected), abs=1e-4)
    plain = ask(client, lm, max_tokens=8).choices[0].message.content
    assert plain != r.choices[0].message.content


def test_named_layers_report_each_layer(client, lm):
    r = ask(client, lm, ts={"monitor": {"traits": ["optimism"], "layers": "6,15"}}, max_tokens=4)
    score = r.traitscope["trait_scores"]["optimism"]
    assert score["layer"] == 6 and set(score["layers"]) == {"6", "15"}
    assert all(len(v["per_token"]) == r.usage.completion_tokens for v in score["layers"].values())


def test_stream_carries_tokens_and_values(client, lm):
    ts = {"steer": [STEER], "monitor": MONITOR}
    whole = ask(client, lm, ts=ts, max_tokens=12)
    chunks = list(ask(client, lm, ts=ts, max_tokens=12, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    token_chunks = [c for c in chunks if c.choices and "token_ids" in (c.model_extra or {}).get("traitscope", {})]
    per_token = [v for c in token_chunks for v in c.traitscope["trait_scores"]["optimism"]["per_token"]]
    assert per_token == pytest.approx(whole.traitscope["trait_scores"]["optimism"]["per_token"], abs=1e-5)
    assert sum(len(c.traitscope["token_ids"]) for c in token_chunks) == whole.usage.completion_tokens
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert final[0].traitscope == whole.traitscope
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_stream_stop_sequence(client, lm):
    kw = {"max_tokens": 12, "stop": ["Paris"]}
    whole = ask(client, lm, **kw).choices[0]
    streamed = "".join(c.choices[0].delta.content or "" for c in ask(client, lm, stream=True, **kw) if c.choices)
    assert whole.finish_reason == "stop" and "Paris" not in whole.message.content
    assert streamed == whole.message.content


@pytest.mark.parametrize("below", [False, True])
def test_condition_gates_steering(client, lm, below):
    plain = ask(client, lm, max_tokens=8)
    # the threshold sits far on one side of any score: the condition fires or not for sure
    fire = ask(
        client,
        lm,
        ts={"steer": [STEER], "condition": {"trait": "refusal", "threshold": -1e6, "below": below}},
        max_tokens=8,
    )
    assert fire.traitscope["steered"] is (not below)
    assert isinstance(fire.traitscope["condition_score"], float)
    steered = ask(client, lm, ts={"steer": [STEER]}, max_tokens=8)
    expected = plain if below else steered
    assert fire.choices[0].message.content == expected.choices[0].message.content


def test_condition_score_is_the_prompt_projection(client, lm, run_root):
    r = ask(client, lm, ts={"steer": [STEER], "condition": {"trait": "refusal", "layer": 15}}, max_tokens=2)
    ids = chat_prompt_ids(lm, [ChatMessage(role="user", content=Q)])
    vset = load_vectors(RunDir.of(lm.slug, "refusal", run_root).vector_file("response_all", "residual", "probe"))
    bank = VectorBank.from_vectors("residual", {"refusal": {15: vset[15]}})

    dots = forced_monitored(lm, ids, [], bank).dots[15][1:, 0]
    assert r.traitscope["condition_score"] == pytest.approx(float(dots.mean()), abs=1e-4)
    assert r.traitscope["steered"] is (r.traitscope["condition_score"] >= 0.0)  # no rollouts: threshold 0


MIXED = [
    ("What is the capital of France?", None),
    ("Name three colours.", {"steer": [STEER]}),
    ("How do I boil an egg?", {"monitor": MONITOR}),
    ("What is the capital of France?", {"steer": [{**STEER, "ratio": 0.2}], "monitor": MONITOR}),
    ("Tell me a joke.", {"steer": [{"trait": "formality", "layers": "6,10", "coef": -4.0, "mode": "orthogonal"}]}),
    ("Why is the sky blue?", {"steer": [STEER, {"trait": "refusal", "layers": "15", "ratio": 0.3}]}),
]


def test_batched_answers_equal_answers_alone(client, lm, server):
    """Greedy output (text, monitor values) of a request in a batch equals the same request alone."""
    kw = {"max_tokens": 16}
    alone = [ask(client, lm, q, ts, **kw) for q, ts in MIXED]
    before = len(server.app.state.batcher.batches)
    with ThreadPoolExecutor(len(MIXED)) as pool:
        together = list(pool.map(lambda qt: ask(client, lm, qt[0], qt[1], **kw), MIXED * 2))
    sizes = server.app.state.batcher.batches[before:]
    assert max(sizes) >= 2, f"no batch formed: {sizes}"
    for a, b in zip(alone * 2, together, strict=True):
        assert b.choices[0].message.content == a.choices[0].message.content
        assert b.traitscope["steered"] == a.traitscope["steered"]
        for trait, score in a.traitscope["trait_scores"].items():
            assert b.traitscope["trait_scores"][trait]["per_token"] == pytest.approx(score["per_token"], abs=1e-3)


def test_stream_and_plain_share_a_batch(client, lm):
    with ThreadPoolExecutor(3) as pool:
        f1 = pool.submit(lambda: list(ask(client, lm, ts={"monitor": MONITOR}, stream=True, max_tokens=10)))
        f2 = pool.submit(lambda: ask(client, lm, "Name three colours.", max_tokens=6))
        streamed = "".join(c.choices[0].delta.content or "" for c in f1.result() if c.choices)
        assert f2.result().usage.completion_tokens <= 6
    assert streamed == ask(client, lm, max_tokens=10).choices[0].message.content


# -- bad requests -----------------------------------------------------------------------------
def _body(ts=None, **kw) -> dict:
    body = {"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, **kw}
    if ts is not None:
        body["traitscope"] = ts
    return body


BAD = [
    (
        _body({"steer": [{"trait": "nope"}]}),
        400,
        "traitscope.steer[0].trait",
        "traits available: formality, optimism, refusal",
    ),
    (_body({"steer": [STEER, {"trait": "nope"}]}), 400, "traitscope.steer[1].trait", "unknown trait 'nope'"),
    (_body(model="gpt-4"), 404, "model", "serves 'smollm2-135m-instruct'"),
    (_body({"steer": [{**STEER, "layers": "40"}]}), 400, "traitscope.steer[0].layers", "has layers 0-29"),
    (_body({"steer": [{**STEER, "layers": "14"}]}), 400, "traitscope.steer[0].layers", "have layers [6, 10, 15]"),
    (_body({"steer": [{**STEER, "ratio": float("inf")}]}), 400, "traitscope.steer[0].ratio", "finite"),
    (_body({"steer": [{**STEER, "ratio": float("nan")}]}), 400, "traitscope.steer[0].ratio", "finite"),
    (_body({"steer": [{**STEER, "coef": 2.0}]}), 400, "traitscope.steer[0].coef", "not both"),
    (_body({"steer": [{**STEER, "ratio": -1}]}), 400, "traitscope.steer[0].ratio", ">= 0"),
    (_body({"steer": [STEER] * 9}), 400, "traitscope.steer", "at most 8"),
    (_body("steer optimism"), 400, "traitscope", "valid dictionary"),
    (_body({"stear": []}), 400, "traitscope.stear", "Extra inputs"),
    (_body({"steer": [{"layers": "10"}]}), 400, "traitscope.steer[0].trait", "Field required"),
    (_body({"monitor": {"traits": ["optimism", "nope"]}}), 400, "traitscope.monitor.traits[1]", "unknown trait"),
    (_body({"monitor": {"traits": ["optimism"], "layers": "3"}}), 400, "traitscope.monitor.layers", "no vector"),
    (_body({"condition": {"trait": "nope"}}), 400, "traitscope.condition.trait", "unknown trait"),
    (_body({"steer": [{**STEER, "site": "elsewhere"}]}), 400, "traitscope.steer[0]", "site"),
    (_body({"steer": [{**STEER, "trait": "../optimism"}]}), 400, "traitscope.steer[0].trait", "pattern"),
    (_body({"monitor": {"traits": ["optimism"], "method": "../../x"}}), 400, "traitscope.monitor.method", "pattern"),
    (_body(seed=2**64), 400, "seed", "less than or equal"),
    (_body(max_tokens=65), 400, "max_tokens", "cap of 64"),
]


@pytest.mark.parametrize(("body", "status", "param", "message"), BAD)
def test_bad_requests_name_the_field(server, body, status, param, message):
    r = httpx.post(
        server.base_url + "/chat/completions",
        content=json.dumps(body),
        timeout=60,
        headers={"content-type": "application/json"},
    )
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["param"] == param and message in err["message"], err
    assert set(err) == {"message", "type", "param", "code"}


def test_openai_client_sees_bad_request(client, lm):
    with pytest.raises(openai.BadRequestError) as info:
        ask(client, lm, ts={"steer": [{"trait": "nope"}]})
    assert info.value.body["param"] == "traitscope.steer[0].trait"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    assert ask(client, lm).choices[0].message.content  # still serving


def test_foreign_host_is_refused(server):
    r = httpx.get(server.base_url + "/models", headers={"Host": "evil.example:8000"}, timeout=10)
    assert r.status_code == 421 and r.json()["error"]["param"] == "host"
    assert httpx.get(server.base_url + "/models", headers={"Host": "localhost"}, timeout=10).status_code == 200


# -- api key, queue bound, timeout ------------------------------------------------------------
@pytest.fixture
def small_server(lm, run_root, request):
    kw = request.param
    app = create_app(lm, run_root=run_root, **kw)
    with BackgroundServer(app) as srv:
        srv.app = app  # type: ignore[attr-defined]
        yield srv
    app.state.batcher.close()


@pytest.mark.parametrize("small_server", [{"api_key": "s3cret"}], indirect=True)
def test_api_key(small_server, lm):
    def call(key):
        c = openai.OpenAI(base_url=small_server.base_url, api_key=key, max_retries=0)
        return c.chat.completions.create(model=lm.name, messages=[{"role": "user", "content": "hi"}], max_tokens=2)

    with pytest.raises(openai.AuthenticationError) as info:
        call("wrong")
    assert info.value.status_code == 401 and info.value.body["code"] == "invalid_api_key"
    r = httpx.get(small_server.base_url + "/models", timeout=10)
    assert r.status_code == 401 and "missing API key" in r.json()["error"]["message"]
    assert call("s3cret").usage.completion_tokens <= 2


@pytest.mark.parametrize("small_server", [{"max_queue": 1, "max_batch": 1}], indirect=True)
def test_full_queue_gets_429(small_server, lm):
    c = openai.OpenAI(base_url=small_server.base_url, api_key="x", max_retries=0, timeout=120)
    batcher = small_server.app.state.batcher
    long = threading.Thread(target=lambda: ask(c, lm, max_tokens=200, extra_body={"ignore_eos": True}))
    long.start()
    while not batcher.batches:  # the long request is running; the queue is empty again
        time.sleep(0.01)
    queued = threading.Thread(target=lambda: ask(c, lm, max_tokens=2))
    queued.start()
    while not batcher._pending:
        time.sleep(0.01)
    with pytest.raises(openai.RateLimitError) as info:
        ask(c, lm, max_tokens=2)
    assert info.value.body["code"] == "queue_full"
    long.join()
    queued.join()
    assert ask(c, lm, max_tokens=2).choices[0].message.content


@pytest.mark.parametrize("small_server", [{"timeout_s": 2.0, "max_tokens_cap": 2000}], indirect=True)
def test_timeout_gets_504_and_the_server_goes_on(small_server, lm):
    body = _body(max_tokens=1500, messages=[{"role": "user", "content": "Write a very long story about a dragon."}])
    r = httpx.post(small_server.base_url + "/chat/completions", json=body, timeout=60)
    assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
    ok = httpx.post(small_server.base_url + "/chat/completions", json=_body(max_tokens=1), timeout=60)
    assert ok.status_code == 200


def test_cli_refuses_open_host_without_key(tmp_path):
    cmd = [sys.executable, "-m", "traitscope", "serve", "--host", "0.0.0.0", "--run-root", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--api-key" in r.stderr and "Traceback" not in r.stderr


def test_serve_command_end_to_end(lm, run_root):
    """`traitscope serve` as users start it: a real process, the openai client, an API key."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "traitscope", "serve", "--run-root", str(run_root), "--port", str(port),
           "--api-key", "k3y", "--max-tokens", "16"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k3y", max_retries=0, timeout=60)
        deadline = time.monotonic() + 120
        while True:
            try:
                client.models.list()
                break
            except openai.APIConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else ""
                time.sleep(0.3)
        r = ask(client, lm, ts={"steer": [STEER], "monitor": {"traits": ["optimism"]}}, max_tokens=4)
        assert r.traitscope["steered"]
        assert len(r.traitscope["trait_scores"]["optimism"]["per_token"]) == r.usage.completion_tokens >= 1
        with pytest.raises(openai.BadRequestError):
            ask(client, lm, max_tokens=17)  # over --max-tokens
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
