"""Does steering work on the default bundled model? The A/B score picks candidates cheaply, and
generation confirms them with the offline default judge (a lexicon where the trait has one, else the
rubric judge; coherence judge for coherence).

1. extract the trait at ``--position`` (default ``prompt[-1]``, the last prompt token: steers better
   than ``response[:]`` on this model, bench/RESULTS.md) and ``--site``, probe + mean_diff, layers
   20%-60%; reused if the run directory exists,
2. A/B sweep (judge-free, one forward pass per question and answer, batched): ``--methods`` x
   layers 20%-60% every ``--every``th x ``--ratios``; each row also gets its fluency cost
   ``ab_nll_delta`` (steering/ab.py),
3. the ``--top`` configurations by ab_delta among those with ab_nll_delta <= ``--max-nll-delta``
   are generated on all steering questions (48 greedy tokens) and scored by the default judge;
   best delta at coherence >= 75,
4. with ``--full`` only (slow): the earlier coefficient search, ratio sweep and multi-layer stages.

    python bench/steering_quality.py [RUN_DIR] [--trait optimism|PATH] [--position P] [--site S]
        [--methods probe,mean_diff] [--ratios 0.15,0.25,0.35] [--max-nll-delta 0.5] [--top 3] [--full]

Prints `name: value` lines: A/B baseline and per configuration, the picked configurations, baseline
trait, judged trait/coherence/delta per picked configuration, best config, best delta (target >= 20
for optimism, >= 10 for a folder-only trait), best coherence (target >= 75), and stage seconds.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from traitscope.extraction import ExtractConfig, extract
from traitscope.judges.registry import get_judge
from traitscope.models import load_model
from traitscope.models.loader import LoadedModel
from traitscope.specs import DEFAULT_POSITION, parse_layers, parse_position
from traitscope.steering.ab import MAX_NLL_DELTA, ab_questions, evaluate_ab, pick_ab
from traitscope.steering.evaluate import SteerConfig, best_config, evaluate_configs, grid, search_ratios
from traitscope.store import RunDir
from traitscope.traits import load_trait
from traitscope.traits.schema import Trait

FLOOR = 75.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "run", nargs="?", default=None, help="response[:] run directory (default runs/bench/<model>/<trait>); "
        "vectors at another --position go to RUN-<position slug>"
    )  # fmt: skip
    p.add_argument("--trait", default="optimism", help="bundled trait name or a trait folder (no lexicon needed)")
    p.add_argument("--limit", type=int, default=None, help="scenarios per polarity for extraction (default all)")
    p.add_argument("--layers", default="20%-60%")
    p.add_argument("--every", type=int, default=2, help="take every Nth layer of --layers for the A/B sweep")
    p.add_argument("--ratios", default="0.15,0.25,0.35")
    p.add_argument("--position", default="prompt[-1]", help="where vectors are read (extraction position)")
    p.add_argument("--site", default="residual", help="residual, attn_out or mlp_out (ratios scale per site)")
    p.add_argument("--methods", default="probe,mean_diff", help="vector methods the A/B sweep compares")
    p.add_argument("--max-nll-delta", type=float, default=MAX_NLL_DELTA, help="fluency limit for the A/B pick")
    p.add_argument("--top", type=int, default=3, help="configurations to confirm by generation")
    p.add_argument("--one-per-layer", action="store_true", help="pick at most one configuration per layer")
    p.add_argument("--full", action="store_true", help="also the slow search / ratio sweep / multi-layer stages")
    p.add_argument(
        "--configs", nargs="+", default=None, metavar="M:SITE:LAYERS:RATIO[:MODE[:SCOPE]]",
        help="skip the A/B stage: generate and judge these configurations (e.g. probe:residual:10:0.25, "
        "mean_diff:residual:8+10:0.4:weighted, probe:attn_out:10:2::response) at --position",
    )  # fmt: skip
    return p.parse_args()


def ab_stage(lm: LoadedModel, trait: Trait, runs: Runs, args: argparse.Namespace, layers: list[int]) -> list:
    """Steered A/B rows (full config, ab_score/ab_delta/ab_nll_delta) for every method, one grid each;
    the A/B questions come from trait.yaml or from the text run's rollouts."""
    ratios = [float(x) for x in args.ratios.split(",")]
    questions, source = ab_questions(trait, runs.text.root)
    print(f"ab source: {source}")
    print(f"ab questions: {len(questions)}")
    steered: list[dict[str, Any]] = []
    for method in args.methods.split(","):
        configs = grid(method, args.site, layers, ratios, position=args.position)
        rows = evaluate_ab(lm, trait, runs.vectors, configs, questions, source)
        print(f"ab baseline: {rows[0]['ab_score']:.3f} nll {rows[0]['ab_nll']:.3f}")
        for r in rows[1:]:
            print(
                f"ab {r['config']['label']}: score {r['ab_score']:.3f} delta {r['ab_delta']:+.3f} "
                f"nll_delta {r['ab_nll_delta']:+.3f}"
            )
        steered += rows[1:]
    return steered


def parse_config(text: str, position: str) -> SteerConfig:
    p = text.split(":")
    if len(p) < 4:
        raise SystemExit(f"--configs {text!r}: expected METHOD:SITE:LAYERS:RATIO[:MODE[:SCOPE]]")
    layers = tuple(int(x) for x in p[2].split("+"))
    mode = p[4] if len(p) > 4 and p[4] else "single"
    scope = p[5] if len(p) > 5 and p[5] else "all"
    return SteerConfig(p[0], p[1], layers, ratio=float(p[3]), mode=mode, position=position, scope=scope)


