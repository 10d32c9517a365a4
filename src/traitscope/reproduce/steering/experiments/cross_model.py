"""Finding 7: steering one model with vectors carried from another.

The log carried optimism vectors from Mistral-7B base to its SFT and DPO descendants (same
width, used as is). The bundled pair differs in width and depth (gemma-3-270m base d=640 × 18 →
SmolLM2 instruct d=576 × 30), so the vectors travel through the detection reproduction's ridge
maps (:mod:`traitscope.reproduce.common.ridge`), fitted on the same neutral texts read by both
models, at the same relative depth:

``push``  v_t = Wᵀ v_s with W the source → target map: exact for a displacement such as a
          difference of means, which is what steering adds.
``pull``  v_t = M v_s with M the target → source map: the direction that reads the source
          vector's value off target activations (exact for a linear read-out).

The carried vectors are saved as a vector file of the target model (activation norms from the
target's own run) and steered exactly like its own vectors, at the same layer and ratios."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from traitscope.activations import parse_position
from traitscope.errors import TraitscopeError
from traitscope.evaluation import auroc
from traitscope.models.loader import LoadedModel
from traitscope.reproduce.common.ridge import LinearMap, capture_texts, fit_ridge_map, map_position, neutral_texts
from traitscope.reproduce.common.runs import load_run, neutral_cache
from traitscope.reproduce.common.verdict import Check
from traitscope.reproduce.steering.experiments.context import (
    Context,
    best_coherent,
    depth_layer,
    ensure_extraction,
    eval_row,
    steer_rows,
)
from traitscope.reproduce.steering.findings import check
from traitscope.steering.evaluate import SteerConfig
from traitscope.store import RunDir, VectorSet, load_vectors, save_vectors
from traitscope.traits.schema import Trait

ARMS = ("push", "pull")
PRIMARY = ("mean_diff", "push")  # chosen before any run: the map carries a displacement exactly
OWN_METHODS = ("mean_diff", "probe", "random")  # random: the control for "any push of that size"


def carried_name(method: str, arm: str) -> str:
    return f"carried_{arm}_{method}"


def carry(v_src: torch.Tensor, arm: str, push_W: torch.Tensor, pull_W: torch.Tensor) -> torch.Tensor:
    """A unit target-space direction from a unit source vector."""
    v = v_src.float() @ push_W if arm == "push" else pull_W @ v_src.float()
    return v / v.norm().clamp_min(1e-12)


def save_carried(
    target_vset: VectorSet, layer: int, name: str, v: torch.Tensor, run_dir: Path, src: str, position: str
) -> Path:
    """Write a carried vector as the target model's vector file, so steering treats it like its own."""
    prov = copy.deepcopy(target_vset.provenance)
    prov.method = name
    prov.layers = [layer]
    prov.act_norms = {str(layer): float(target_vset.act_norm(layer) or 0.0)}
    prov.extras = {"carried_from": src}
    path = RunDir(Path(run_dir)).vector_file(parse_position(position).slug, prov.site, name)
    save_vectors(path, VectorSet({layer: v}, prov))
    return path


