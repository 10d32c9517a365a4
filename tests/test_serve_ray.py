"""`traitscope serve --replicas 2`: the same app as a Ray Serve deployment on a local Ray cluster;
its answers equal the single-process server's."""

from __future__ import annotations

import socket

import openai
import pytest
import torch

from _runroot import make_run_root
from traitscope.serve import BackgroundServer, create_app

ray = pytest.importorskip("ray", reason="Ray is optional; these tests need ray[serve]")

REQUESTS = [
    ("What is the capital of France?", None),
    ("Name three colours.", {"steer": [{"trait": "optimism", "layers": "10", "ratio": 0.4}]}),
    ("How do I boil an egg?", {"monitor": {"traits": ["optimism", "refusal"]}}),
    (
        "Why is the sky blue?",
        {"steer": [{"trait": "formality", "layers": "15", "coef": -3.0}], "monitor": {"traits": ["formality"]}},
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ask(client, model: str, q: str, ts: dict | None, stream: bool = False):
    extra = {"extra_body": {"traitscope": ts}} if ts else {}
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": q}], temperature=0, max_tokens=12, stream=stream, **extra
    )


@pytest.fixture(scope="module")
def run_root(lm, tmp_path_factory):
    return make_run_root(lm, tmp_path_factory.mktemp("ray-runs"))


@pytest.fixture(scope="module")
def ray_server(lm, run_root):
    from ray import serve

    from traitscope.serve import ray_app

    port = _free_port()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        settings = {"run_root": run_root, "max_tokens_cap": 64, "host": "127.0.0.1"}
        ray_app.start(lm.name, settings, replicas=2, address=None, port=port, num_cpus=0.5)
        yield f"http://127.0.0.1:{port}/v1", serve
    finally:
        ray_app.stop()


def test_two_replicas_answer_like_one_process(lm, run_root, ray_server):
    base_url, serve = ray_server
    status = serve.status().applications["traitscope"].deployments["TraitscopeReplica"]
    assert status.status == "HEALTHY" and status.replica_states.get("RUNNING") == 2
    remote = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=120)
    app = create_app(lm, run_root=run_root, max_tokens_cap=64)
    torch.set_num_threads(1)
    with BackgroundServer(app) as local_srv:
        local = openai.OpenAI(base_url=local_srv.base_url, api_key="x", max_retries=0, timeout=120)
        for q, ts in REQUESTS * 2:  # every request reaches both replicas in turn or not: all must agree
            a, b = _ask(local, lm.name, q, ts), _ask(remote, lm.name, q, ts)
            assert b.choices[0].message.content == a.choices[0].message.content
            assert b.traitscope["steered"] == a.traitscope["steered"]
            for trait, score in a.traitscope["trait_scores"].items():
                assert b.traitscope["trait_scores"][trait]["per_token"] == pytest.approx(score["per_token"], abs=1e-3)
        q, ts = REQUESTS[3]
        streamed = "".join(c.choices[0].delta.content or "" for c in _ask(remote, lm.name, q, ts, True) if c.choices)
        assert streamed == _ask(local, lm.name, q, ts).choices[0].message.content
    app.state.batcher.close()


def test_errors_cross_ray_unchanged(lm, ray_server):
    base_url, _ = ray_server
    remote = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=120)
    with pytest.raises(openai.BadRequestError) as info:
        _ask(remote, lm.name, "hi", {"steer": [{"trait": "nope"}]})
    assert info.value.body["param"] == "traitscope.steer[0].trait"
