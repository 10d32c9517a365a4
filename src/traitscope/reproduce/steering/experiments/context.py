"""What every steering experiment shares: the :class:`Context` it runs in (model, judge, profile,
where runs live), resumable extraction runs, and steering evaluation rows reduced to numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traitscope.models.loader import LoadedModel
from traitscope.progress import Reporter, Silent
from traitscope.reproduce.common.profiles import Profile, SteeringSizes
from traitscope.reproduce.common.runs import extract_trait, run_dir_for
from traitscope.reproduce.common.session import Timings
from traitscope.reproduce.steering.findings import REFUSAL_SCORE
from traitscope.steering.evaluate import SteerConfig, evaluate_configs
from traitscope.traits.schema import Trait

METHODS = ("mean_diff", "probe")


@dataclass
class Context:
    """What every experiment needs: the model under test, its judge, sizes, where runs live."""

    lm: LoadedModel
    judge: Any
    judge_label: str
    profile: Profile  # a steering profile (its ``steering`` sizes set)
    out: Path
    reporter: Reporter = field(default_factory=Silent)
    timings: Timings = field(default_factory=Timings)
    # filled as the run goes: the coherence floor from the unsteered optimism answers
    floor: float = 75.0
    extra: dict[str, Any] = field(default_factory=dict)  # run directories, baseline, layer grids
    working_ratio: float = 0.6  # set from finding 1 (see SteeringSizes)

    @property
    def sizes(self) -> SteeringSizes:
        return self.profile.sizes

    def ratios(self, factors: Sequence[float]) -> list[float]:
        """Multiples of the working ratio, rounded so they meet the sweep's grid points (and its
        results.jsonl rows) where they coincide."""
        return sorted({round(self.working_ratio * f, 4) for f in factors})

    def run_dir(self, lm: LoadedModel, trait: str) -> Path:
        return run_dir_for(self.out, f"steering-{self.profile.name}", lm, trait)


def scan_layers(n_layers: int, step: int) -> list[int]:
    return list(range(0, n_layers, step))


def depth_layer(depth: float, n_layers: int, allowed: Sequence[int] | None = None) -> int:
    """The layer at a relative depth, snapped to ``allowed`` (e.g. the scan grid) when given."""
    target = depth * (n_layers - 1)
    pool = list(allowed) if allowed else list(range(n_layers))
    return min(pool, key=lambda x: (abs(x - target), x))


def ensure_extraction(
    ctx: Context, lm: LoadedModel, trait: str, sites: tuple[str, ...], methods: tuple[str, ...]
) -> tuple[Path, dict[str, Any]]:
    """Extract (or resume) one trait on one model at every layer; returns (run dir, evaluation)."""
    run_dir = ctx.run_dir(lm, trait)
    evaluation = extract_trait(
        lm, trait, run_dir, ctx.profile, list(range(lm.n_layers)), sites, methods, reporter=ctx.reporter
    )
    return run_dir, evaluation


def eval_row(evaluation: dict[str, Any], site: str, method: str, layer: int) -> dict[str, Any]:
    return next(r for r in evaluation["results"] if r["site"] == site and r["method"] == method and r["layer"] == layer)


def steer_rows(
    ctx: Context,
    trait: Trait,
    run_dir: Path,
    configs: Sequence[SteerConfig],
    questions: Sequence[str],
    lm: LoadedModel | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(baseline row, one row per config), numbers only; results.jsonl makes a re-run resume."""
    # one baseline per run dir and question list: its key must not depend on the configs
    baseline = SteerConfig("probe", "residual", (), baseline=True)
    rows = evaluate_configs(
        lm or ctx.lm,
        trait,
        run_dir,
        [baseline, *configs],
        ctx.judge,
        questions=list(questions),
        max_new_tokens=ctx.sizes.answer_tokens,
        batch_size=ctx.sizes.steer_batch_size,
        reporter=ctx.reporter,
    )
    slim = [slim_row(r) for r in rows]
    return slim[0], slim[1:]


def slim_row(r: dict[str, Any]) -> dict[str, Any]:
    c = r["config"]
    scores = [a["trait"] for a in r["answers"] if a["trait"] is not None]
    return {
        "label": c["label"],
        "method": c["method"],
        "site": c["site"],
        "layers": list(c["layers"]),
        "ratio": c["ratio"],
        "mode": c["mode"],
        "baseline": c["baseline"],
        "coefs": c.get("coefs", {}),
        "trait": r["trait_mean"],
        "coherence": r["coherence_mean"],
        "delta": r["delta"],
        "n": r["n"],
        # share of answers the judge puts at or past the midpoint (for refusal: blocked)
        "share_high": sum(s >= REFUSAL_SCORE for s in scores) / len(scores) if scores else None,
        "answers": [
            {"question": a["question"], "answer": a["answer"], "trait": a["trait"], "coherence": a["coherence"]}
            for a in r["answers"]
        ],
    }


def coherent(row: dict[str, Any], floor: float) -> bool:
    return row["coherence"] is not None and row["coherence"] >= floor


def best_coherent(rows: Sequence[dict[str, Any]], floor: float, key: str = "delta") -> dict[str, Any] | None:
    ok = [r for r in rows if coherent(r, floor) and r[key] is not None]
    return max(ok, key=lambda r: r[key]) if ok else None


def config_label(row: dict[str, Any] | None, method: bool = False) -> str:
    """A steered configuration in a few words: ``L8 @ 0.4``, ``L[7-12] weighted @ 0.8``."""
    if row is None:
        return "none coherent"
    layers = row["layers"]
    where = f"L{layers[0]}" if len(layers) == 1 else f"L[{layers[0]}-{layers[-1]}] {row['mode']}"
    return f"{row['method'] + ' ' if method else ''}{where} @ {row['ratio']:g}"
