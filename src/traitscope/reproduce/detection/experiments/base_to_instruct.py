"""Carrying a trait vector from one model to another (the log's base -> instruct transfer).

Same geometry (hidden size and depth match, e.g. gemma-2-2b -> gemma-2-2b-it): the source vector
is applied to the target directly, at the same layer.

Different geometry (the bundled gemma-3-270m base, d=640 x 18, and SmolLM2 instruct, d=576 x 30):
a ridge map, alpha chosen by cross-validation, is fitted between the two models' activations on
the same neutral texts (labels are never used), and the vector is carried through it:

``pull`` (primary)  fit the map target -> source (``M``) and score a target activation as
                    ``(x_t M + c) · v_s``: the target direction is ``M v_s``. This is exact for
                    any linear read-out (probe normals transform this way), and the source's
                    threshold carries over unchanged.
``push``            fit the map source -> target (``W``) and move the vector as a displacement,
                    ``v_t = W^T v_s``: exact for a difference of means, an approximation for
                    a probe's normal. Reported beside ``pull`` to show the choice matters.

Nothing is fitted on the target's labels. The target's own vector (k-fold) and the random
baseline at the same layer are the references.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from traitscope.activations import parse_position
from traitscope.evaluation import accuracy, auroc, cohens_d, kfold, midpoint
from traitscope.methods import METHODS, orient
from traitscope.models.loader import LoadedModel
from traitscope.progress import Reporter, Silent
from traitscope.reproduce.common.ridge import LinearMap, capture_texts, fit_ridge_map, map_position, neutral_texts
from traitscope.reproduce.common.runs import RunData
from traitscope.reproduce.common.stats import cosine, fold_halfwidth
from traitscope.reproduce.common.verdict import Check
from traitscope.reproduce.detection.findings import check

MAP_SITES = ("residual", "attn_out")


@dataclass
class Carried:
    """A direction in the target's coordinates and the threshold carried from the source."""

    arm: str
    direction: torch.Tensor  # [d_t], unit
    threshold: float  # on target projections; from source data only


def _unit(v: torch.Tensor, threshold: float) -> tuple[torch.Tensor, float]:
    n = float(v.norm()) or 1.0
    return v / n, threshold / n


def source_midpoint(X_src: torch.Tensor, y_src: torch.Tensor) -> torch.Tensor:
    """The point halfway between the source's class means: its decision boundary passes here."""
    y = y_src.bool()
    return (X_src[y].mean(0) + X_src[~y].mean(0)) / 2


def carry_direct(v_src: torch.Tensor, X_src: torch.Tensor, y_src: torch.Tensor) -> Carried:
    m = source_midpoint(X_src, y_src)
    return Carried("direct", v_src, float(m @ v_src))


def carry_pull(v_src: torch.Tensor, X_src: torch.Tensor, y_src: torch.Tensor, tgt_to_src: LinearMap) -> Carried:
    # score(x_t) = (x_t M + c) · v_s  =  x_t · (M v_s) + c · v_s
    u = tgt_to_src.W @ v_src
    thr = float(source_midpoint(X_src, y_src) @ v_src) - float(tgt_to_src.b @ v_src)
    d, t = _unit(u, thr)
    return Carried("pull", d, t)


def carry_push(v_src: torch.Tensor, X_src: torch.Tensor, y_src: torch.Tensor, src_to_tgt: LinearMap) -> Carried:
    # the source displacement v_s lands at W^T v_s; the source midpoint lands at m W + b
    u = v_src @ src_to_tgt.W
    m_t = src_to_tgt(source_midpoint(X_src, y_src)[None])[0]
    d, t = _unit(u, float(m_t @ u))
    return Carried("push", d, t)


def score_fold(c: Carried, X_tr: torch.Tensor, y_tr: torch.Tensor, X_va: torch.Tensor, y_va: torch.Tensor) -> dict:
    """One fold of a carried direction on the target: scored on the held-out rows.

    ``accuracy_strict`` thresholds at the carried threshold (nothing from the target);
    ``accuracy`` takes the threshold (one number) from the target's training rows, the rule the
    target's own k-fold accuracy uses — a map's offset error moves the origin, not the direction."""
    p_tr, p_va = X_tr.float() @ c.direction, X_va.float() @ c.direction
    yb = y_va.bool()
    return {
        "auroc": float(auroc(p_va, y_va)),
        "accuracy": float(accuracy(p_va, y_va, midpoint(p_tr, y_tr))),
        "accuracy_strict": float(accuracy(p_va, y_va, torch.tensor(c.threshold))),
        "effect_size": float(cohens_d(p_va[:, None], y_va)[0]),
        "separation": float(p_va[yb].mean() - p_va[~yb].mean()),
        "polarity_correct": float(p_va[yb].mean() > p_va[~yb].mean()),
    }


def _mean_folds(folds: list[dict[str, float]]) -> dict[str, float | None]:
    """Each score's mean over the folds, and ``<score>_noise``: the 95% CI half-width from their spread."""
    out: dict[str, float | None] = {k: sum(f[k] for f in folds) / len(folds) for k in folds[0]}
    for k in ("accuracy", "auroc"):
        out[f"{k}_noise"] = fold_halfwidth([f[k] for f in folds])
    return out


