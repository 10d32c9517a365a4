"""Reshaping what the pipeline wrote into grids for plots and the dashboard. Pure functions over
already-parsed JSON: no torch, no files, nothing recomputed that the files do not hold."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

METRICS = ("auroc", "accuracy", "effect_size")
METRIC_LABELS = {"auroc": "AUROC", "accuracy": "accuracy", "effect_size": "effect size d"}
NO_STEERING = "no steering results yet — run traitscope steer-eval"


def _num(value: Any) -> float | None:
    """A finite float or None (missing, null, NaN and strings all become None)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def extraction_grids(evaluation: dict[str, Any]) -> dict[str, Any]:
    """``grids[site][metric][i][j]``: the metric of method ``methods[i]`` at layer ``layers[j]``
    (None where that combination was not evaluated). Rows missing fields are skipped and counted."""
    rows = evaluation.get("results")
    rows = rows if isinstance(rows, list) else []
    good = [r for r in rows if isinstance(r, dict) and {"method", "site", "layer"} <= set(r)]
    sites = list(dict.fromkeys(str(r["site"]) for r in good))
    methods = list(dict.fromkeys(str(r["method"]) for r in good))
    layers = sorted({int(r["layer"]) for r in good if isinstance(r["layer"], int)})
    grids: dict[str, dict[str, list[list[float | None]]]] = {
        s: {m: [[None] * len(layers) for _ in methods] for m in METRICS} for s in sites
    }
    for r in good:
        if not isinstance(r["layer"], int):
            continue
        i, j = methods.index(str(r["method"])), layers.index(r["layer"])
        for metric in METRICS:
            grids[str(r["site"])][metric][i][j] = _num(r.get(metric))
    best = evaluation.get("best") if isinstance(evaluation.get("best"), dict) else {}
    best_rows = [
        {
            "key": k,
            **{
                f: v.get(f)
                for f in (
                    "site",
                    "method",
                    "layer",
                    "auroc",
                    "auroc_sd",
                    "accuracy",
                    "accuracy_sd",
                    "effect_size",
                    "polarity_correct",
                    "random_auroc_p95",
                )
            },
        }
        for k, v in sorted(best.items())
        if isinstance(v, dict)
    ]
    return {
        "trait": evaluation.get("trait"),
        "model": evaluation.get("model"),
        "position": evaluation.get("position"),
        "sites": sites,
        "methods": methods,
        "layers": layers,
        "grids": grids,
        "best": best_rows,
        "skipped_rows": len(rows) - len(good),
    }


def layer_label(layers: Sequence[Any]) -> str:
    return "+".join(str(x) for x in layers) if layers else "?"


def strength_label(config: dict[str, Any]) -> tuple[tuple[int, float], str]:
    """Sort key and label of a config's strength: its perturbation ratio, else its coefficients."""
    ratio = _num(config.get("ratio"))
    if ratio is not None:
        return (0, ratio), f"{ratio:g}"
    coefs = config.get("coefs") if isinstance(config.get("coefs"), dict) else {}
    values = [v for v in (_num(c) for c in coefs.values()) if v is not None]
    mean = sum(values) / len(values) if values else 0.0
    return (1, mean), f"c={mean:g}"


def steering_grids(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Heatmaps of ``delta``, ``coherence_mean`` and (judge-free A/B rows) ``ab_delta`` and the fluency
    cost ``ab_nll_delta`` over (layers × strength), one group per
    (method, site, mode, judge); baselines listed apart. ``cells[i][j]`` is the index into
    ``rows`` of that cell (the last one wins when a configuration appears twice)."""
    groups: dict[str, dict[str, Any]] = {}
    baselines = []
    ab_base: dict[str, dict[str, Any]] = {}  # judge-free A/B rows: the baseline row per format
    for idx, row in enumerate(rows):
        cfg = row.get("config") if isinstance(row.get("config"), dict) else {}
        if cfg.get("baseline"):
            baselines.append(
                {
                    "index": idx,
                    "judge": row.get("judge"),
                    "trait_mean": _num(row.get("trait_mean")),
                    "coherence_mean": _num(row.get("coherence_mean")),
                    "ab_score": _num(row.get("ab_score")),
                    "n": row.get("n"),
                }
            )
            if row.get("eval") == "ab":
                ab_base[str(row.get("ab_format"))] = row
            continue
        key = "/".join(str(cfg.get(k, "?")) for k in ("method", "site", "mode")) + f" ({row.get('judge', '?')})"
        g = groups.setdefault(key, {"cells": {}, "layers": {}, "ratios": {}})
        layers = cfg.get("layers") if isinstance(cfg.get("layers"), list) else []
        lab = layer_label(layers)
        g["layers"][lab] = min((x for x in layers if isinstance(x, int)), default=10**6), lab
        sort_key, slab = strength_label(cfg)
        g["ratios"][slab] = sort_key
        g["cells"][(lab, slab)] = idx
    out = []
    for key, g in groups.items():
        layer_labels = [lab for _, lab in sorted(g["layers"].values())]
        ratio_labels = sorted(g["ratios"], key=g["ratios"].get)
        grid: dict[str, list[Any]] = {
            "delta": [], "coherence": [], "trait": [], "ab_delta": [], "ab_nll_delta": [], "cells": []
        }  # fmt: skip
        for lab in layer_labels:
            cells = [g["cells"].get((lab, r)) for r in ratio_labels]
            grid["cells"].append(cells)
            grid["delta"].append([None if c is None else _num(rows[c].get("delta")) for c in cells])
            grid["coherence"].append([None if c is None else _num(rows[c].get("coherence_mean")) for c in cells])
            grid["trait"].append([None if c is None else _num(rows[c].get("trait_mean")) for c in cells])
            grid["ab_delta"].append([None if c is None else _ab_delta(rows[c], ab_base, "ab_score") for c in cells])
            grid["ab_nll_delta"].append([None if c is None else _ab_delta(rows[c], ab_base, "ab_nll") for c in cells])
        out.append({"key": key, "layers": layer_labels, "ratios": ratio_labels, **grid})
    return {"groups": out, "baselines": baselines}


def _ab_delta(row: dict[str, Any], ab_base: dict[str, dict[str, Any]], key: str) -> float | None:
    """``row[key]`` minus the unsteered A/B row's (same format): ``ab_score`` gives the A/B delta,
    ``ab_nll`` the fluency cost (rows written before it existed have none)."""
    base = ab_base.get(str(row.get("ab_format")), {})
    value, ref = _num(row.get(key)), _num(base.get(key))
    return None if value is None or ref is None else value - ref


def best_steering(group: dict[str, Any], coherence_floor: float) -> tuple[int, int] | None:
    """(i, j) of the largest delta among cells whose coherence is at least the floor."""
    best = None
    for i, row in enumerate(group["delta"]):
        for j, d in enumerate(row):
            c = group["coherence"][i][j]
            if d is None or c is None or c < coherence_floor:
                continue
            if best is None or d > group["delta"][best[0]][best[1]]:
                best = (i, j)
    return best


def outlier_tokens(norms: Sequence[float], factor: float = 5.0) -> set[int]:
    """Tokens whose activation norm is over ``factor`` times the median (SmolLM2's token 0): kept
    in the data, left out of colour and axis ranges."""
    values = [v for v in norms if isinstance(v, int | float)]
    if len(values) < 3:
        return set()
    med = statistics.median(values)
    return {i for i, v in enumerate(norms) if isinstance(v, int | float) and med > 0 and v > factor * med}
