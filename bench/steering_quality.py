"""Does steering work on the default bundled model? The A/B score picks candidates cheaply, and
generation confirms them with the offline default judge (a lexicon where the trait has one, else the
rubric judge; coherence judge for coherence).

1. extract the trait (residual, probe + mean_diff, layers 20%-60%; reused if the run directory exists),
2. A/B sweep (judge-free, one forward pass per question and answer, batched): layers 20%-60% every
   ``--every``th x ``--ratios``,
3. the ``--top`` configurations by ab_delta are generated on all steering questions (48 greedy tokens)
   and scored by the default judge; best delta at coherence >= 75,
4. with ``--full`` only (slow): the earlier coefficient search, ratio sweep and multi-layer stages.

    python bench/steering_quality.py [RUN_DIR] [--trait optimism|PATH] [--limit N] [--full]

Prints `name: value` lines: A/B baseline and per configuration, the picked configurations, baseline
trait, judged trait/coherence/delta per picked configuration, best config, best delta (target >= 20
for optimism, >= 10 for a folder-only trait), best coherence (target >= 75), and stage seconds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from traitscope.extraction import ExtractConfig, extract
from traitscope.judges.registry import get_judge
from traitscope.models import load_model
from traitscope.models.loader import LoadedModel
from traitscope.specs import parse_layers
from traitscope.steering.evaluate import SteerConfig, best_config, evaluate_configs, search_ratios
from traitscope.steering.session import SteerEvalPlan, steer_eval
from traitscope.store import RunDir
from traitscope.traits import load_trait
from traitscope.traits.schema import Trait

FLOOR = 75.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", default=None, help="run directory (default runs/bench/<model>/<trait>)")
    p.add_argument("--trait", default="optimism", help="bundled trait name or a trait folder (no lexicon needed)")
    p.add_argument("--limit", type=int, default=None, help="scenarios per polarity for extraction (default all)")
    p.add_argument("--layers", default="20%-60%")
    p.add_argument("--every", type=int, default=2, help="take every Nth layer of --layers for the A/B sweep")
    p.add_argument("--ratios", default="0.15,0.25,0.35")
    p.add_argument("--top", type=int, default=3, help="configurations to confirm by generation")
    p.add_argument("--full", action="store_true", help="also the slow search / ratio sweep / multi-layer stages")
    return p.parse_args()


def ab_stage(lm: LoadedModel, trait: Trait, run: RunDir, layers: list[int], ratios: tuple[float, ...]) -> list:
    plan = SteerEvalPlan(layers=",".join(map(str, layers)), ratios=ratios, eval_kind="ab")
    out = steer_eval(lm, trait, run, plan)
    print(f"ab source: {out.ab_source}")
    print(f"ab questions: {out.n_questions}")
    rows = [r for r in out.summary if r["ab_score"] is not None]
    base = next(r for r in rows if not r["layers"])
    print(f"ab baseline: {base['ab_score']:.3f}")
    for r in rows:
        if r["layers"]:
            print(f"ab {r['config']}: score {r['ab_score']:.3f} delta {r['ab_delta']:+.3f}")
    return [r for r in rows if r["layers"]]


def confirm_stage(lm: LoadedModel, trait: Trait, run: RunDir, picked: list[dict[str, Any]]) -> list[dict]:
    judge = get_judge("default", trait=trait, run_dir=run.root, lm=lm)
    print(f"judge: {getattr(judge, 'name', 'default')}")
    configs = [SteerConfig("probe", "residual", (), baseline=True)] + [
        SteerConfig("probe", "residual", tuple(r["layers"]), ratio=r["ratio"]) for r in picked
    ]
    rows = evaluate_configs(lm, trait, run, configs, judge)
    base = rows[0]
    print(f"questions: {base['n']}")
    print(f"baseline trait: {base['trait_mean']:.1f}")
    print(f"baseline coherence: {base['coherence_mean']:.1f}")
    for ab, row in zip(picked, rows[1:], strict=True):
        print(
            f"confirm {row['config']['label']}: ab_delta {ab['ab_delta']:+.3f} trait {row['trait_mean']:.1f} "
            f"coherence {row['coherence_mean']:.1f} delta {row['delta']:+.1f}"
        )
    best = best_config(rows, FLOOR)
    if best is None:
        print("best config: none above the coherence floor")
    else:
        print(f"best config: {best['config']['label']}")
        print(f"best trait: {best['trait_mean']:.1f}")
        print(f"best delta: {best['delta']:+.1f}")
        print(f"best coherence: {best['coherence_mean']:.1f}")
    return rows


def slow_stages(lm: LoadedModel, trait: Trait, run: RunDir) -> None:
    """The earlier stages: coefficient search per layer, ratio sweep at its best layer, multi-layer."""
    judge = get_judge("default", trait=trait, run_dir=run.root, lm=lm)
    layers = parse_layers("20%-60%", lm.n_layers)[::2]
    rows = search_ratios(lm, trait, run.root, "probe", "residual", layers, judge, start=0.25, steps=4, floor=FLOOR)
    best = best_config(rows, FLOOR)
    if best is None:
        print("search best config: none above the coherence floor")
        return
    print(
        f"search best config: {best['config']['label']} delta {best['delta']:+.1f} coherence {best['coherence_mean']:.1f}"
    )
    layer = best["config"]["layers"][0]
    ratios = (0.2, 0.4, 0.6, 0.8, 1.0, 1.3, 1.6)
    base = SteerConfig("probe", "residual", (), baseline=True)
    sweep = evaluate_configs(
        lm, trait, run, [base] + [SteerConfig("probe", "residual", (layer,), ratio=r) for r in ratios], judge
    )
    for r, row in zip(ratios, sweep[1:], strict=True):
        print(f"layer {layer} ratio {r}: trait {row['trait_mean']:.1f} coherence {row['coherence_mean']:.1f}")
    span = tuple(parse_layers("20%-33%", lm.n_layers))
    multi = [
        SteerConfig("probe", "residual", span, ratio=r, mode=m) for m in ("weighted", "orthogonal") for r in (0.3, 0.5)
    ]
    for row in evaluate_configs(lm, trait, run, [base] + multi, judge)[1:]:
        print(
            f"{row['config']['label']}: trait {row['trait_mean']:.1f} coherence {row['coherence_mean']:.1f} delta {row['delta']:.1f}"
        )


def main() -> None:
    args = parse_args()
    lm = load_model()
    trait = load_trait(args.trait)
    run = RunDir(Path(args.run or f"runs/bench/{lm.name}/{trait.name}"))
    print(f"trait: {trait.name} ({len(trait.scenarios)} scenarios, {len(trait.steering_questions)} steering questions)")
    t0 = time.perf_counter()
    cfg = ExtractConfig(layers=args.layers, sites=("residual",), methods=("probe", "mean_diff"), limit=args.limit)
    extract(lm, trait, run.root, cfg)
    t1 = time.perf_counter()
    print(f"extract seconds: {t1 - t0:.0f}")
    layers = parse_layers(args.layers, lm.n_layers)[:: args.every]
    ratios = tuple(float(x) for x in args.ratios.split(","))
    ab_rows = ab_stage(lm, trait, run, layers, ratios)
    t2 = time.perf_counter()
    print(f"ab configs: {len(ab_rows)}")
    print(f"ab seconds: {t2 - t1:.0f}")
    picked = sorted(ab_rows, key=lambda r: r["ab_delta"], reverse=True)[: args.top]
    print(f"picked: {', '.join(r['config'] for r in picked)}")
    confirm_stage(lm, trait, run, picked)
    t3 = time.perf_counter()
    print(f"confirm seconds: {t3 - t2:.0f}")
    if args.full:
        slow_stages(lm, trait, run)
        print(f"slow stages seconds: {time.perf_counter() - t3:.0f}")


if __name__ == "__main__":
    main()
