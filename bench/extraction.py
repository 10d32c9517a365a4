"""Extraction speed, memory and quality on the default bundled model.

`traitscope extract optimism` with defaults (all 30 layers, 4 sites, 4 methods, 160 rollouts),
then formality with the same settings. Prints `name: value` lines:
  optimism extract seconds      wall time of the whole pipeline (target <= 300)
  peak rss gb                   max resident memory of this process (target < 4)
  <trait> best probe auroc      best held-out AUROC of a probe over sites and layers (target >= 0.95)
  <trait> best probe site/layer
  <trait> random auroc mean     mean held-out AUROC of the `random` method over sites and layers (~0.5)
  <trait> random p95 auroc      mean over sites/layers of the 95th percentile of 200 random directions
"""

from __future__ import annotations

import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from traitscope.extraction import ExtractConfig, extract
from traitscope.models import load_model
from traitscope.traits import load_trait


def main() -> None:
    traits = sys.argv[1:] or ["optimism", "formality"]
    lm = load_model()
    with tempfile.TemporaryDirectory() as tmp:
        for name in traits:
            t = time.perf_counter()
            res = extract(lm, load_trait(name), Path(tmp) / name, ExtractConfig())
            seconds = time.perf_counter() - t
            probes = [r for r in res.rows if r["method"] == "probe"]
            best = max(probes, key=lambda r: r["auroc"])
            randoms = [r["auroc"] for r in res.rows if r["method"] == "random"]
            print(f"{name} extract seconds: {seconds:.0f}")
            print(f"{name} rollouts kept: {res.n_kept}")
            print(f"{name} best probe auroc: {best['auroc']:.3f}")
            print(f"{name} best probe site/layer: {best['site']}/{best['layer']}")
            print(f"{name} random auroc mean: {statistics.mean(randoms):.3f}")
            print(f"{name} random p95 auroc: {statistics.mean(r['random_auroc_p95'] for r in probes):.3f}")
    print(f"peak rss gb: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024:.2f}")


if __name__ == "__main__":
    main()
