"""The detection section of the reproduction report, rendered from the results dict alone:
``publish(results, report_path)`` writes the plots and the ``detection`` section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import traitscope.reproduce.detection.findings as log
from traitscope.reproduce.common.markdown import (
    checks_table,
    img,
    join,
    machine_line,
    num,
    pct,
    publish_section,
    render_section,
    rules_table,
    run_rows,
    summary_table,
    table,
    verdict_line,
)
from traitscope.reproduce.common.verdict import CEILING
from traitscope.reproduce.detection.findings import FINDINGS, METHOD_ORDER, RULES, SECTION

NAME = "detection"


def _took(f: dict[str, Any]) -> str:
    return f" Wall time {f['seconds']:.0f} s." if "seconds" in f else ""


# --- sections ------------------------------------------------------------------------------------


def render(results: dict[str, Any], plots: dict[str, str] | None = None) -> str:
    """The whole detection section. ``plots``: key -> path relative to the report."""
    return render_section("## Detection findings", results, plots, _setup, _summary, _body)


def _body(fs: dict[str, Any], meta: dict[str, Any], plots: dict[str, str]) -> list[str]:
    return [
        _methods(fs["methods"], meta, plots),
        _cross_lang_topic(fs, meta, plots),
        _cross_dist(fs["cross_dist"], plots),
        _components(fs["components"], plots),
        _elicitation(fs, plots),
        _transfer(fs["base_to_instruct"], plots),
        _rules(),
    ]


def _setup(meta: dict[str, Any]) -> str:
    mc = meta["machine"]
    layers = meta["layers"]
    data = ", ".join(f"{k} {v['rows']}" for k, v in meta["data"].items())
    machine = machine_line(mc)
    t = meta["timings"]
    extraction = sum(v for k, v in t.items() if k.startswith("extract "))
    timing = f"model load {t.get('load model', 0):.0f} s, extraction runs {extraction:.0f} s, " + ", ".join(
        f"§{SECTION[k]} {v:.0f} s" for k, v in t.items() if k in SECTION
    )
    rows = [
        *run_rows(meta),
        ("layers", f"{len(layers)}: {', '.join(map(str, layers))}"),
        ("data (rows per trait)", data),
        ("machine", machine),
        ("date", meta["started"]),
        ("wall time", f"**{meta['wall_seconds'] / 60:.1f} min** ({timing})" + _resumed(meta)),
    ]
    note = (
        "\n\nThe quick profile trades size for time: vectors come from the last prompt token instead of the "
        "model's own response, on tens of scenarios per trait, so single numbers move by several points "
        "between seeds; `--quick` is a smoke test of every claim, the full profile (`traitscope reproduce "
        "detection`, no `--quick`) is the reproduction."
        if meta["profile"] == "quick"
        else ""
    )
    return "### Setup\n\n" + table(("", ""), rows, "ll") + note


def _resumed(meta: dict[str, Any]) -> str:
    again = [k for k, v in meta["data"].items() if v.get("resumed")]
    if not again:
        return "; every extraction run from scratch"
    return f"; **resumed** finished runs of {', '.join(again)} (their extraction time is not in this total)"


def _summary(fs: dict[str, Any]) -> str:
    return summary_table(
        fs,
        FINDINGS,
        SECTION,
        "\n\nA finding's verdict is its worst check; every check, its threshold and both numbers are in the "
        "finding's section, and the thresholds are in `traitscope/reproduce/detection/findings.py` (listed at the end).",
    )


def _methods(f: dict[str, Any], meta: dict[str, Any], plots: dict[str, str]) -> str:
    s, L = f["summary"], log.METHODS_TABLE
    total = s["probe"]["total"]
    rows = []
    for m in METHOD_ORDER:
        o = s[m]
        rows.append(
            (
                f"**{m}**",
                f"{o['polarity_failures']}/{o['total']} ({o['fail_rate']:.1%}) <br>log {L[m]['polarity_failures']}",
                f"{o['accuracy']:.1%} <br>log {L[m]['accuracy']:.1%}",
                f"{o['effect_size']:.2f} <br>log {L[m]['effect_size']:.2f}",
                f"{o['below_60']}/{o['total']} <br>log {L[m]['below_60']}",
                f"{o['auroc']:.3f}",
            )
        )
    per_trait = []
    for trait in f["traits"]:
        cells = []
        for m in METHOD_ORDER:
            rs = [r for r in f["rows"] if r["trait"] == trait and r["method"] == m]
            cells.append(pct(sum(r["accuracy"] for r in rs) / len(rs)))
        per_trait.append((trait, *cells))
    return "\n\n".join(
        [
            f"### 1. {FINDINGS['methods']}",
            f"Log: {log.METHODS_SETUP}. Ours: {len(f['traits'])} traits × {len(f['layers'])} layers = {total} "
            f"combinations per method on {meta['model']['name']}, residual site, position `{meta['position']}`, "
            f"{meta['folds']}-fold CV (grouped by minimal pair).{_took(f)}",
            table(
                (
                    "method",
                    "polarity failures",
                    "mean accuracy",
                    "mean effect size d",
                    "accuracy < 60%",
                    "mean AUROC (ours)",
                ),
                rows,
            ),
            "Mean accuracy per trait (over layers):\n\n" + table(("trait", *METHOD_ORDER), per_trait),
            img(plots, "methods", "methods compared"),
            checks_table(f),
            verdict_line(f),
        ]
    )


def _matrix_table(m: dict[str, Any]) -> str:
    g = m["groups"]
    rows = [
        (
            f"**{a}** (n={m['sizes'][a]})",
            *[f"{m['accuracy'][i][j]:.1%} ({m['auroc'][i][j]:.2f})" + ("*" if i == j else "") for j in range(len(g))],
        )
        for i, a in enumerate(g)
    ]
    av = m["averages"]
    return table(("train ↓ test →", *g), rows) + (
        f"\n\n{m['method']} @ residual L{m['layer']}: same-group {av['same_group']:.1%} (* = k-fold within the "
        f"group), cross-group **{av['cross_group']:.1%}**, drop {av['drop'] * 100:.1f} pts. Cells: accuracy (AUROC)."
    )


def _cross_lang_topic(fs: dict[str, Any], meta: dict[str, Any], plots: dict[str, str]) -> str:
    out = []
    for key, setup, logged in (
        ("cross_lang", log.CROSS_LANG_SETUP, log.CROSS_LANG),
        ("cross_topic", log.CROSS_TOPIC_SETUP, log.CROSS_TOPIC),
    ):
        f = fs[key]
        num_ = "2a" if key == "cross_lang" else "2b"
        head = [
            f"### {num_}. {FINDINGS[key]}",
            f"Log: {setup}: same-group {logged['same']:.1%}, cross-group "
            f"{logged['cross']:.1%}, drop {logged['drop'] * 100:.1f} pts"
            + (", mean_diff ~50% (chance)." if key == "cross_lang" else "."),
        ]
        if "matrices" not in f:
            out.append("\n\n".join([*head, verdict_line(f)]))
            continue
        head.append(
            f"Ours: {meta['model']['name']}, uncertainty ({f['n']} rows), residual layer {f['layer']} "
            f"(the run's best probe layer), position `{meta['position']}`.{_took(f)}"
        )
        out.append(
            "\n\n".join([*head, *(_matrix_table(m) for m in f["matrices"].values()), checks_table(f), verdict_line(f)])
        )
    pic = img(plots, "transfer", "transfer matrices")
    return "\n\n".join(out + ([pic] if pic else []))


def _cross_dist(f: dict[str, Any], plots: dict[str, str]) -> str:
    head = [f"### 3. {FINDINGS['cross_dist']}", f"Log: {log.CROSS_DIST_SETUP}."]
    if "table" not in f:
        return "\n\n".join([*head, verdict_line(f)])
    rows = []
    for meth in ("probe", "mean_diff"):
        for i, g in enumerate(f["matrices"][meth]["groups"]):
            ab = "AB"[i] if i < 2 else g
            cells, lg = f["table"][meth][g]["cells"], log.CROSS_DIST[meth].get(g)
            logged = [f" (log {x:.0%})" for x in lg] if lg else [""] * len(cells)
            rows.append(
                (
                    f"{'Probe' if meth == 'probe' else 'Mean_diff'} {ab} ({g})",
                    *[
                        f"{c:.1%}{lo}" + ("*" if j == i else "")
                        for j, (c, lo) in enumerate(zip(cells, logged, strict=True))
                    ],
                    f"{f['table'][meth][g]['avg']:.1%}",
                )
            )
    groups = f["matrices"]["probe"]["groups"]
    return "\n\n".join(
        [
            *head,
            f"Ours: optimism ({f['n']} rows), residual layer {f['layer']} (best probe layer); * = k-fold within the "
            f"domain (the log's diagonal may be in-sample).{_took(f)}",
            table(("vector", *[f"eval on {'AB'[j]} ({g})" for j, g in enumerate(groups)], "avg"), rows),
            checks_table(f),
            verdict_line(f),
        ]
    )


def _components(f: dict[str, Any], plots: dict[str, str]) -> str:
    sites = ("residual", "attn_out", "mlp_out", "v")
    parts = [
        f"### 4. {FINDINGS['components']}",
        f"Log: {log.COMPONENTS_SETUP}: attn_out 90% vs residual 80% accuracy; "
        "V-cache AUROC 0.854 vs residual 0.687. Ours: every trait's run, best layer per site by CV AUROC; "
        f"cells accuracy / AUROC (layer).{_took(f)}",
    ]
    for method in ("probe", "mean_diff"):
        rows = [
            (
                trait,
                *[
                    f"{d[method][s]['accuracy']:.1%} / {d[method][s]['auroc']:.3f} (L{d[method][s]['layer']})"
                    for s in sites
                ],
            )
            for trait, d in f["per_trait"].items()
        ]
        means = f["means"][method]
        rows.append(("**mean**", *[f"**{means[s]['accuracy']:.1%} / {means[s]['auroc']:.3f}**" for s in sites]))
        parts.append(f"{method}:\n\n" + table(("trait", *sites), rows))
    parts += [img(plots, "components", "components compared"), checks_table(f), verdict_line(f)]
    return "\n\n".join(p for p in parts if p)


def _elicitation(fs: dict[str, Any], plots: dict[str, str]) -> str:
    parts = []
    for i, pair in enumerate(("sycophancy", "optimism")):
        f = fs[f"elicitation_{pair}"]
        lg = log.ELICITATION[pair]
        head = [
            f"### 5{'ab'[i]}. {FINDINGS[f'elicitation_{pair}']}",
            f"Log: {log.ELICITATION_SETUP}: cosine {lg['cosine']:.2f}, cross-projection {lg['cross']}.",
        ]
        if "methods" not in f:
            parts.append("\n\n".join([*head, verdict_line(f)]))
            continue
        rows = []
        for method, d in f["methods"].items():
            h = d["headline"]
            cos = [r["cosine"] for r in d["layers"]]
            rows.append(
                (
                    method,
                    num(h["cosine"]),
                    f"{sum(cos) / len(cos):.2f} / {max(cos):.2f}",
                    f"{h['natural_to_instruction']['accuracy']:.1%} ({h['natural_to_instruction']['auroc']:.2f})",
                    f"{h['instruction_to_natural']['accuracy']:.1%} ({h['instruction_to_natural']['auroc']:.2f})",
                )
            )
        n = f["n"]
        parts.append(
            "\n\n".join(
                [
                    *head,
                    f"Ours: {f['natural']} ({n[f['natural']]} rows) vs {f['instruction']} ({n[f['instruction']]} rows), "
                    f"residual; headline layer {f['headline_layer']} (the instruction run's best probe layer). Cross-"
                    "projection: one run's vector (fitted on all its rows) scored on the other run's rows; accuracy on "
                    f"held-out folds with the threshold from the training folds (AUROC over all rows).{_took(f)}",
                    table(
                        (
                            "method",
                            f"cosine @ L{f['headline_layer']}",
                            "cosine mean / max over layers",
                            "natural → instruction",
                            "instruction → natural",
                        ),
                        rows,
                    ),
                    checks_table(f),
                    verdict_line(f),
                ]
            )
        )
    pic = img(plots, "elicitation", "natural vs instruction cosines")
    return "\n\n".join(parts + ([pic] if pic else []))


TRANSFER_NOTE = (
    "The carried vectors are scored k-fold on the scenarios both runs share: each fold fits the source vector "
    "on the source model's training pairs only, and the target's own vector on the target's training pairs. "
    "'accuracy' takes one threshold from the target's training folds (a map shifts the origin); 'strict' uses "
    "the threshold carried from the source. The log's separation (~0.5) is in its own projection units and "
    "is not compared; d is Cohen's d of the carried projection on held-out rows."
)
DIRECT_NOTE = (
    "The log's direct path (same width, vector used as is) cannot run on the bundled pair, whose widths "
    "differ; it runs when `--model` and `--base-model` share hidden size and depth (e.g. google/gemma-2-2b-it "
    "and google/gemma-2-2b on a GPU box) and is tested on two small same-width models in "
    "tests/test_reproduce.py."
)
TRANSFER_HEADER = (
    "site",
    "method",
    "arm",
    "AUROC",
    "accuracy",
    "strict acc.",
    "d",
    "cos(own)",
    "target own AUROC / acc",
    "source own AUROC",
    "random p95 AUROC",
)


def _transfer(f: dict[str, Any], plots: dict[str, str]) -> str:
    head = [
        f"### 6. {FINDINGS['base_to_instruct']}",
        f"Log: {log.BASE_TO_IT_SETUP}: 90% accuracy, response separation {log.BASE_TO_IT['separation']}.",
    ]
    if "sites" not in f:
        return "\n\n".join([*head, verdict_line(f)])
    maps = "; ".join(
        f"{s['site']}: " + ", ".join(f"{k} α={v['alpha']:.3g}, held-out R²={v['r2']:.2f}" for k, v in s["maps"].items())
        for s in f["sites"]
        if s["maps"]
    )
    return join(
        [
            *head,
            f"Ours: {f['source']} → {f['target']}, trait {f['trait']} ({f['n']['source']} / {f['n']['target']} rows); "
            f"{_transfer_how(f)}. Source layer = the source's best probe layer; target layer = the same relative "
            f"depth. {maps}.{_took(f)}",
            table(TRANSFER_HEADER, _transfer_rows(f)),
            TRANSFER_NOTE,
            "" if f["path"] == "direct" else DIRECT_NOTE,
            img(plots, "transfer_model", "base to instruct"),
            checks_table(f),
            verdict_line(f),
        ]
    )


def _transfer_how(f: dict[str, Any]) -> str:
    if f["path"] == "direct":
        return "same hidden size and depth: the source vector is applied directly at the same layer"
    g = f["geometry"]
    return (
        f"different geometry (d={g['source']['hidden_size']}×{g['source']['n_layers']} layers → "
        f"d={g['target']['hidden_size']}×{g['target']['n_layers']}): ridge maps fitted on {f['n_texts']} neutral "
        f"texts (prompts of the other bundled traits and monitor prompt sets, read raw by both models at "
        f"`{f['map_position']}`); **pull** (primary) scores target activations mapped into the source space with "
        "the source vector, **push** moves the vector forward, v_t = Wᵀv_s"
    )


def _transfer_rows(f: dict[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    for s in f["sites"]:
        for method, d in s["methods"].items():
            own, src, rnd = d["target_own"], d["source_own"], d["random_p95"]
            rows += [
                (
                    f"{s['site']} L{s['source_layer']}→L{s['target_layer']}",
                    method,
                    a["arm"],
                    f"{a['auroc']:.3f}",
                    pct(a["accuracy"]),
                    pct(a["accuracy_strict"]),
                    num(a["effect_size"]),
                    num(a["cos_with_own"]),
                    f"{own['auroc']:.3f} / {pct(own['accuracy'])}",
                    f"{src['auroc']:.3f}",
                    f"{rnd['auroc']:.3f}",
                )
                for a in d["arms"]
            ]
    return rows


def _rules() -> str:
    return rules_table(
        RULES,
        "traitscope/reproduce/detection/findings.py",
        f"; a site comparison where both sides score ≥ {CEILING:.0%} is 'cannot test here' (no room to differ)",
    )


def publish(results: dict[str, Any], report_path: Path) -> dict[str, Path]:
    """Plots beside the report (``<report dir>/reproduction/detection-*.png``), then the section."""
    from traitscope.reproduce.detection.plots import write_plots

    return publish_section(results, report_path, NAME, write_plots, render)
