"""Does the coherence judge score over-steered text below 50?

Extracts small optimism vectors (residual, probe, ``--limit`` scenarios per polarity), steers the
first ``--questions`` steering questions at high perturbation ratios, generates ``--tokens``
greedy tokens and scores every answer with the offline coherence judge. Prints `name: value`
lines per model: answers scored, how many score >= 50 (target 0), the highest scores with the
start of their text, and the mean coherence per ratio.

    python bench/oversteer.py [--models smollm2-135m-instruct:10,14 gemma3-270m:8] [--root DIR]
        [--ratios 0.8,1.0,1.3,1.6,2.0,3.0] [--questions 6] [--tokens 64] [--limit 24]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from traitscope.extraction import ExtractConfig, extract  # noqa: E402
from traitscope.judges.coherence import CoherenceJudge  # noqa: E402
from traitscope.models import load_model  # noqa: E402
from traitscope.steering.evaluate import SteerConfig, evaluate_configs  # noqa: E402
from traitscope.store import RunDir  # noqa: E402
from traitscope.traits import load_trait  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["smollm2-135m-instruct:10,14", "gemma3-270m:8"])
    p.add_argument("--root", type=Path, default=Path("runs/bench-oversteer"))
    p.add_argument("--ratios", default="0.8,1.0,1.3,1.6,2.0,3.0")
    p.add_argument("--questions", type=int, default=6)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--limit", type=int, default=24)
    return p.parse_args()


def one_model(spec: str, args: argparse.Namespace) -> None:
    name, layer_text = spec.split(":")
    layers = [int(x) for x in layer_text.split(",")]
    lm = load_model(name)
    trait = load_trait("optimism")
    run = RunDir.of(lm.slug, trait.name, args.root)
    extract(
        lm, trait, run.root, ExtractConfig(layers=layer_text, sites=("residual",), methods=("probe",), limit=args.limit)
    )
    ratios = [float(r) for r in args.ratios.split(",")]
    configs = [SteerConfig("probe", "residual", (layer,), ratio=r) for layer in layers for r in ratios]
    judge = CoherenceJudge(lm)  # its trait scores are None: only coherence is read here
    rows = evaluate_configs(
        lm, trait, run, configs, judge, questions=trait.steering_questions[: args.questions], max_new_tokens=args.tokens
    )
    answers = [(row["config"]["ratio"], a) for row in rows for a in row["answers"]]
    high = sorted((a for a in answers if (a[1]["coherence"] or 0) >= 50), key=lambda a: -a[1]["coherence"])
    print(f"{lm.slug} answers: {len(answers)}")
    print(f"{lm.slug} scoring >= 50: {len(high)}")
    for ratio, a in high[:5]:
        print(f"{lm.slug} high: {a['coherence']:.0f} ratio {ratio:g}: {a['answer'][:90]!r}")
    for r in ratios:
        values = [a["coherence"] for ratio, a in answers if ratio == r and a["coherence"] is not None]
        print(f"{lm.slug} ratio {r:g} mean coherence: {sum(values) / max(1, len(values)):.1f}")


def main() -> None:
    args = parse_args()
    for spec in args.models:
        one_model(spec, args)


if __name__ == "__main__":
    main()
