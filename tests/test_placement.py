"""`--device-map auto` / `--max-memory`: a tiny memory cap forces most layers off the main device
(to disk on this CPU-only box, through accelerate); capture, steering and monitoring give the same
numbers as the model loaded whole."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from traitscope.activations import Example, capture
from traitscope.errors import TraitscopeError
from traitscope.generation import SamplingConfig, generate_ids
from traitscope.models import load_model
from traitscope.models.placement import offloaded, parse_max_memory
from traitscope.monitor import VectorBank, generate_monitored
from traitscope.steering import SteeringSpec, SteerTerm, steer

PROMPTS = ["What is the capital of France?", "Name three colours."]


@pytest.fixture(scope="module")
def spread():
    torch.set_num_threads(1)
    return load_model("smollm2-135m-instruct", device_map="auto", max_memory={"cpu": "200MB"})


def test_most_layers_are_offloaded(spread, lm):
    moved = offloaded(spread.model)
    layers = [name for name in moved if ".layers." in name]
    assert len(layers) > lm.n_layers // 2, moved
    assert spread.device == torch.device("cpu")


def test_capture_steering_monitor_match_the_whole_model(spread, lm):
    examples = [Example(lm.prompt_ids(p), lm.response_ids(" Paris is lovely.")) for p in PROMPTS]
    a = capture(lm, examples, ["residual", "mlp_out"], [3, 20, 28], "all[:]")
    b = capture(spread, examples, ["residual", "mlp_out"], [3, 20, 28], "all[:]")
    for site in a.acts:
        torch.testing.assert_close(b.acts[site], a.acts[site], rtol=1e-4, atol=1e-4)
    g = torch.Generator().manual_seed(0)
    vec = torch.nn.functional.normalize(torch.randn(lm.hidden_size, generator=g), dim=0)
    spec = SteeringSpec([SteerTerm("residual", 12, vec, 30.0)])  # a layer that lives on disk
    ids = [lm.prompt_ids(p) for p in PROMPTS]
    cfg = SamplingConfig(max_new_tokens=10)
    with steer(lm, spec):
        want = generate_ids(lm, ids, cfg)
    with steer(spread, spec):
        got = generate_ids(spread, ids, cfg)
    assert got == want and want != generate_ids(lm, ids, cfg)
    bank = VectorBank.from_vectors("residual", {"t": {26: vec, 5: vec}})
    gen = SamplingConfig(max_new_tokens=6)
    for x, y in zip(generate_monitored(lm, ids, bank, gen), generate_monitored(spread, ids, bank, gen), strict=True):
        assert x.response_ids == y.response_ids
        for layer in (5, 26):
            torch.testing.assert_close(y.dots[layer], x.dots[layer], rtol=1e-4, atol=1e-3)


def test_max_memory_spec():
    assert parse_max_memory("0=20GiB, cpu=60GiB") == {0: "20GiB", "cpu": "60GiB"}
    assert parse_max_memory(None) is None
    with pytest.raises(TraitscopeError, match="DEVICE=SIZE"):
        parse_max_memory("gpu0:20")
    with pytest.raises(TraitscopeError, match="--device-map 'everywhere'"):
        load_model("smollm2-135m-instruct", device_map="everywhere")


def test_cli_rejects_bad_max_memory(tmp_path):
    cmd = [sys.executable, "-m", "traitscope", "serve", "--max-memory", "lots", "--run-root", str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--max-memory 'lots'" in r.stderr


def test_monitor_command_with_offload_matches(lm, tmp_path):
    from _runroot import make_run_root

    root = make_run_root(lm, tmp_path / "runs")
    base = [sys.executable, "-m", "traitscope", "monitor", "--traits", "optimism,refusal", "--run-root", str(root),
            "--prompt", "Describe a sunny morning.", "--max-new-tokens", "6", "--json"]  # fmt: skip
    outs = []
    for extra, out in (([], "whole"), (["--device-map", "auto", "--max-memory", "cpu=200MB"], "spread")):
        r = subprocess.run([*base, "--out", str(tmp_path / out), *extra], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        outs.append(json.loads(r.stdout)["traces"][0]["summaries"])
    for trait, by_layer in outs[0].items():
        for layer, summary in by_layer.items():
            assert outs[1][trait][layer]["mean"] == pytest.approx(summary["mean"], abs=1e-3)
