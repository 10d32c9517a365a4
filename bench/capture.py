"""Capture overhead and load times on the default bundled model.

Prints `name: value` lines:
  plain forward tokens/s      full model forward (with LM head), no hooks
  capture tokens/s            capture() of all layers x {residual, attn_out, mlp_out, v}
  capture ratio               capture / plain (target >= 0.85)
  gguf load seconds           de-quantise the GGUF and write the safetensors cache (fresh cache dir)
  cached load seconds         load from the safetensors cache (target <= 5)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

import torch

from traitscope.activations import Example, capture
from traitscope.models import load_model


def main() -> None:
    alias = sys.argv[1] if len(sys.argv) > 1 else "smollm2-135m-instruct"
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TRAITSCOPE_CACHE"] = tmp
        t = time.perf_counter()
        load_model(alias)
        gguf_s = time.perf_counter() - t
        t = time.perf_counter()
        lm = load_model(alias)
        cached_s = time.perf_counter() - t
    prompts = [f"Write a short paragraph about topic number {i}: the history of bridges and rivers." for i in range(16)]
    examples = [
        Example(lm.prompt_ids(p), lm.response_ids(" Bridges have connected people for centuries, " * 4))
        for p in prompts
    ]
    width = max(len(e.prompt_ids) + len(e.response_ids) for e in examples)
    ids = torch.full((len(examples), width), lm.tokenizer.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, e in enumerate(examples):
        seq = e.prompt_ids + e.response_ids
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
    n_tokens = int(mask.sum())
    sites = ["residual", "attn_out", "mlp_out", "v"]
    layers = list(range(lm.n_layers))

    def plain() -> None:
        with torch.inference_mode():
            lm.model(input_ids=ids, attention_mask=mask, use_cache=False)

    def captured() -> None:
        capture(lm, examples, sites, layers, "all[:]", batch_size=len(examples))

    plain(), captured()  # warm up
    times: dict[str, list[float]] = {"plain": [], "capture": []}
    for _ in range(5):  # interleave so drift hits both alike
        for name, fn in (("plain", plain), ("capture", captured)):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    plain_tps = n_tokens / statistics.median(times["plain"])
    cap_tps = n_tokens / statistics.median(times["capture"])
    print(f"model: {alias}")
    print(f"batch tokens: {n_tokens}")
    print(f"plain forward tokens/s: {plain_tps:.0f}")
    print(f"capture tokens/s: {cap_tps:.0f}")
    print(f"capture ratio: {cap_tps / plain_tps:.2f}")
    print(f"gguf load seconds: {gguf_s:.1f}")
    print(f"cached load seconds: {cached_s:.1f}")


if __name__ == "__main__":
    main()
