"""`traitscope serve` throughput and latency, measured through the official `openai` client.

    python bench/serve.py [MODEL] [--clients 16] [--tokens 32] [--repeats 3] [--ray]

Prints `name: value` lines:
  sequential tokens/s            the 16 requests (mixed steering configs, greedy) one after another
  batched tokens/s               the same 16 requests sent at once by 16 clients
  serve batching speedup         batched / sequential (target >= 3)
  plain tokens/s (16 clients)    16 concurrent plain requests
  steer+monitor tokens/s         the same with steering at one layer + 3 traits monitored at each's best layer
  serve steer overhead           steer+monitor / plain (target >= 0.9); also with 1 client, one request at a time
  p50/p95 latency s @ N clients  N clients in a closed loop, each sending requests back to back
  ray 1 replica / 2 replicas tokens/s, ray 2 vs 1   (with --ray: a local Ray cluster on this machine)
Tokens are completion tokens actually generated (a request may stop at EOS before --tokens). The
trait vectors are fixed random unit vectors with activation norms measured on the model: projecting
onto and steering with them costs what extracted ones do. Measurements are interleaved across
repeats and the median is kept, so drift on a shared machine hits all alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import torch

from traitscope.models import load_model
from traitscope.serve import BackgroundServer, create_app
from traitscope.steering import measure_act_norms
from traitscope.store import Provenance, RunDir, VectorSet, save_vectors

PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how a bicycle stays upright while moving.",
    "Describe your ideal weekend in the mountains.",
    "What are the main causes of inflation?",
    "Give me a recipe for a vegetable soup and explain each step.",
    "Tell me about the history of the printing press.",
    "How do I prepare for a job interview at a tech company?",
    "Write a letter to a friend who moved to another country.",
]
TRAITS = {"optimism": 10, "formality": 15, "refusal": 6}
MONITOR = {"traits": list(TRAITS)}
CONFIGS: list[dict[str, Any] | None] = [
    None,
    {"steer": [{"trait": "optimism", "layers": "10", "ratio": 0.3}]},
    {"steer": [{"trait": "formality", "layers": "15", "ratio": 0.2}], "monitor": MONITOR},
    {"monitor": MONITOR},
]
STEER_MONITOR = {"steer": [{"trait": "optimism", "layers": "10", "ratio": 0.3}], "monitor": MONITOR}


def make_run_root(lm: Any, root: Path) -> Path:
    layers = sorted(set(TRAITS.values()))
    norms = measure_act_norms(lm, "residual", layers)
    for k, (trait, best) in enumerate(TRAITS.items()):
        g = torch.Generator().manual_seed(100 + k)
        vecs = {la: torch.nn.functional.normalize(torch.randn(lm.hidden_size, generator=g), dim=0) for la in layers}
        prov = Provenance(
            trait=trait, method="probe", site="residual", position="response[:]", model=lm.name,
            model_type=lm.model_type, n_layers=lm.n_layers, hidden_size=lm.hidden_size, dim=lm.hidden_size,
            layers=layers, act_norms={str(la): v for la, v in norms.items()},
        )  # fmt: skip
        run = RunDir.of(lm.slug, trait, root)
        save_vectors(run.vector_file("response[:]", "residual", "probe"), VectorSet(vecs, prov))
        rows = [{"site": "residual", "method": "probe", "layer": la, "auroc": 0.9 if la == best else 0.6,
                 "effect_size": 1.0} for la in layers]  # fmt: skip
        run.evaluation.write_text(json.dumps({"position": "response[:]", "results": rows}))
    return root


class Client:
    def __init__(self, base_url: str, model: str, tokens: int) -> None:
        self.client = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0, timeout=600)
        self.model, self.tokens = model, tokens

    def ask(self, prompt: str, ts: dict | None) -> tuple[int, float]:
        """(completion tokens, seconds) of one request."""
        start = time.perf_counter()
        extra = {"extra_body": {"traitscope": ts}} if ts else {}
        r = self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=self.tokens,
            **extra,
        )  # fmt: skip
        return r.usage.completion_tokens, time.perf_counter() - start


def requests(n: int, configs: list[dict | None]) -> list[tuple[str, dict | None]]:
    return [(PROMPTS[i % len(PROMPTS)], configs[i % len(configs)]) for i in range(n)]


def sequential(client: Client, reqs: list) -> float:
    start = time.perf_counter()
    tokens = sum(client.ask(p, ts)[0] for p, ts in reqs)
    return tokens / (time.perf_counter() - start)


def concurrent(client: Client, reqs: list) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(len(reqs)) as pool:
        tokens = sum(t for t, _ in pool.map(lambda r: client.ask(*r), reqs))
    return tokens / (time.perf_counter() - start)


def closed_loop(client: Client, clients: int, per_client: int) -> list[float]:
    def run(c: int) -> list[float]:
        return [client.ask(p, ts)[1] for p, ts in requests(per_client, CONFIGS[c % len(CONFIGS) :] + CONFIGS)]

    with ThreadPoolExecutor(clients) as pool:
        return [s for lat in pool.map(run, range(clients)) for s in lat]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def bench_server(client: Client, args: argparse.Namespace, out: dict[str, float]) -> None:
    mixed = requests(args.clients, CONFIGS)
    plain = requests(args.clients, [None])
    steered = requests(args.clients, [STEER_MONITOR])
    concurrent(client, mixed[:4])  # warm-up
    runs: dict[str, list[float]] = {k: [] for k in ("seq", "batch", "plain", "steer", "plain1", "steer1")}
    for _ in range(args.repeats):
        runs["seq"].append(sequential(client, mixed))
        runs["batch"].append(concurrent(client, mixed))
        runs["plain"].append(concurrent(client, plain))
        runs["steer"].append(concurrent(client, steered))
        runs["plain1"].append(sequential(client, plain[:4]))
        runs["steer1"].append(sequential(client, steered[:4]))
    med = {k: statistics.median(v) for k, v in runs.items()}
    out["sequential tokens/s"] = med["seq"]
    out["batched tokens/s"] = med["batch"]
    out["serve batching speedup"] = med["batch"] / med["seq"]
    out[f"plain tokens/s ({args.clients} clients)"] = med["plain"]
    out[f"steer+monitor tokens/s ({args.clients} clients)"] = med["steer"]
    out["serve steer overhead"] = med["steer"] / med["plain"]
    out["plain tokens/s (1 client)"] = med["plain1"]
    out["steer+monitor tokens/s (1 client)"] = med["steer1"]
    out["serve steer overhead (1 client)"] = med["steer1"] / med["plain1"]
    for n in (1, 4, 16):
        lat = closed_loop(client, n, max(2, 16 // n))
        out[f"p50 latency s @ {n} clients"] = pct(lat, 0.5)
        out[f"p95 latency s @ {n} clients"] = pct(lat, 0.95)


def bench_ray(model: str, root: Path, args: argparse.Namespace, out: dict[str, float]) -> None:
    import socket

    import ray

    from traitscope.serve import ray_app

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        settings = {"run_root": root, "max_tokens_cap": 1024, "host": "127.0.0.1"}
        for replicas in (1, 2):
            ray_app.start(model, settings, replicas, None, port, num_cpus=1.0 / replicas)
            client = Client(f"http://127.0.0.1:{port}/v1", model, args.tokens)
            mixed = requests(args.clients, CONFIGS)
            concurrent(client, mixed[:4])
            out[f"ray {replicas} replica(s) tokens/s"] = statistics.median(
                concurrent(client, mixed) for _ in range(args.repeats)
            )
        out["ray 2 vs 1"] = out["ray 2 replica(s) tokens/s"] / out["ray 1 replica(s) tokens/s"]
    finally:
        ray_app.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", default="smollm2-135m-instruct")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the server")
    parser.add_argument("--ray", action="store_true", help="also Ray Serve with 1 and 2 replicas")
    parser.add_argument("--batch-wait-ms", type=float, default=20.0, help="the server's batch gathering window")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lm = load_model(args.model)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = make_run_root(lm, Path(tmp))
        app = create_app(lm, run_root=root, max_batch=args.clients, batch_wait_s=args.batch_wait_ms / 1000)
        with BackgroundServer(app) as server:
            bench_server(Client(server.base_url, lm.name, args.tokens), args, out)
        out["mean batch size"] = statistics.mean(app.state.batcher.batches)
        app.state.batcher.close()
        del lm
        if args.ray:
            bench_ray(args.model, root, args, out)
    for name, value in out.items():
        print(f"{name}: {value:.3g}")


if __name__ == "__main__":
    main()