def same_geometry(src: LoadedModel, tgt: LoadedModel) -> bool:
    return src.hidden_size == tgt.hidden_size and src.n_layers == tgt.n_layers


def pick_layers(src: RunData, tgt: RunData, site: str, direct: bool) -> tuple[int, int]:
    """The source's best probe layer; on the target the same layer (same depth) or the layer at
    the same relative depth (different depth) — chosen without the target's labels."""
    s = src.best(site, "probe")["layer"]
    if direct:
        return s, tgt.nearest_layer(s)
    rel = s / max(src.n_layers - 1, 1)
    return s, tgt.nearest_layer(rel * (tgt.n_layers - 1))


# --- the experiment -----------------------------------------------------------------------------


def _carry(arm: str, v: torch.Tensor, Xs: torch.Tensor, ys: torch.Tensor, maps: dict[str, LinearMap]) -> Carried:
    if arm == "direct":
        return carry_direct(v, Xs, ys)
    if arm == "pull":
        return carry_pull(v, Xs, ys, maps["pull"])
    return carry_push(v, Xs, ys, maps["push"])


def _fit(method: str, X: torch.Tensor, y: torch.Tensor, seed: int, pairs: list[str | None]) -> torch.Tensor:
    fit = METHODS[method](X[:, None], y, seed=seed, pairs=pairs)
    return orient(fit.vectors, X[:, None], y)[0]


def carried_cv(
    src: RunData,
    tgt: RunData,
    site: str,
    layers: tuple[int, int],
    method: str,
    arms: Sequence[str],
    maps: dict[str, LinearMap],
    folds: int,
    seed: int = 0,
) -> tuple[dict[str, dict[str, float]], dict[str, float], int]:
    """k-fold transfer on the scenarios both runs share: each fold fits the source vector on the
    source's rows of the training pairs, carries it, and scores the target's held-out pairs, so
    the carried vector never saw a test prompt, not even through the other model. The target's
    own vector is fitted on the same target training rows, for a like-for-like reference.

    Returns (per-arm means, own-vector means, number of shared rows)."""
    src_at = {r["id"]: i for i, r in enumerate(src.rows)}
    shared = [i for i, r in enumerate(tgt.rows) if r["id"] in src_at]
    ti = torch.tensor(shared)
    si = torch.tensor([src_at[tgt.rows[i]["id"]] for i in shared])
    Xs, ys = src.at(site, layers[0])[si], src.y[si]
    Xt, yt = tgt.at(site, layers[1])[ti], tgt.y[ti]
    pairs = [tgt.pairs[i] for i in shared]
    splits = kfold(yt.tolist(), [tgt.groups[i] for i in shared], folds, seed)
    per_arm: dict[str, list[dict[str, float]]] = {a: [] for a in arms}
    own: list[dict[str, float]] = []
    for f, s in enumerate(splits):
        tr_pairs = [pairs[i] for i in s.train.tolist()]
        v = _fit(method, Xs[s.train], ys[s.train], seed + f, tr_pairs)
        for a in arms:
            c = _carry(a, v, Xs[s.train], ys[s.train], maps)
            per_arm[a].append(score_fold(c, Xt[s.train], yt[s.train], Xt[s.val], yt[s.val]))
        u = _fit(method, Xt[s.train], yt[s.train], seed + f, tr_pairs)
        mid = float(midpoint((Xt[s.train] @ u)[:, None], yt[s.train])[0])
        own.append(score_fold(Carried("own", u, mid), Xt[s.train], yt[s.train], Xt[s.val], yt[s.val]))
    return {a: _mean_folds(v) for a, v in per_arm.items()}, _mean_folds(own), len(shared)


