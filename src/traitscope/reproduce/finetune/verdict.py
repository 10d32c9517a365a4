"""The finetuning findings, with thresholds fixed before any run (issue 13):
shift-vs-behaviour Pearson r >= 0.8; screening AUROC >= 0.85; preventative steering at least
halves the judged gain at coherence >= 75; the neutral control's shift inside the random baseline."""

from __future__ import annotations

from typing import Any

from traitscope.reproduce.common import stats

R_MIN = 0.8
AUROC_MIN = 0.85
GAIN_RATIO_MAX = 0.5
COHERENCE_MIN = 75.0


def pearson(x: list[float], y: list[float]) -> float | None:
    """Pearson's r rounded as the report prints it (None with < 3 points or a constant side)."""
    r = stats.pearson(x, y)
    return None if r is None else round(r, 3)


def _unsteered(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in results["finetunes"] if f["steer"] is None]


def correlation(results: dict[str, Any]) -> dict[str, Any]:
    """Per trait, over the unsteered finetunes: r(shift, judged delta) for both shift measures."""
    out = {}
    for trait in results["vectors"]:
        pts = [(f["traits"][trait]["shift"], f["traits"][trait]["judged"]["delta"]) for f in _unsteered(results)]
        pts = [(s, d) for s, d in pts if d is not None]
        dy = [d for _, d in pts]
        r_prompt = pearson([s["prompt_last"] for s, _ in pts], dy)
        r_resp = pearson([s["response"] for s, _ in pts], dy)
        out[trait] = {"n": len(pts), "r_prompt_last": r_prompt, "r_response": r_resp,
                      "holds": r_prompt is not None and r_prompt >= R_MIN}  # fmt: skip
    return out


def preventative(results: dict[str, Any]) -> dict[str, Any]:
    """Judged gain in the induced direction, with and without --steer-train."""
    by = {f["name"]: f for f in results["finetunes"]}
    out = {}
    for steered in (f for f in results["finetunes"] if f["steer"] is not None):
        plain = by.get(steered["name"].removesuffix("-steered"))
        if plain is None:
            continue
        t, sign = steered["trait"], steered["sign"]
        g_plain = sign * (plain["traits"][t]["judged"]["delta"] or 0.0)
        g_steer = sign * (steered["traits"][t]["judged"]["delta"] or 0.0)
        coh = steered["traits"][t]["coherence"]
        ok = g_plain > 0 and g_steer <= GAIN_RATIO_MAX * g_plain and coh is not None and coh >= COHERENCE_MIN
        out[t] = {"set": plain["name"], "ratio": steered["steer"], "gain_plain": round(g_plain, 2),
                  "gain_steered": round(g_steer, 2), "coherence_steered": coh,
                  "coherence_plain": plain["traits"][t]["coherence"], "holds": ok,
                  "shift_plain": plain["traits"][t]["shift"]["prompt_last"],
                  "shift_steered": steered["traits"][t]["shift"]["prompt_last"]}  # fmt: skip
    return out


def controls(results: dict[str, Any]) -> dict[str, Any]:
    """Each finetune's |shift| at prompt[-1] against the 95th percentile along random directions."""
    out = {}
    for f in _unsteered(results):
        out[f["name"]] = {
            t: {"shift": m["shift"]["prompt_last"], "random_p95": m["shift"]["random_p95_prompt_last"],
                "within": abs(m["shift"]["prompt_last"]) <= m["shift"]["random_p95_prompt_last"]}
            for t, m in f["traits"].items()
        }  # fmt: skip
    return out
