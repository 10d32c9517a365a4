"""How well does the judge-free A/B score agree with the generation-based judged delta, per trait?

For each trait: a small extraction (residual, probe, ``--limit`` scenarios per polarity), then
``steer-eval --eval both`` over ``--layers`` x ``--ratios`` (the same configurations scored both
ways: A/B delta from one forward pass per question and answer, judged delta from greedy answers
to the first ``--questions`` steering questions scored by the default judge). Prints, per trait,
`name: value` lines: the judge, A/B source, per configuration ab_delta / judged delta / coherence,
Spearman and Kendall rank correlations between ab_delta and judged delta (all configurations, and
only those at coherence >= 75), and stage seconds.

    python bench/ab_agreement.py [--traits optimism,uncertainty,formality,sycophancy] [--root DIR]
        [--layers 6,10,14] [--ratios 0.15,0.25,0.35] [--questions 8] [--limit 24]

Run directories are kept under ``--root`` (default runs/bench-ab/<model>/<trait>), so a second
call reuses the vectors and every scored configuration (steering/results.jsonl).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from scipy.stats import kendalltau, spearmanr  # noqa: E402

from traitscope.extraction import ExtractConfig, extract  # noqa: E402
from traitscope.models import load_model  # noqa: E402
from traitscope.models.loader import LoadedModel  # noqa: E402
from traitscope.steering.session import SteerEvalPlan, steer_eval  # noqa: E402
from traitscope.store import RunDir  # noqa: E402
from traitscope.traits import load_trait  # noqa: E402

FLOOR = 75.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--traits", default="optimism,uncertainty,formality,sycophancy")
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--root", type=Path, default=Path("runs/bench-ab"))
    p.add_argument("--layers", default="6,10,14")
    p.add_argument("--ratios", default="0.15,0.25,0.35")
    p.add_argument("--questions", type=int, default=8)
    p.add_argument("--limit", type=int, default=24, help="scenarios per polarity for the extraction")
    return p.parse_args()


def rank_agreement(xs: list[float], ys: list[float]) -> str:
    if len(xs) < 3:
        return f"n/a (n = {len(xs)})"
    rho, p_rho = spearmanr(xs, ys)
    tau, p_tau = kendalltau(xs, ys)
    return f"spearman {rho:+.2f} (p {p_rho:.2f}), kendall {tau:+.2f} (p {p_tau:.2f}), n {len(xs)}"


def one_trait(lm: LoadedModel, name: str, args: argparse.Namespace) -> None:
    trait = load_trait(name)
    run = RunDir.of(lm.slug, trait.name, args.root)
    t0 = time.perf_counter()
    layers = args.layers
    extract(
        lm, trait, run.root, ExtractConfig(layers=layers, sites=("residual",), methods=("probe",), limit=args.limit)
    )
    t1 = time.perf_counter()
    ratios = tuple(float(r) for r in args.ratios.split(","))
    plan = SteerEvalPlan(layers=layers, ratios=ratios, eval_kind="both", questions=args.questions, max_new_tokens=32)
    out = steer_eval(lm, trait, run, plan)
    t2 = time.perf_counter()
    print(f"{name} judge: {out.judge}")
    print(f"{name} ab source: {out.ab_source}")
    rows = [r for r in out.summary if r["layers"] and r["delta"] is not None and r["ab_delta"] is not None]
    base = next(r for r in out.summary if not r["layers"])
    print(
        f"{name} baseline: trait {base['trait_mean']:.1f} coherence {base['coherence_mean']:.1f} ab {base['ab_score']:.3f}"
    )
    for r in rows:
        print(
            f"{name} {r['config']}: ab_delta {r['ab_delta']:+.3f} delta {r['delta']:+.1f} coherence {r['coherence_mean']:.1f}"
        )
    print(f"{name} agreement all: {rank_agreement([r['ab_delta'] for r in rows], [r['delta'] for r in rows])}")
    ok = [r for r in rows if r["coherence_mean"] >= FLOOR]
    print(f"{name} agreement coherent: {rank_agreement([r['ab_delta'] for r in ok], [r['delta'] for r in ok])}")
    print(f"{name} seconds: extract {t1 - t0:.0f} steer-eval {t2 - t1:.0f}")


def main() -> None:
    args = parse_args()
    lm = load_model(args.model)
    for name in args.traits.split(","):
        one_trait(lm, name.strip(), args)


if __name__ == "__main__":
    main()