def transfer_site(
    src: RunData,
    tgt: RunData,
    site: str,
    neutral_src: torch.Tensor | None,
    neutral_tgt: torch.Tensor | None,
    direct: bool,
    folds: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Carry the source's probe and mean_diff vectors at one site; score them on the target.

    ``neutral_src`` / ``neutral_tgt``: [n_texts, L, d] on the runs' layers (unused when direct)."""
    ls, lt = pick_layers(src, tgt, site, direct)
    maps: dict[str, LinearMap] = {}
    if not direct:
        if neutral_src is None or neutral_tgt is None:
            raise ValueError("a ridge map needs neutral-text activations of both models")
        Ns, Nt = neutral_src[:, src.layers.index(ls)], neutral_tgt[:, tgt.layers.index(lt)]
        maps = {"pull": fit_ridge_map(Nt, Ns, seed=seed), "push": fit_ridge_map(Ns, Nt, seed=seed)}
    arms = ("direct",) if direct else ("pull", "push")
    methods: dict[str, Any] = {}
    for method in ("probe", "mean_diff"):
        scored, own, n_shared = carried_cv(src, tgt, site, (ls, lt), method, arms, maps, folds, seed)
        # the vectors fitted on all rows, carried once: how close they land to the target's own
        full = {a: _carry(a, src.vector(site, method, ls), src.at(site, ls), src.y, maps) for a in arms}
        own_full = tgt.vector(site, method, lt)
        row = tgt.row(site, method, lt)
        methods[method] = {
            "arms": [{"arm": a, **scored[a], "cos_with_own": cosine(full[a].direction, own_full)} for a in arms],
            "target_own": own,
            "source_own": {k: src.row(site, method, ls)[k] for k in ("auroc", "accuracy", "effect_size")},
            "random_p95": {"auroc": row["random_auroc_p95"], "accuracy": row["random_accuracy_p95"]},
            "n_shared": n_shared,
        }
    return {
        "site": site,
        "source_layer": ls,
        "target_layer": lt,
        "path": "direct" if direct else "ridge map",
        "maps": {k: {"alpha": m.alpha, "r2": m.r2} for k, m in maps.items()},
        "methods": methods,
    }


def base_to_instruct(
    src_lm: LoadedModel,
    tgt_lm: LoadedModel,
    src: RunData,
    tgt: RunData,
    cache_dir: Path,
    folds: int,
    neutral_cap: int | None = None,
    seed: int = 0,
    batch_size: int = 16,
    texts: Sequence[str] | None = None,
    reporter: Reporter = Silent(),
) -> dict[str, Any]:
    """The whole experiment for one trait: direct when the geometry matches, else ridge maps
    fitted on neutral texts (``texts``, default :func:`neutral_texts`) cached under ``cache_dir``."""
    direct = same_geometry(src_lm, tgt_lm)
    sites = [s for s in MAP_SITES if s in src.acts and s in tgt.acts]
    position = map_position(tgt.position)
    if not direct:
        texts = list(texts) if texts is not None else neutral_texts(tgt.trait, neutral_cap)
    neutral = (
        {}
        if direct
        else _neutral(src_lm, tgt_lm, src, tgt, list(texts or []), sites, position, cache_dir, batch_size, reporter)
    )
    results = [
        transfer_site(
            src,
            tgt,
            site,
            neutral["source"][site] if neutral else None,
            neutral["target"][site] if neutral else None,
            direct,
            folds,
            seed,
        )
        for site in sites
    ]
    return {
        "source": src_lm.name,
        "target": tgt_lm.name,
        "trait": tgt.trait,
        "path": "direct" if direct else "ridge map",
        "geometry": {
            "source": {"hidden_size": src_lm.hidden_size, "n_layers": src_lm.n_layers},
            "target": {"hidden_size": tgt_lm.hidden_size, "n_layers": tgt_lm.n_layers},
        },
        "n_texts": 0 if direct else len(texts or []),
        "map_position": None if direct else position,
        "n": {"source": src.n, "target": tgt.n},
        "sites": results,
        "checks": transfer_checks(results, direct),
    }


def _neutral(
    src_lm: LoadedModel,
    tgt_lm: LoadedModel,
    src: RunData,
    tgt: RunData,
    texts: list[str],
    sites: list[str],
    position: str,
    cache_dir: Path,
    batch_size: int,
    reporter: Reporter,
) -> dict[str, dict[str, torch.Tensor]]:
    """Neutral-text activations of both models (role -> site -> [n, L, d]), cached on disk."""
    slug = parse_position(position).slug
    return {
        role: capture_texts(
            lm, texts, sites, run.layers, position, cache_dir / f"{lm.slug}-{tgt.trait}" / slug, batch_size, reporter
        )
        for role, lm, run in (("source", src_lm, src), ("target", tgt_lm, tgt))
    }


def transfer_checks(results: Sequence[dict[str, Any]], direct: bool) -> list[Check]:
    """Judge the residual probe through the primary arm (direct, else pull)."""
    site = next((r for r in results if r["site"] == "residual"), results[0] if results else None)
    if site is None:
        why = "no site captured on both models"
        return [check("carried_accuracy", "carried vector detects on the target", "90%", None, why)]
    m = site["methods"]["probe"]
    arm = m["arms"][0]
    where = f"{site['site']}, probe, {arm['arm']}, source L{site['source_layer']} → target L{site['target_layer']}"
    return [
        check(
            "carried_accuracy",
            f"the carried vector detects on the target ({where}; k-fold threshold)",
            "90%",
            arm["accuracy"],
            noise=arm.get("accuracy_noise"),
        ),
        check(
            "carried_vs_own_auroc",
            "carried AUROC close to the target's own vector (carried − own)",
            "— (log gives no own-vector figure)",
            arm["auroc"] - m["target_own"]["auroc"],
            noise=_sum_noise(arm.get("auroc_noise"), m["target_own"].get("auroc_noise")),
            shown=f"{arm['auroc']:.3f} vs {m['target_own']['auroc']:.3f} ({arm['auroc'] - m['target_own']['auroc']:+.3f})",
        ),
    ]


def _sum_noise(a: float | None, b: float | None) -> float | None:
    """The noise of a difference of two independently noisy means."""
    return None if a is None or b is None else (a * a + b * b) ** 0.5