def _target_acts(run_dir: Path, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    run = load_run(run_dir, ("residual",))
    return run.at("residual", layer).float(), run.y.bool()


def fit_maps(ctx: Context, base: LoadedModel, trait: str, ls: int, lt: int) -> tuple[LinearMap, LinearMap, int, str]:
    """(push: source → target, pull: target → source, texts used, position) at one layer pair,
    fitted on neutral texts read raw by both models (captures cached under the out dir)."""
    texts = neutral_texts(trait, ctx.profile.neutral_cap)
    position = map_position(ctx.profile.position)  # a response mean maps to the mean over the whole text
    cache = neutral_cache(ctx.out, f"steering-{ctx.profile.name}")

    def read(lm: LoadedModel, layer: int) -> torch.Tensor:
        where = cache / f"{lm.slug}-{trait}-L{layer}"
        return capture_texts(lm, texts, ["residual"], [layer], position, where, reporter=ctx.reporter)["residual"][:, 0]

    Ns, Nt = read(base, ls), read(ctx.lm, lt)
    seed = ctx.profile.seed
    return fit_ridge_map(Ns, Nt, seed=seed), fit_ridge_map(Nt, Ns, seed=seed), len(texts), position


def carry_vectors(
    src_run: Path, own_run: Path, ls: int, lt: int, push: LinearMap, pull: LinearMap, source: str, position: str
) -> tuple[Path, list[dict[str, Any]]]:
    """Carry both methods through both maps, save them as the target's vector files, and score
    each on the target's extraction rows (which no carried vector was fitted on)."""
    slug = parse_position(position).slug
    carried_run = RunDir(own_run).variant("carried").root
    X_t, y_t = _target_acts(own_run, lt)
    arms: list[dict[str, Any]] = []
    for method in ("mean_diff", "probe"):
        v_src = load_vectors(RunDir(src_run).vector_file(slug, "residual", method))[ls]
        own_vset = load_vectors(RunDir(own_run).vector_file(slug, "residual", method))
        for arm in ARMS:
            v = carry(v_src, arm, push.W, pull.W)
            name = carried_name(method, arm)
            save_carried(own_vset, lt, name, v, carried_run, f"{source} L{ls} {method} via {arm} map", position)
            arms.append(
                {
                    "method": method,
                    "arm": arm,
                    "name": name,
                    "label": f"{method} via {arm} map",
                    "auroc": float(auroc((X_t @ v)[:, None], y_t)[0]),
                    "cos_with_own": float(torch.nn.functional.cosine_similarity(v, own_vset[lt].float(), dim=0)),
                }
            )
    return carried_run, arms


def cross_model(
    ctx: Context,
    trait: Trait,
    own_run: Path,
    own_eval: dict[str, Any],
    target_layer: int,
    questions: Sequence[str],
    base_model: str,
    load: Callable[[str], LoadedModel],
) -> dict[str, Any]:
    try:
        base = load(base_model)
    except TraitscopeError as exc:
        return {"untestable": f"cannot load the base model {base_model!r}: {exc}", "checks": []}
    src_run, src_eval = ensure_extraction(ctx, base, trait.name, ("residual",), ("probe", "mean_diff"))
    lt = target_layer
    ls = depth_layer(lt / (ctx.lm.n_layers - 1), base.n_layers)
    push, pull, n_texts, position = fit_maps(ctx, base, trait.name, ls, lt)
    source = {"name": base.name, "n_layers": base.n_layers, "hidden_size": base.hidden_size}
    del base  # only its run directory is needed from here on
    carried_run, arms = carry_vectors(src_run, own_run, ls, lt, push, pull, source["name"], ctx.profile.position)

    ratios = ctx.ratios(ctx.sizes.cross_factors)
    carried_configs = [SteerConfig(a["name"], "residual", (lt,), ratio=r) for a in arms for r in ratios]
    _, carried_rows = steer_rows(ctx, trait, carried_run, carried_configs, questions)
    own_configs = [SteerConfig(m, "residual", (lt,), ratio=r) for m in OWN_METHODS for r in ratios]
    base_row, own_rows = steer_rows(ctx, trait, own_run, own_configs, questions)
    own = {m: _summary([r for r in own_rows if r["method"] == m], ctx.floor) for m in OWN_METHODS}
    for m in ("mean_diff", "probe"):
        own[m]["auroc"] = eval_row(own_eval, "residual", m, lt)["auroc"]
    for a in arms:
        a.update(_summary([r for r in carried_rows if r["method"] == a["name"]], ctx.floor))
        o = own[a["method"]]
        a["detect_kept"] = _kept(a["auroc"] - 0.5, o["auroc"] - 0.5)
        # a carried vector with no coherent configuration has no control to measure: unknown, not 0
        a["control_kept"] = _kept(a["best_delta"], o["best_delta"])
    primary = next(a for a in arms if (a["method"], a["arm"]) == PRIMARY)
    return {
        "source": source,
        "target": {"name": ctx.lm.name, "n_layers": ctx.lm.n_layers, "hidden_size": ctx.lm.hidden_size},
        "source_layer": ls,
        "target_layer": lt,
        "n_texts": n_texts,
        "map_position": position,
        "maps": {"push": {"alpha": push.alpha, "r2": push.r2}, "pull": {"alpha": pull.alpha, "r2": pull.r2}},
        "source_auroc": {m: eval_row(src_eval, "residual", m, ls)["auroc"] for m in ("mean_diff", "probe")},
        "n": {"source": src_eval["n"], "target": own_eval["n"]},
        "ratios": list(ratios),
        "baseline": base_row,
        "own": own,
        "arms": arms,
        "primary": primary,
        "rows": carried_rows + own_rows,
        "checks": [_steer_check(primary, own[primary["method"]])],
    }


def _steer_check(primary: dict[str, Any], own: dict[str, Any]) -> Check:
    kept = primary["control_kept"]
    return check(
        "carried_steer_fraction",
        f"vectors carried from the base model steer the target ({primary['label']}: best coherent Δ as a share of "
        "the target's own vector's)",
        "84.3% (SFT) / 83.2% (DPO) trait, coherence 76-82%",
        kept,
        None if kept is not None else _why_no_control(primary, own),
        shown=None
        if kept is None
        else f"{primary['best_delta'] or 0.0:+.1f} vs own {own['best_delta']:+.1f} ({kept:.2f}×)",
    )


def _summary(rows: Sequence[dict[str, Any]], floor: float) -> dict[str, Any]:
    best = best_coherent(rows, floor)
    return {
        "best_delta": best["delta"] if best else None,
        "best_ratio": best["ratio"] if best else None,
        "best_trait": best["trait"] if best else None,
        "best_coherence": best["coherence"] if best else None,
        "points": [
            {"ratio": r["ratio"], "trait": r["trait"], "coherence": r["coherence"], "delta": r["delta"]}
            for r in sorted(rows, key=lambda r: r["ratio"])
        ],
    }


def _kept(carried: float | None, own: float | None) -> float | None:
    """carried / own, when the own vector achieved something positive to keep."""
    if carried is None or own is None or own <= 0:
        return None
    return carried / own


def _why_no_control(carried: dict[str, Any], own: dict[str, Any]) -> str:
    if carried["best_delta"] is None:
        return "no configuration of the carried vector stayed coherent, so its control cannot be measured"
    return "the target's own vector did not raise the trait score while coherent"
