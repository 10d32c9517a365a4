"""Does steering work on the default bundled model? Optimism, all steering questions, offline
default judge (VADER valence + coherence).

1. extract optimism (residual, probe; reused if the run directory exists),
2. coefficient search per layer (layers 20%-60%, every 2nd; start ratio 0.25; 4 steps; floor 75),
3. a ratio sweep (0.2 ... 1.6) at the best layer, to show where coherence breaks,
4. multi-layer steering over layers 20%-33% (weighted and orthogonal, total ratio 0.3 and 0.5).

Prints `name: value` lines: baseline trait, best config, best trait, best delta (target >= 20),
best coherence (target >= 75), and `coherence at ratio R` for the sweep, `breakdown ratio`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from traitscope.activations import parse_layers
from traitscope.extraction import ExtractConfig, extract
from traitscope.judges.registry import get_judge
from traitscope.models import load_model
from traitscope.steering.evaluate import SteerConfig, best_config, evaluate_configs, search_ratios
from traitscope.traits import load_trait

FLOOR = 75.0


def main() -> None:
    run = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/bench/smollm2-135m-instruct/optimism")
    lm = load_model()
    trait = load_trait("optimism")
    extract(lm, trait, run, ExtractConfig(sites=("residual",), methods=("probe", "mean_diff", "random")))
    judge = get_judge("default", trait=trait, run_dir=run, lm=lm)
    layers = parse_layers("20%-60%", lm.n_layers)[::2]
    rows = search_ratios(lm, trait, run, "probe", "residual", layers, judge, start=0.25, steps=4, floor=FLOOR)
    base = rows[0]
    best = best_config(rows, FLOOR)
    print(f"questions: {base['n']}")
    print(f"baseline trait: {base['trait_mean']:.1f}")
    print(f"baseline coherence: {base['coherence_mean']:.1f}")
    print(f"configs evaluated: {len(rows) - 1}")
    if best is None:
        print("best config: none above the coherence floor")
        return
    print(f"best config: {best['config']['label']}")
    print(f"best trait: {best['trait_mean']:.1f}")
    print(f"best delta: {best['delta']:.1f}")
    print(f"best coherence: {best['coherence_mean']:.1f}")
    layer = best["config"]["layers"][0]
    ratios = (0.2, 0.4, 0.6, 0.8, 1.0, 1.3, 1.6)
    sweep = evaluate_configs(
        lm,
        trait,
        run,
        [SteerConfig("probe", "residual", (), baseline=True)]
        + [SteerConfig("probe", "residual", (layer,), ratio=r) for r in ratios],
        judge,
    )
    breakdown = None
    for r, row in zip(ratios, sweep[1:], strict=True):
        print(f"layer {layer} ratio {r}: trait {row['trait_mean']:.1f} coherence {row['coherence_mean']:.1f}")
        if breakdown is None and (row["coherence_mean"] or 0) < FLOOR:
            breakdown = r
    print(f"breakdown ratio: {breakdown}")
    # the research log's multi-layer finding: spread the push over contiguous early-mid layers
    span = tuple(parse_layers("20%-33%", lm.n_layers))
    multi = evaluate_configs(
        lm,
        trait,
        run,
        [SteerConfig("probe", "residual", (), baseline=True)]
        + [
            SteerConfig("probe", "residual", span, ratio=r, mode=m)
            for m in ("weighted", "orthogonal")
            for r in (0.3, 0.5)
        ],
        judge,
    )
    for row in multi[1:]:
        print(
            f"{row['config']['label']}: trait {row['trait_mean']:.1f} coherence {row['coherence_mean']:.1f} "
            f"delta {row['delta']:.1f}"
        )


if __name__ == "__main__":
    main()
