"""Steering overhead and batched-sweep speedup on the default bundled model.

Prints `name: value` lines:
  plain tokens/s, steered tokens/s, steer ratio   same batch of 16 prompts, exactly 32 new tokens, greedy;
                                                  steered = 3 layers of residual steering (target >= 0.95)
  sequential seconds, batched seconds, sweep speedup
                                                  8 configurations x 4 prompts, one after another vs
                                                  as rows of one batched call (target >= 3)
"""

from __future__ import annotations

import statistics
import time

import torch

from traitscope.generation import SamplingConfig
from traitscope.models import load_model
from traitscope.steering import SteeringSpec, SteerTerm, steer
from traitscope.steering.sweep import generate_rows


def main() -> None:
    lm = load_model()
    torch.manual_seed(0)
    v = torch.randn(lm.hidden_size)
    v /= v.norm()
    prompts = [lm.prompt_ids(f"Tell me something interesting about the number {i}.") for i in range(16)]
    cfg = SamplingConfig(max_new_tokens=32)
    spec = SteeringSpec([SteerTerm("residual", layer, v, 2.0) for layer in (8, 10, 12)])

    ids, mask = lm.left_pad(prompts)

    def run_fixed() -> int:
        # min_new_tokens = max_new_tokens: both runs generate exactly the same number of tokens,
        # so the ratio measures the hooks' cost, not where steering happens to stop a sentence
        with torch.inference_mode():
            out = lm.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=32,
                min_new_tokens=32,
                do_sample=False,
                pad_token_id=lm.pad_id,
            )
        return (out.shape[1] - ids.shape[1]) * out.shape[0]

    def plain() -> int:
        return run_fixed()

    def steered() -> int:
        with steer(lm, spec):
            return run_fixed()

    plain(), steered()
    rates: dict[str, list[float]] = {"plain": [], "steered": []}
    for _ in range(5):
        for name, fn in (("plain", plain), ("steered", steered)):
            t = time.perf_counter()
            n = fn()
            rates[name].append(n / (time.perf_counter() - t))
    p, s = statistics.median(rates["plain"]), statistics.median(rates["steered"])
    print(f"plain tokens/s: {p:.0f}")
    print(f"steered tokens/s: {s:.0f}")
    print(f"steer ratio: {s / p:.2f}")

    questions = [
        lm.prompt_ids(q)
        for q in (
            "How do I learn to cook?",
            "Is it worth buying a house now?",
            "What should I do this weekend?",
            "How will my exam go?",
        )
    ]
    configs = [[SteerTerm("residual", layer, v, coef)] for layer in (6, 9, 12, 15) for coef in (2.0, 4.0)]
    rows = [(q, c) for c in configs for q in questions]
    t = time.perf_counter()
    for c in configs:
        generate_rows(lm, [(q, c) for q in questions], cfg, batch_size=len(questions))
    seq = time.perf_counter() - t
    t = time.perf_counter()
    generate_rows(lm, rows, cfg, batch_size=len(rows))
    batched = time.perf_counter() - t
    print(f"sequential seconds: {seq:.1f}")
    print(f"batched seconds: {batched:.1f}")
    print(f"sweep speedup: {seq / batched:.2f}")


if __name__ == "__main__":
    main()
