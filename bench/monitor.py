"""Monitoring overhead: plain generation vs monitored generation on the same batch.

    python bench/monitor.py [MODEL] [--device cpu|cuda] [--batch 8] [--tokens 32] [--repeats 3]

Prints `name: value` lines:
  plain generate tokens/s        traitscope.generation.generate_ids (transformers' generate), greedy
  monitored tokens/s             traitscope.monitor.generate_monitored, 3 traits x every layer (residual)
  monitored minimal tokens/s     the same loop with 1 trait x 1 layer (the loop's own cost)
  monitor ratio                  monitored / plain (target >= 0.9)
  hook ratio                     monitored / monitored minimal (what the hooks cost)
Only one trait may be extracted in a bench, so the 3 traits are random unit vectors: projecting
onto them costs exactly what projecting onto extracted ones does. Runs are interleaved and the
median is kept, so drift on a shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from traitscope.generation import SamplingConfig, generate_ids
from traitscope.models import load_model
from traitscope.monitor import VectorBank, generate_monitored

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


def bank_for(lm, n_traits: int, layers: list[int]) -> VectorBank:
    g = torch.Generator().manual_seed(0)
    vectors = {
        f"trait{k}": {layer: torch.randn(lm.hidden_size, generator=g) for layer in layers} for k in range(n_traits)
    }
    return VectorBank.from_vectors("residual", vectors)


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    n = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?", default="smollm2-135m-instruct")
    ap.add_argument("--device", default=None)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    lm = load_model(args.model, device=args.device)
    prompts = (PROMPTS * (args.batch // len(PROMPTS) + 1))[: args.batch]
    rows = [lm.prompt_ids(p) for p in prompts]
    full = bank_for(lm, 3, list(range(lm.n_layers)))
    minimal = bank_for(lm, 1, [lm.n_layers // 2])
    sampling = SamplingConfig(max_new_tokens=args.tokens)
    gen = SamplingConfig(max_new_tokens=args.tokens)

    def plain() -> int:
        return sum(len(r) for r in generate_ids(lm, rows, sampling, batch_size=len(rows)))

    def monitored() -> int:
        return sum(len(m.response_ids) for m in generate_monitored(lm, rows, full, gen))

    def monitored_min() -> int:
        return sum(len(m.response_ids) for m in generate_monitored(lm, rows, minimal, gen))

    runs = {"plain": plain, "monitored": monitored, "minimal": monitored_min}
    for fn in runs.values():  # warm up (kernels, allocator, tokenizer caches)
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    counts: dict[str, int] = {}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            seconds, n = timed(fn)
            times[name].append(seconds)
            counts[name] = n
    tps = {k: counts[k] / statistics.median(v) for k, v in times.items()}
    print(f"model: {args.model}")
    print(f"device: {lm.device}")
    print(f"batch: {len(rows)}")
    print(f"max new tokens: {args.tokens}")
    print(f"generated tokens: {counts['plain']} (monitored: {counts['monitored']})")
    print(f"monitored vectors: 3 traits x {lm.n_layers} layers (residual)")
    print(f"plain generate tokens/s: {tps['plain']:.1f}")
    print(f"monitored tokens/s: {tps['monitored']:.1f}")
    print(f"monitored minimal tokens/s: {tps['minimal']:.1f}")
    print(f"hook ratio: {tps['monitored'] / tps['minimal']:.3f}")
    print(f"monitor ratio: {tps['monitored'] / tps['plain']:.3f}")


if __name__ == "__main__":
    main()
