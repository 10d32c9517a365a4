"""Findings 2 and 3: transfer matrices across languages and topics (uncertainty) and across
domains (optimism): train a vector on one group, test it on each other."""

from __future__ import annotations

from typing import Any

import traitscope.reproduce.detection.findings as log
from traitscope.evaluation import transfer_matrix
from traitscope.reproduce.common.profiles import Profile
from traitscope.reproduce.common.runs import RunData
from traitscope.reproduce.common.stats import bootstrap_halfwidth
from traitscope.reproduce.common.verdict import Check, untestable
from traitscope.reproduce.detection.findings import check


def _matrix(run: RunData, tag: str, method: str, layer: int, profile: Profile, keep: list[int] | None = None) -> dict:
    idx = keep if keep is not None else list(range(run.n))
    tags = run.tags(tag)
    tm = transfer_matrix(
        run.at("residual", layer)[idx],
        run.y[idx],
        [tags[i] for i in idx],
        method,
        groups=[run.groups[i] for i in idx],
        seed=profile.seed,
        folds=profile.folds,
        pairs=[run.pairs[i] for i in idx],
    )
    return {
        "method": method,
        "layer": layer,
        "groups": tm.groups,
        "sizes": tm.sizes,
        "accuracy": tm.accuracy,
        "auroc": tm.auroc,
        "averages": tm.averages("accuracy"),
        "averages_auroc": tm.averages("auroc"),
        "noise": _noise(tm.accuracy),
    }


def _cells(acc: list[list[float]]) -> tuple[list[float], list[float]]:
    """(diagonal, off-diagonal) accuracy cells of a transfer matrix."""
    n = len(acc)
    return [acc[i][i] for i in range(n)], [acc[i][j] for i in range(n) for j in range(n) if i != j]


def _noise(acc: list[list[float]]) -> dict[str, float | None]:
    """95% bootstrap half-widths over the matrix's cells: of the cross-group mean (off-diagonal
    cells) and of the drop (same-group mean minus it, the two resampled independently)."""
    same, cross = _cells(acc)
    hs, hc = bootstrap_halfwidth(same), bootstrap_halfwidth(cross)
    return {"cross_group": hc, "drop": None if hs is None or hc is None else (hs * hs + hc * hc) ** 0.5}


def _cross_check(key: str, claim: str, logged: str, m: dict[str, Any]) -> Check:
    p = m["probe"]
    return check(key, claim, logged, p["averages"]["cross_group"], noise=p["noise"]["cross_group"])


def _drop_check(key: str, claim: str, logged: str, m: dict[str, Any]) -> Check:
    p = m["probe"]
    return check(key, claim, logged, p["averages"]["drop"], noise=p["noise"]["drop"])


def _gap_check(key: str, claim: str, logged: str, m: dict[str, Any]) -> Check:
    """probe's cross-group accuracy minus mean_diff's, with the bootstrap over paired cells."""
    p, md = m["probe"], m["mean_diff"]
    pairs = zip(_cells(p["accuracy"])[1], _cells(md["accuracy"])[1], strict=True)
    gap = p["averages"]["cross_group"] - md["averages"]["cross_group"]
    return check(key, claim, logged, gap, noise=bootstrap_halfwidth([x - y for x, y in pairs]))


def _groups_present(run: RunData, tag: str, keep: list[int]) -> list[str]:
    tags = run.tags(tag)
    return sorted({tags[i] for i in keep} - {""})


def cross_language(run: RunData, profile: Profile) -> dict[str, Any]:
    """uncertainty split by ``lang``: train on one language, test on each other."""
    layer = run.best("residual", "probe")["layer"]
    everyone = list(range(run.n))
    if len(_groups_present(run, "lang", everyone)) < 2:
        return _too_few("lang", run, "cross_lang")
    m = {meth: _matrix(run, "lang", meth, layer, profile) for meth in ("probe", "mean_diff")}
    L = log.CROSS_LANG
    checks = [
        _cross_check(
            "cross_lang_probe", "probe transfers across languages (cross-group accuracy)", f"{L['cross']:.1%}", m
        ),
        _drop_check("cross_lang_drop", "little drop from same- to cross-language", f"{L['drop'] * 100:.1f} pts", m),
        _gap_check(
            "cross_lang_probe_minus_mean_diff",
            "probe ≫ mean_diff across languages (cross accuracy gap)",
            "~100% vs ~50%",
            m,
        ),
    ]
    return {"layer": layer, "matrices": m, "checks": checks, "n": run.n}


def cross_topic(run: RunData, profile: Profile) -> dict[str, Any]:
    """uncertainty, English rows only, split by ``topic``."""
    layer = run.best("residual", "probe")["layer"]
    english = [i for i, lang in enumerate(run.tags("lang")) if lang in ("en", "")]
    if len(_groups_present(run, "topic", english)) < 2:
        return _too_few("topic", run, "cross_topic")
    m = {meth: _matrix(run, "topic", meth, layer, profile, english) for meth in ("probe", "mean_diff")}
    L = log.CROSS_TOPIC
    checks = [
        _cross_check(
            "cross_topic_probe", "probe transfers across topics (cross-group accuracy)", f"{L['cross']:.1%}", m
        ),
        _drop_check("cross_topic_drop", "modest drop from same- to cross-topic", f"{L['drop'] * 100:.1f} pts", m),
    ]
    return {"layer": layer, "matrices": m, "checks": checks, "n": len(english)}


def cross_distribution(run: RunData, profile: Profile) -> dict[str, Any]:
    """optimism split by ``domain`` (A = institutional, B = social): the log's 4 x 2 table."""
    layer = run.best("residual", "probe")["layer"]
    if len(_groups_present(run, "domain", list(range(run.n)))) < 2:
        return _too_few("domain", run, "cross_dist")
    m = {meth: _matrix(run, "domain", meth, layer, profile) for meth in ("probe", "mean_diff")}
    # the log's "avg transfer" is the mean of a vector's two cells (its own domain and the other)
    table = {
        meth: {
            g: {"cells": m[meth]["accuracy"][i], "avg": sum(m[meth]["accuracy"][i]) / len(m[meth]["groups"])}
            for i, g in enumerate(m[meth]["groups"])
        }
        for meth in m
    }
    checks = [
        _cross_check(
            "cross_dist_probe", "probe transfers across domains (off-diagonal accuracy)", "95% / 100% (B→A, A→B)", m
        ),
        _gap_check(
            "cross_dist_probe_minus_mean_diff",
            "probe transfers better than mean_diff (off-diagonal gap)",
            "97.5% vs 72.5% (+25 pts)",
            m,
        ),
    ]
    return {"layer": layer, "matrices": m, "table": table, "checks": checks, "n": run.n}


def _too_few(tag: str, run: RunData, key: str) -> dict[str, Any]:
    return untestable(f"the {run.trait} run holds fewer than two {tag!r} groups", n=run.n)
