"""The ``steering`` section of docs/REPRODUCTION.md, rendered from the results dict alone and
written between ``<!-- steering:start -->`` / ``<!-- steering:end -->`` (everything else kept)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from traitscope.reproduce.common import markdown as md
from traitscope.reproduce.steering.findings import (
    FINDINGS,
    HIGH_AUROC,
    LOG_QUOTES,
    NO_CONTROL_SHARE,
    NUMBER,
    REFUSAL_SCORE,
    RULES,
    coherence_floor,
)

NAME = "steering"
BARELY_REFUSES = 0.2  # unsteered share of harmful prompts refused below which the report says so


def _f(x: float | None, spec: str = ".1f") -> str:
    return "—" if x is None else format(x, spec)


def _setup_line(f: dict[str, Any], meta: dict[str, Any], layers: str) -> str:
    s = f.get("setup", {})
    m = meta["model"]
    return (
        f"Setup: {m['name']} ({m['n_layers']} layers, d={m['hidden_size']}); {s.get('data', '—')}; {layers}; "
        f"{s.get('questions', '—')}; judge {meta['judge'].split(':')[0]}; "
        f"{s.get('wall_seconds', 0.0):.0f} s on this machine."
    )


def _head(key: str) -> list[str]:
    return [f"### {NUMBER[key]}. {FINDINGS[key]}", f"Log: {LOG_QUOTES[key]}"]


def _finish(parts: Sequence[str], f: dict[str, Any], plots: dict[str, str], key: str, alt: str) -> str:
    return md.join([*parts, md.img(plots, key, alt), md.checks_table(f), md.verdict_line(f)])


# --- sections ------------------------------------------------------------------------------------


def render(results: dict[str, Any], plots: dict[str, str] | None = None) -> str:
    """The whole steering section. ``plots``: key -> path relative to the report."""
    return md.render_section("## Steering and dynamics findings", results, plots, _setup, _summary, _body)


def _body(fs: dict[str, Any], meta: dict[str, Any], plots: dict[str, str]) -> list[str]:
    return [
        _ratio_law(fs["ratio_law"], meta, plots),
        _multi(fs["multi_layer"], meta, plots),
        _metrics(fs["metrics_vs_steering"], meta, plots),
        _detect_control(fs["detection_vs_control"], meta),
        _dynamics(fs["refusal_dynamics"], meta, plots),
        _jailbreaks(fs["jailbreaks"], meta, plots),
        _cross(fs["cross_model"], meta, plots),
        _rules(),
    ]


def _setup(meta: dict[str, Any]) -> str:
    mc = meta["machine"]
    runs = meta.get("runs", {})
    machine = md.machine_line(mc)
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in meta["timings"].items() if k != "total")
    data = "; ".join(
        f"{t}: {r['n']} rollouts ({r['positive']} positive)" for t, r in runs.items() if t in ("optimism", "refusal")
    )
    base = runs.get("baseline") or {}
    rows = [
        *md.run_rows(meta, f"; base model for finding 7: {meta['base_model']}"),
        ("extraction data", data or "—"),
        (
            "layers",
            f"scan {', '.join(map(str, runs.get('scan_layers', [])))}; ratio sweep "
            f"{', '.join(map(str, runs.get('sweep_layers', [])))}",
        ),
        ("judge", meta["judge"]),
        (
            "unsteered optimism answers",
            f"trait {_f(base.get('trait'))}, coherence {_f(base.get('coherence'))} → "
            f"coherence floor **{meta['floor']:.1f}**",
        ),
        ("working ratio", f"{meta.get('working_ratio', 0.0):g} (from finding 1; later findings steer at multiples)"),
        ("machine", machine),
        ("date", meta["started"]),
        ("wall time", f"**{meta['wall_seconds'] / 60:.1f} min** ({timing})"),
    ]
    note = (
        "\n\nThe quick profile answers few questions with short greedy answers, so a configuration's mean moves by "
        "several points with the question set; it fills every table but is a smoke test, the full profile is the "
        "reproduction."
        if meta["profile"] == "quick"
        else ""
    )
    floor = (
        f"\n\nA steered configuration counts only while its mean coherence stays ≥ the floor: "
        f"{coherence_floor(None):.0f} (the tool's default), or 5 points under the unsteered answers when those "
        "score lower. Δ is the trait score minus the unsteered answers' score on the same questions (0-100 "
        "scale). Perturbation ratio = coef·‖v‖/‖h‖ with ‖h‖ the mean token norm at that layer (token 0 left "
        "out); traitscope's vectors are unit length, so coef = ratio·‖h‖."
    )
    return "### Setup\n\n" + md.table(("", ""), rows, "ll") + note + floor


def _summary(fs: dict[str, Any]) -> str:
    return md.summary_table(
        fs,
        FINDINGS,
        NUMBER,
        "\n\nA finding's verdict is its worst testable check; the thresholds are in "
        "`traitscope/reproduce/steering/findings.py` (listed at the end).",
    )


def _ratio_law(f: dict[str, Any], meta: dict[str, Any], plots: dict[str, str]) -> str:
    parts = _head("ratio_law")
    layers = f["layers"]
    parts.append(
        _setup_line(
            f, meta, f"residual layers {', '.join(map(str, layers))}; ratios {', '.join(map(str, f['ratios']))}"
        )
    )
    base = f["baseline"]
    parts.append(
        f"Trait Δ / coherence per ratio (unsteered: trait {_f(base['trait'])}, coherence "
        f"{_f(base['coherence'])}; floor {f['floor']:.1f}):\n\n" + _sweep_table(f)
    )
    summ = [
        (
            m,
            f"L{layer}",
            _f(c["best_ratio"], "g"),
            _f(c["best_delta"], "+.1f"),
            _f(c["break_ratio"], "g") if c["break_ratio"] is not None else f"> {f['ratios'][-1]:g}",
        )
        for m in ("mean_diff", "probe")
        for layer, c in ((x, f["curves"][m][str(x)]) for x in layers)
    ]
    parts.append(md.table(("method", "layer", "best coherent ratio", "its Δ", "coherence breaks at"), summ, "lllll"))
    parts.append(
        f"**Working ratio for findings 2-4, 6 and 7: {f['working_ratio']:g}** ({f['working_ratio_source']}: the "
        "median best coherent ratio above, lower middle value). Later findings steer at multiples of it, as the log's "
        "practical rule does with its 0.6."
    )
    parts.append(_norms(f))
    return _finish(parts, f, plots, "ratio_law", "trait delta and coherence vs perturbation ratio")


def _sweep_table(f: dict[str, Any]) -> str:
    layers = f["layers"]
    header = ["ratio"] + [f"{m} L{layer}" for m in ("mean_diff", "probe") for layer in layers]
    rows = []
    for i, r in enumerate(f["ratios"]):
        cells = []
        for m in ("mean_diff", "probe"):
            for layer in layers:
                p = f["curves"][m][str(layer)]["points"][i]
                cells.append(f"{_f(p['delta'], '+.1f')} / {_f(p['coherence'], '.0f')}")
        rows.append((f"{r:g}", *cells))
    return md.table(header, rows)


NORMS_HEADER = (
    "layer",
    "act_norm ‖h‖",
    "coef for ratio 0.6 (unit v)",
    "mean_diff ‖μ+ − μ−‖/‖h‖",
    "raw probe ‖w‖/‖h‖",
    "raw mean_diff coef for 0.6",
    "raw probe coef for 0.6",
)


def _norms(f: dict[str, Any]) -> str:
    norms = [
        (
            f"L{layer}",
            f"{n['act_norm']:.1f}",
            f"{0.6 * n['act_norm']:.1f}",
            f"{n['mean_diff']:.3f}",
            f"{n['probe']:.2e}",
            f"{0.6 / n['mean_diff']:.1f}",
            f"{0.6 / n['probe']:.3g}",
        )
        for layer, n in ((x, f["norms"][str(x)]) for x in f["layers"])
    ]
    return (
        "The log's vec_norm/act_norm, recomputed: traitscope's vectors are unit length, so the raw coefficient for a "
        "ratio is ratio·‖h‖ for both methods; the un-normalised mean difference ‖μ+ − μ−‖ and a logistic probe "
        "fitted on raw (un-normalised) response-mean activations (C = 1) stand in for the log's raw vectors.\n\n"
        + md.table(NORMS_HEADER, norms)
    )


def _multi(f: dict[str, Any], meta: dict[str, Any], plots: dict[str, str]) -> str:
    parts = _head("multi_layer")
    ranges = ", ".join(f"L[{a}-{b}]" for a, b in f["ranges"])
    parts.append(
        _setup_line(
            f,
            meta,
            f"probe, residual; ranges {ranges} (the log's L[6-10] and L[8-10] at the same "
            f"relative depth), total ratios {', '.join(map(str, f['ratios']))} split over "
            "the range",
        )
    )
    rows = [
        (
            f"L[{r['layers'][0]}-{r['layers'][-1]}]",
            r["mode"],
            f"{r['ratio']:g}",
            _f(r["trait"]),
            _f(r["coherence"]),
            _f(r["delta"], "+.1f"),
        )
        for r in f["rows"]
    ]
    s = f["best_single"]
    if s:
        rows.append(
            (
                f"**best single: L{s['layers'][0]}**",
                "single",
                f"{s['ratio']:g}",
                _f(s["trait"]),
                _f(s["coherence"]),
                _f(s["delta"], "+.1f"),
            )
        )
    parts.append(md.table(("layers", "mode", "total ratio", "trait", "coherence", "Δ"), rows, "lllrrr"))
    parts.append(
        f"The best single layer is the best coherent of {f['n_single_candidates']} single-layer probe "
        "configurations from findings 1 and 3 (more candidates than multi-layer ones, which favours single "
        "layers when answers are noisy)."
    )
    return _finish(parts, f, plots, "multi_layer", "multi-layer steering")


def _metrics(f: dict[str, Any], meta: dict[str, Any], plots: dict[str, str]) -> str:
    parts = _head("metrics_vs_steering")
    scan = f["scan"]
    parts.append(
        _setup_line(
            f,
            meta,
            f"residual layers {', '.join(map(str, scan['layers']))} × ratios {', '.join(map(str, scan['ratios']))}",
        )
    )
    rows = []
    for i, layer in enumerate(scan["layers"]):
        cells = []
        for m in ("probe", "mean_diff"):
            r = scan["table"][m][i]
            d = _f(r["delta"], "+.1f") + ("" if r["coherent"] else "†")
            cells += [f"{r['accuracy']:.1%}", f"{r['auroc']:.3f}", f"{r['effect_size']:.2f}", d]
        rows.append((f"L{layer}", *cells))
    parts.append(
        md.table(
            (
                "layer",
                "probe acc",
                "probe AUROC",
                "probe d",
                "probe Δ",
                "mean_diff acc",
                "mean_diff AUROC",
                "mean_diff d",
                "mean_diff Δ",
            ),
            rows,
        )
    )
    pm = f["per_method"]
    parts.append(
        "Metrics are the extraction run's k-fold validation numbers; a layer's Δ is its best over the scan ratios "
        "that stay coherent († none did: Δ at the smallest ratio). Pearson r across layers: "
        + "; ".join(
            f"{m}: effect size {_f(v['r_effect'], '+.3f')}, accuracy {_f(v['r_accuracy'], '+.3f')}"
            for m, v in pm.items()
        )
        + "."
    )
    return _finish(parts, f, plots, "metrics_vs_steering", "extraction metrics vs steering per layer")


def _detect_control(f: dict[str, Any], meta: dict[str, Any]) -> str:
    parts = _head("detection_vs_control")
    parts.append(
        _setup_line(f, meta, "the layer scan of finding 3 (both methods) and the carried vectors of finding 7")
    )
    parts.append(
        f"Across the scan, Pearson r between detection AUROC and steering Δ: {_f(f['r_auroc_delta'], '+.3f')} "
        f"({len(f['points'])} method × layer vectors). {f['n_high']} vectors detect with AUROC ≥ {HIGH_AUROC:.2f}; "
        f"of those, Δ below {NO_CONTROL_SHARE:.0%} of the best Δ ({f['best_delta']:+.1f}): "
        + (", ".join(f["high_but_weak"]) or "none")
        + ". 'Detection kept' for a carried vector is (AUROC − 0.5) "
        "relative to the target's own vector at the same layer (AUROC on all target rows: the carried vector saw "
        "none of them); 'control kept' is its best coherent Δ relative to the own vector's."
    )
    return _finish(parts, f, {}, "", "")


def _dynamics(f: dict[str, Any], meta: dict[str, Any], plots: dict[str, str]) -> str:
    parts = _head("refusal_dynamics")
    parts.append(
        _setup_line(
            f,
            meta,
            f"refusal {f['method']} vector, {f['site']} L{f['layer']} (the run's best "
            f"probe layer: CV AUROC {f['vector_auroc']:.3f}, accuracy "
            f"{f['vector_accuracy']:.1%})",
        )
    )
    s = f["summary"]
    rows = [
        (
            n,
            s[n]["n"],
            f"{s[n]['prompt_mean']:+.3f}",
            f"{s[n]['response_mean']:+.3f}",
            f"{s[n]['response_mean'] - s[n]['prompt_mean']:+.3f}",
            f"{s[n]['refusal_share']:.0%}",
        )
        for n in ("harmful", "benign")
    ]
    parts.append(
        md.table(
            (
                "set",
                "prompts",
                "prompt mean",
                "response mean",
                "shift",
                f"answers refused (lexicon ≥ {REFUSAL_SCORE:g})",
            ),
            rows,
        )
    )
    onset = f"token {f['onset']}" if f["onset"] is not None else "never"
    ro = f.get("rollouts", {})
    if ro:
        parts.append(_rollout_line(ro))
    if s["harmful"]["refusal_share"] < BARELY_REFUSES:
        parts.append(
            f"**Caveat:** {meta['model']['name']} refuses {s['harmful']['refusal_share']:.0%} of the harmful prompts, "
            "so what separates here is harmful-request content on a vector fitted to harmful vs harmless requests, "
            "not a refusal the model is making."
        )
    parts.append(
        f"Projections are raw dot products with the unit vector (token 0 left out). Response-mean separation: "
        f"Cohen's d {_f(f['response_d'], '.2f')}; harmful shift minus benign shift {_f(f['shift_gap'], '+.2f')} pooled "
        f"sds; the harmful mean first exceeds the benign mean by > 1 pooled sd (of that token's values across "
        f"prompts, while ≥ 3 responses per set are that long) at **{onset}**."
    )
    ex = [
        (e["id"], e["response"][:90].replace("|", "/").replace("\n", " "), _f(e["refusal"], ".0f"))
        for e in f["examples"]["harmful"][:4]
    ]
    parts.append(
        "Harmful examples (unsteered):\n\n" + md.table(("id", "answer (first 90 chars)", "refusal"), ex, "llr")
    )
    return _finish(parts, f, plots, "refusal_dynamics", "refusal projection per token")


def _rollout_line(ro: dict[str, dict[str, float]]) -> str:
    parts = [f"{k} {int(v['refused'])}/{int(v['n'])}" for k, v in sorted(ro.items(), reverse=True)]
    return (
        "Extraction rollouts the refusal lexicon scores as refusals: " + ", ".join(parts) + " (the log's vector came "
        "from 228 refusal vs 360 compliance rollouts, labelled by what the model did)."
    )


def _jailbreaks(f: dict[str, Any], meta: dict[str, Any], plots: dict[str, str]) -> str:
    parts = _head("jailbreaks")
    layers = ", ".join(map(str, f["search_layers"]))
    ratios = ", ".join(f"{r:g}" for r in sorted({r["ratio"] for r in f["search"]}))
    parts.append(_setup_line(f, meta, f"refusal probe vectors; search over layers {layers} × ratios {ratios}"))
    if f.get("rollouts"):
        parts.append(_rollout_line(f["rollouts"]))
    rows = [(r["label"], f"{r['share_high']:.0%}", _f(r["trait"]), _f(r["coherence"])) for r in f["search"]]
    b = f["search_baseline"]
    rows.insert(0, ("unsteered", f"{b['share_high']:.0%}", _f(b["trait"]), _f(b["coherence"])))
    parts.append(
        f"Search on the harmful prompts (floor {f['floor']:.1f}):\n\n"
        + md.table(("configuration", "refused", "refusal score", "coherence"), rows)
    )
    if (b["share_high"] or 0.0) < BARELY_REFUSES:
        # the log's model refused harmful requests on its own; say plainly when this one does not
        parts.append(
            f"**{meta['model']['name']} barely refuses on its own:** unsteered, {b['share_high']:.0%} of the 14 "
            "harmful prompts get an answer the refusal judge scores as a refusal, so the jailbreak numbers below "
            "measure whether steering can *create* refusals, not whether it restores them."
        )
    best = f["best"]
    if best:
        bj, sj, bb, sb = f["jailbreak_baseline"], f["jailbreak_steered"], f["benign_baseline"], f["benign_steered"]
        parts.append(
            f"Chosen: **{best['label']}**"
            + ("" if f["best_coherent"] else " (nothing stayed coherent: the most refusing configuration)")
            + ".\n\n"
            + md.table(
                ("prompt set", "unsteered refused", "steered refused", "steered coherence"),
                [
                    ("jailbreak (18)", f"{bj['share_high']:.0%}", f"{sj['share_high']:.0%}", _f(sj["coherence"])),
                    (
                        "benign (14, over-refusal)",
                        f"{bb['share_high']:.0%}",
                        f"{sb['share_high']:.0%}",
                        _f(sb["coherence"]),
                    ),
                ],
                "lrrr",
            )
        )
        per = [
            (
                r["note"],
                _f(r["unsteered"], ".0f"),
                _f(r["steered"], ".0f"),
                (r["steered_answer"] or "")[:70].replace("|", "/").replace("\n", " "),
            )
            for r in f["per_prompt"]
        ]
        parts.append(
            md.table(("framing (`note`)", "unsteered", "steered", "steered answer (first 70 chars)"), per, "lrrl")
        )
        parts.append(
            "Framings not blocked when steered: "
            + (", ".join(f["resisting"]) or "none")
            + f". Red-team framing among them: {'yes' if f['red_team_resists'] else 'no'}."
        )
    return _finish(parts, f, plots, "jailbreaks", "jailbreak refusal scores")


def _cross(f: dict[str, Any], meta: dict[str, Any], plots: dict[str, str]) -> str:
    parts = _head("cross_model")
    if "arms" not in f:
        return _finish(parts, f, {}, "", "")
    parts.append(
        _setup_line(
            f,
            meta,
            f"source {f['source']['name']} L{f['source_layer']} (d={f['source']['hidden_size']}"
            f", {f['source']['n_layers']} layers, optimism from {f['n']['source']} rollouts) → "
            f"target L{f['target_layer']} (finding 3's best steering layer)",
        )
    )
    maps = "; ".join(f"{k}: α={v['alpha']:.3g}, held-out R²={v['r2']:.2f}" for k, v in f["maps"].items())
    parts.append(
        f"Ridge maps (the detection reproduction's `fit_ridge_map`) fitted on {f['n_texts']} neutral texts "
        f"read raw by both models at `{f['map_position']}`: {maps}. push: v_t = Wᵀv_s (source → target map); "
        "pull: v_t = M v_s (target → source map). Source vectors' own CV AUROC: "
        + ", ".join(f"{m} {v:.3f}" for m, v in f["source_auroc"].items())
        + "."
    )
    parts.append(md.table(CROSS_HEADER, _cross_rows(f)))
    parts.append(
        f"Ratios {', '.join(map(str, f['ratios']))} at the target layer; unsteered trait "
        f"{_f(f['baseline']['trait'])}. The own random vector is the control for 'any push of that size'."
    )
    return _finish(parts, f, plots, "cross_model", "cross-model steering")


CROSS_HEADER = (
    "vector",
    "AUROC on target",
    "cos(own)",
    "best coherent ratio",
    "trait",
    "coherence",
    "Δ",
    "detection kept",
    "control kept",
)


def _cross_rows(f: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = [
        (
            f"own {m}",
            _f(d.get("auroc"), ".3f"),
            "—",
            _f(d["best_ratio"], "g"),
            _f(d["best_trait"]),
            _f(d["best_coherence"]),
            _f(d["best_delta"], "+.1f"),
            "—",
            "—",
        )
        for m, d in f["own"].items()
    ]
    return rows + [
        (
            f"carried {a['label']}",
            f"{a['auroc']:.3f}",
            f"{a['cos_with_own']:+.2f}",
            _f(a["best_ratio"], "g"),
            _f(a["best_trait"]),
            _f(a["best_coherence"]),
            _f(a["best_delta"], "+.1f"),
            _f(a["detect_kept"], ".2f"),
            _f(a["control_kept"], ".2f"),
        )
        for a in f["arms"]
    ]


def _rules() -> str:
    return md.rules_table(RULES, "traitscope/reproduce/steering/findings.py")


def publish(results: dict[str, Any], report_path: Path) -> dict[str, Path]:
    """Plots beside the report (``<report dir>/reproduction/steering_*.png``), then the section."""
    from traitscope.reproduce.steering.plots import write_plots

    return md.publish_section(results, report_path, NAME, write_plots, render)
