"""Cost of a LoRA finetune on the default bundled model.

Prints `name: value` lines:
  examples, steps, tokens trained     200 examples cycled from the bundled sets (gloomy, flattering,
                                      neutral, mixed), 1 epoch, batch 4, rank 8, all linear layers
  train seconds                       the finetune call (target <= 300 on 2 cores)
  peak rss gb                         peak resident memory of the whole process (target < 4)
  torch threads                       --threads (default 2: "2 cores")
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import torch

from traitscope.finetune import FinetuneConfig, bundled_sets, finetune, load_conversations
from traitscope.models import load_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--examples", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    lm = load_model()
    pool = [c for name in bundled_sets() for c in load_conversations(name)]
    convs = [pool[i % len(pool)] for i in range(args.examples)]
    cfg = FinetuneConfig(rank=8, alpha=16, epochs=1, lr=2e-4, batch_size=4, save_every=25)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        prov = finetune(lm, convs, Path(tmp) / "adapter", cfg)
        seconds = time.perf_counter() - start
        tokens = sum(
            json.loads(x)["tokens"] for x in (Path(tmp) / "adapter" / "train_log.jsonl").read_text().splitlines()
        )
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB
    print(f"examples: {len(convs)}")
    print(f"steps: {prov['steps']}")
    print(f"tokens trained: {tokens}")
    print(f"loss first -> last: {prov['first_loss']} -> {prov['final_loss']}")
    print(f"train seconds: {seconds:.1f}")
    print(f"peak rss gb: {peak_gb:.2f}")
    print(f"torch threads: {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
