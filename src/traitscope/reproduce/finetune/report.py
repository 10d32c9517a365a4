"""publish(results, report_path): the ``finetune`` section of docs/REPRODUCTION.md and its plots."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from traitscope.reproduce.finetune.verdict import AUROC_MIN, COHERENCE_MIN, GAIN_RATIO_MAX, R_MIN

LIMITS = (
    "What a 135M model cannot show: the research log's emergent misalignment (a narrow insecure-code finetune "
    "turning a model broadly misaligned, with the 'mode confusion' seen token by token) needed a 32B coder model; "
    "SmolLM2-135M has no coherent persona to flip, so here a finetune moves the trait it was trained on and "
    "nothing broader is tested. The judges are offline (VADER lexicon for optimism, an embedding classifier "
    "for sycophancy, perplexity-based coherence), not the GPT-4-class judges of Persona Vectors; with a dozen "
    "questions per trait and 6 finetunes per correlation, each r has wide error bars. The coherence judge gives "
    "~100 to nearly every short answer here, so the coherence floor is not a real constraint in this run. The "
    "sycophancy vectors come from `prompt[-1]` (the instruction contrast lives in the system prompt): at "
    "`response[:]` SmolLM2-135M's answers barely differ between the sycophantic and the frank system prompt "
    "(probe CV AUROC 0.66, polarity flipped), and its sycophancy judge is an embedding classifier trained on "
    "the scenario prompts, so the sycophancy rows test the tooling more than the claim."
)


def _f(v: Any, spec: str = "+.3f") -> str:
    return "n/a" if v is None else format(v, spec)


def _verdict(ok: bool) -> str:
    return "**holds**" if ok else "**does not hold**"


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _finetune_rows(results: dict[str, Any]) -> str:
    rows = []
    for f in results["finetunes"]:
        for t, m in f["traits"].items():
            s, j = m["shift"], m["judged"]
            rows.append((f["name"], t, s["best_layer"], _f(s["prompt_last"]), _f(s["response"]),
                         _f(s["random_p95_prompt_last"], ".3f"), _f(j["base"], ".1f"), _f(j["finetuned"], ".1f"),
                         _f(j["delta"], "+.1f"), _f(m["coherence"], ".1f")))  # fmt: skip
    head = ("finetune", "trait", "layer", "shift prompt[-1]", "shift response", "random p95", "judged base",
            "judged ft", "Δ judged", "coherence ft")  # fmt: skip
    return _table(head, rows)


def _findings(results: dict[str, Any]) -> str:
    s = results["summary"]
    out = ["### Findings\n"]
    for t, c in s["correlation"].items():
        out.append(
            f"- **Shift predicts behaviour ({t})**: Pearson r between the `prompt[-1]` shift and the judged change "
            f"= {_f(c['r_prompt_last'])} over {c['n']} unsteered finetunes (response-token shift: "
            f"{_f(c['r_response'])}); target ≥ {R_MIN} (Persona Vectors 0.76–0.97): {_verdict(c['holds'])}."
        )
    sc = results["screening"]
    out.append(
        f"- **Screening**: on the bundled mixed set ({sc['n']} samples, {sc['n_inducing']} gloomy = "
        f"{sc['inducing_fraction']:.0%}), the per-sample projection difference ({sc['trait']} layer {sc['layer']}, "
        f"sign: {sc['direction']}) picks out the inducing samples with AUROC {sc['auroc']:.3f}; target ≥ {AUROC_MIN}: "
        f"{_verdict(sc['auroc'] >= AUROC_MIN)}. Dataset mean difference {sc['mean_difference']:+.3f}."
    )
    for t, p in s["preventative"].items():
        out.append(
            f"- **Preventative steering ({t}, {p['set']}, ratio {p['ratio']:+g})**: judged gain {p['gain_plain']:+.1f} "
            f"without, {p['gain_steered']:+.1f} with `--steer-train` (coherence {_f(p['coherence_steered'], '.1f')} vs "
            f"{_f(p['coherence_plain'], '.1f')}); target: at most {GAIN_RATIO_MAX:.0%} of the gain at coherence ≥ "
            f"{COHERENCE_MIN:.0f}: {_verdict(p['holds'])}. The steered adapter's own `prompt[-1]` shift along {t} is "
            f"{p['shift_steered']:+.1f} (unsteered {p['shift_plain']:+.1f})"
            + (
                ": it learnt an offset against the training-time push, so the behaviour stays near the base model "
                "once the steering is removed, while the activations move the other way."
                if p["shift_steered"] * p["shift_plain"] < 0
                else "."
            )
        )
    ctl = s["controls"].get("neutral", {})
    if ctl:
        parts = [f"{t} {c['shift']:+.3f} vs random p95 {c['random_p95']:.3f}" for t, c in ctl.items()]
        out.append(
            f"- **Neutral control**: shift {'; '.join(parts)}; target: every |shift| inside the random-direction "
            f"baseline: {_verdict(all(c['within'] for c in ctl.values()))}."
        )
    return "\n".join(out)


def render(results: dict[str, Any], plots: dict[str, str]) -> str:
    d = results["dynamics"]
    deltas = ", ".join(f"{t} L{layer} {v:+.3f}" for t, b in d["mean_delta_response"].items() for layer, v in b.items())
    parts = [
        "## Finetuning: shift, screening, preventative steering, dynamics\n",
        f"_Generated by `{results['command'] or 'traitscope reproduce finetune'}` on {results['date']} "
        f"({results['model']}, {results['machine']}, {results['seconds'] / 60:.1f} min); edits between the markers "
        "are overwritten._\n",
        f"Profile: {results['profile']}.\n",
        "Trait vectors: "
        + ", ".join(f"{t} best layer {v['best_layer']} (CV AUROC {v['auroc']})" for t, v in results["vectors"].items())
        + ". Shift = mean over the evaluation questions of (finetuned − base) activation projected on the unit "
        "vector; random p95 = 95th percentile of |shift| along 200 random unit directions at that layer.\n",
        _findings(results),
        "\n### Every finetune\n",
        _finetune_rows(results),
        f"\n![shift vs judged change]({plots['scatter']})\n",
        "### Dynamics: base vs finetuned on the same tokens\n",
        f'`gloomy-100` answers a held-out prompt from the gloomy set ("{d["prompt"]}"); the base model reads the '
        f"same tokens. Mean finetuned − base over the response: {deltas}.\n",
        f"![base vs finetuned dynamics]({plots['dynamics']})\n",
        "### What this cannot show\n",
        LIMITS,
    ]
    return "\n".join(parts) + "\n"


def write_plots(results: dict[str, Any], folder: Path) -> dict[str, Path]:
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from traitscope.report.diff_plots import plot_diff

    folder.mkdir(parents=True, exist_ok=True)
    traits = list(results["vectors"])
    fig, axes = plt.subplots(1, len(traits), figsize=(5 * len(traits), 4))
    for ax, t in zip(axes, traits, strict=True):
        for f in results["finetunes"]:
            m = f["traits"][t]
            if m["judged"]["delta"] is None:
                continue
            marker = "x" if f["steer"] is not None else "o"
            ax.scatter(m["shift"]["prompt_last"], m["judged"]["delta"], marker=marker)
            ax.annotate(f["name"], (m["shift"]["prompt_last"], m["judged"]["delta"]), fontsize=7)
        r = results["summary"]["correlation"][t]["r_prompt_last"]
        ax.set_title(f"{t}: r = {_f(r)} (o unsteered, x --steer-train)", fontsize=9)
        ax.set_xlabel("finetuning shift at prompt[-1]")
        ax.set_ylabel("judged change (finetuned − base)")
        ax.grid(alpha=0.3)
    scatter = folder / "finetune-shift-vs-judged.png"
    fig.savefig(scatter, dpi=110, bbox_inches="tight")
    plt.close(fig)
    diff = json.loads(Path(results["dynamics"]["file"]).read_text())
    dyn = plot_diff(diff, folder / "finetune-dynamics.png")
    return {"scatter": scatter, "dynamics": dyn}


def publish(results: dict[str, Any], report_path: Path) -> dict[str, Path]:
    """Plots beside the report (``<report dir>/reproduction/``), then the ``finetune`` section."""
    from traitscope.reproduce.report import write_section

    report_path = Path(report_path)
    plots = write_plots(results, report_path.parent / "reproduction")
    rel = {k: Path(os.path.relpath(p, report_path.parent)).as_posix() for k, p in plots.items()}
    write_section(report_path, "finetune", render(results, rel))
    return {"report": report_path, **plots}