def judged_stage(lm: LoadedModel, trait: Trait, runs: Runs, configs: list[SteerConfig]) -> None:
    """Generate and judge the given configurations (no A/B): the exploration behind RESULTS.md."""
    judge = get_judge("default", trait=trait, run_dir=runs.text.root, lm=lm)
    base = SteerConfig("probe", "residual", (), baseline=True)
    for row in evaluate_configs(lm, trait, runs.vectors, [base, *configs], judge):
        print(
            f"judged {row['config']['label']} @ {row['config']['position']}: trait {row['trait_mean']:.1f} "
            f"coherence {row['coherence_mean']:.1f} delta {row['delta']:+.1f}"
        )


def confirm_stage(lm: LoadedModel, trait: Trait, runs: Runs, picked: list[dict[str, Any]]) -> list[dict]:
    judge = get_judge("default", trait=trait, run_dir=runs.text.root, lm=lm)
    print(f"judge: {getattr(judge, 'name', 'default')}")
    configs = [SteerConfig("probe", "residual", (), baseline=True)] + [
        SteerConfig(
            r["config"]["method"], r["config"]["site"], tuple(r["config"]["layers"]), ratio=r["config"]["ratio"],
            position=r["config"]["position"],
        )
        for r in picked
    ]  # fmt: skip
    rows = evaluate_configs(lm, trait, runs.vectors, configs, judge)
    base = rows[0]
    print(f"questions: {base['n']}")
    print(f"baseline trait: {base['trait_mean']:.1f}")
    print(f"baseline coherence: {base['coherence_mean']:.1f}")
    for ab, row in zip(picked, rows[1:], strict=True):
        print(
            f"confirm {row['config']['label']}: ab_delta {ab['ab_delta']:+.3f} nll_delta {ab['ab_nll_delta']:+.3f} "
            f"trait {row['trait_mean']:.1f} "
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


def slow_stages(lm: LoadedModel, trait: Trait, runs: Runs, pos: str) -> None:
    """The earlier stages: coefficient search per layer, ratio sweep at its best layer, multi-layer."""
    judge = get_judge("default", trait=trait, run_dir=runs.text.root, lm=lm)
    run = runs.vectors
    layers = parse_layers("20%-60%", lm.n_layers)[::2]
    rows = search_ratios(
        lm, trait, run.root, "probe", "residual", layers, judge, start=0.25, steps=4, floor=FLOOR, position=pos
    )
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
        lm,
        trait,
        run,
        [base] + [SteerConfig("probe", "residual", (layer,), ratio=r, position=pos) for r in ratios],
        judge,
    )
    for r, row in zip(ratios, sweep[1:], strict=True):
        print(f"layer {layer} ratio {r}: trait {row['trait_mean']:.1f} coherence {row['coherence_mean']:.1f}")
    span = tuple(parse_layers("20%-33%", lm.n_layers))
    multi = [
        SteerConfig("probe", "residual", span, ratio=r, mode=m, position=pos)
        for m in ("weighted", "orthogonal")
        for r in (0.3, 0.5)
    ]
    for row in evaluate_configs(lm, trait, run, [base] + multi, judge)[1:]:
        print(
            f"{row['config']['label']}: trait {row['trait_mean']:.1f} coherence {row['coherence_mean']:.1f} delta {row['delta']:.1f}"
        )


@dataclass
class Runs:
    """``text``: the response[:] run (rollouts: the judge's classifier data, A/B items built from
    pairs); ``vectors``: the run at ``--position`` whose vectors are steered (the same run when
    the position is response[:])."""

    text: RunDir
    vectors: RunDir


def extract_runs(lm: LoadedModel, trait: Trait, args: argparse.Namespace) -> Runs:
    text = RunDir(Path(args.run or f"runs/bench/{lm.name}/{trait.name}"))
    methods = tuple(dict.fromkeys(("probe", "mean_diff", *args.methods.split(","))))
    base = ExtractConfig(layers=args.layers, sites=("residual",), methods=("probe", "mean_diff"), limit=args.limit)
    extract(lm, trait, text.root, base)
    if args.position == DEFAULT_POSITION:
        vectors = text
    else:
        vectors = RunDir(text.root.with_name(f"{text.root.name}-{parse_position(args.position).slug}"))
    extract(lm, trait, vectors.root, replace(base, sites=(args.site,), methods=methods, position=args.position))
    return Runs(text, vectors)


def main() -> None:
    args = parse_args()
    lm = load_model()
    trait = load_trait(args.trait)
    print(f"trait: {trait.name} ({len(trait.scenarios)} scenarios, {len(trait.steering_questions)} steering questions)")
    t0 = time.perf_counter()
    runs = extract_runs(lm, trait, args)
    t1 = time.perf_counter()
    print(f"extract seconds: {t1 - t0:.0f}")
    if args.configs:
        judged_stage(lm, trait, runs, [parse_config(c, args.position) for c in args.configs])
        print(f"judged seconds: {time.perf_counter() - t1:.0f}")
        return
    layers = parse_layers(args.layers, lm.n_layers)[:: args.every]
    ab_rows = ab_stage(lm, trait, runs, args, layers)
    t2 = time.perf_counter()
    print(f"ab configs: {len(ab_rows)}")
    print(f"ab seconds: {t2 - t1:.0f}")
    picked = pick_ab(ab_rows, args.top, args.max_nll_delta, args.one_per_layer)
    print(f"picked (ab_nll_delta <= {args.max_nll_delta:g}): {', '.join(r['config']['label'] for r in picked)}")
    confirm_stage(lm, trait, runs, picked)
    t3 = time.perf_counter()
    print(f"confirm seconds: {t3 - t2:.0f}")
    if args.full:
        slow_stages(lm, trait, runs, args.position)
        print(f"slow stages seconds: {time.perf_counter() - t3:.0f}")


if __name__ == "__main__":
    main()
