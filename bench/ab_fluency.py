"""How well do the judge-free A/B signals predict what generation finds? For every judged
(generation) configuration already in a run's steering/results.jsonl, compute the A/B score and
the fluency cost (``ab_nll_delta``: the per-token NLL increase of the unsteered model's own greedy
answers under that steering; steering/ab.py) with ``evaluate_ab``, then report rank correlations:
fluency cost against judged coherence, A/B delta against judged delta, and how a fluency threshold
separates coherent (>= floor) from incoherent configurations.

    python bench/ab_fluency.py RUN_DIR [RUN_DIR ...] [--trait optimism|PATH] [--floor 75] [--max N]

Prints one line per configuration (label, position, ab_delta, ab_nll_delta, judged delta,
coherence), then `name: value` lines: spearman fluency~coherence, spearman ab~judged delta,
and per threshold the configurations kept / coherent among them / coherent left out.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from scipy.stats import spearmanr

from traitscope.models import load_model
from traitscope.models.loader import LoadedModel
from traitscope.steering.ab import ab_questions, evaluate_ab
from traitscope.steering.evaluate import SteerConfig
from traitscope.store import RunDir, read_jsonl
from traitscope.traits import load_trait
from traitscope.traits.schema import Trait

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run directories holding judged steering rows")
    p.add_argument("--trait", default="optimism")
    p.add_argument("--floor", type=float, default=75.0)
    p.add_argument("--max", type=int, default=None, help="at most N judged configurations per run (file order)")
    return p.parse_args()


def judged_configs(run: RunDir, limit: int | None) -> list[tuple[SteerConfig, dict[str, Any]]]:
    """(config, judged row) for every generation row with a score, steered or not, in file order."""
    out: dict[SteerConfig, dict[str, Any]] = {}
    for r in read_jsonl(run.steering_results):
        if r.get("eval") == "ab" or r.get("trait_mean") is None:
            continue
        c = r["config"]
        fields = {k: c[k] for k in ("method", "site", "ratio", "coef", "mode", "baseline", "position")}
        cfg = SteerConfig(layers=tuple(c["layers"]), scope=c.get("scope", "all"), **fields)
        if cfg.scope == "all":  # the A/B forward passes steer every token
            out.setdefault(cfg, r)
    steered = [(c, r) for c, r in out.items() if not c.baseline][:limit]
    base = [(c, r) for c, r in out.items() if c.baseline][:1]
    return base + steered


def one_run(lm: LoadedModel, trait: Trait, run: RunDir, limit: int | None) -> list[dict[str, Any]]:
    pairs = judged_configs(run, limit)
    if not pairs or not pairs[0][0].baseline:
        raise SystemExit(f"{run.root}: no judged baseline row in {run.steering_results}")
    questions, source = ab_questions(trait, run.root)
    ab = evaluate_ab(lm, trait, run, [c for c, _ in pairs], questions, source)
    base = pairs[0][1]["trait_mean"]
    return [
        {
            "label": c.label(),
            "position": c.position,
            "ab_delta": a["ab_delta"],
            "ab_nll_delta": a["ab_nll_delta"],
            "delta": j["trait_mean"] - base,
            "coherence": j["coherence_mean"],
        }
        for (c, j), a in zip(pairs[1:], ab[1:], strict=True)
    ]


def report(rows: list[dict[str, Any]], floor: float) -> None:
    for r in rows:
        print(
            f"{r['label']:48s} {r['position']:12s} ab_delta {r['ab_delta']:+.3f} ab_nll_delta {r['ab_nll_delta']:+.3f} "
            f"judged delta {r['delta']:+.1f} coherence {r['coherence']:.1f}"
        )
    rho, p = spearmanr([r["ab_nll_delta"] for r in rows], [r["coherence"] for r in rows])
    print(f"configurations: {len(rows)}")
    print(f"spearman ab_nll_delta~coherence: {rho:+.2f} (p={p:.2g})")
    rho, p = spearmanr([r["ab_delta"] for r in rows], [r["delta"] for r in rows])
    print(f"spearman ab_delta~judged delta: {rho:+.2f} (p={p:.2g})")
    n_ok = sum(r["coherence"] >= floor for r in rows)
    for t in THRESHOLDS:
        kept = [r for r in rows if r["ab_nll_delta"] <= t]
        good = sum(r["coherence"] >= floor for r in kept)
        print(f"threshold {t}: kept {len(kept)}, coherent among kept {good}, coherent left out {n_ok - good}")


def main() -> None:
    args = parse_args()
    lm = load_model()
    trait = load_trait(args.trait)
    t0 = time.perf_counter()
    rows = [r for run in args.runs for r in one_run(lm, trait, RunDir(Path(run)), args.max)]
    print(f"seconds: {time.perf_counter() - t0:.0f}")
    report(rows, args.floor)


if __name__ == "__main__":
    main()
