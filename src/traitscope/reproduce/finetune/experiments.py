"""`traitscope reproduce finetune`: run(profile) -> results.

On the bundled model: trait vectors (extracted once), the profile's LoRA finetunes (inducing sets
at several strengths, a neutral control, preventative steering), and for each the finetuning
shift and the judged change in trait expression; then screening of the mixed set and a
base-vs-finetuned dynamics trace. Every stage resumes from what is on disk under ``out``.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

from traitscope.finetune import FinetuneConfig, finetune, load_conversations
from traitscope.finetune.data import bundled_data_dir
from traitscope.finetune.shift import activation_shift, answers, judged_expression
from traitscope.models.loader import LoadedModel
from traitscope.progress import Reporter, Silent
from traitscope.reproduce.finetune.profile import TRAITS, Finetune, FinetuneProfile
from traitscope.store import RunDir, atomic_write_json


def _vectors(lm: LoadedModel, root: Path, profile: FinetuneProfile, reporter: Reporter) -> dict[str, Any]:
    """Extract each trait's vectors unless the run already holds them."""
    from traitscope.extraction import ExtractConfig, extract
    from traitscope.finetune.vectors import trait_vectors
    from traitscope.store.runs import load_evaluation
    from traitscope.traits import load_trait

    out = {}
    for name in TRAITS:
        run = RunDir.of(lm.slug, name, root)
        if not (run.root / "evaluation.json").is_file():
            cfg = ExtractConfig(
                model=lm.name, layers=profile.extract_layers, sites=("residual",), methods=("probe", "mean_diff"),
                max_new_tokens=24, limit=profile.extract_limit, position=dict(profile.positions)[name],
            )  # fmt: skip
            extract(lm, load_trait(name), run, cfg, reporter=reporter)
        _, layer = trait_vectors(lm, root, name)
        best = load_evaluation(run)["best"]["residual/probe"]
        out[name] = {"best_layer": layer, "auroc": round(float(best["auroc"]), 3)}
    return out


def _data(profile: FinetuneProfile, ft: Finetune) -> list:
    """``n`` examples: ``fraction`` from the inducing set, the rest from the neutral set."""
    n = profile.n_examples
    k = round(n * ft.fraction) if ft.inducing else 0
    neutral = load_conversations("neutral")[: n - k]
    inducing = load_conversations(ft.inducing)[:k] if k else []
    return inducing + neutral


def _train(lm: LoadedModel, root: Path, out: Path, profile: FinetuneProfile, ft: Finetune, rep: Reporter) -> dict:
    from traitscope.finetune.vectors import steer_train_spec

    cfg = FinetuneConfig(
        rank=profile.rank, alpha=2.0 * profile.rank, epochs=profile.epochs, lr=profile.lr,
        batch_size=profile.batch_size, seed=profile.seed,
    )  # fmt: skip
    spec = steer_train_spec(lm, root, f"{ft.trait}:{ft.steer}") if ft.steer is not None else None
    return finetune(lm, _data(profile, ft), out, cfg, spec, rep, data_name=ft.name)


class Evaluator:
    """Base answers and judges made once; each finetune is then measured against them."""

    def __init__(self, base: LoadedModel, root: Path, profile: FinetuneProfile) -> None:
        from traitscope.judges import get_judge
        from traitscope.traits import load_trait

        self.base, self.root, self.profile = base, root, profile
        self.questions = {t: load_trait(t).steering_questions[: profile.n_questions] for t in TRAITS}
        # the embedding judge trains on each trait's own scenarios: a prompt[-1] run has no answers to learn from
        self.judges = {t: get_judge("default", load_trait(t), None, base) for t in TRAITS}
        self.base_text = {t: self._text(base, q) for t, q in self.questions.items()}

    def _text(self, lm: LoadedModel, prompts: list[str]) -> list[str]:
        ids = answers(lm, prompts, self.profile.max_new_tokens)
        return [lm.tokenizer.decode(a, skip_special_tokens=True) for a in ids]

    def measure(self, tuned: LoadedModel) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for t, qs in self.questions.items():
            ids = answers(tuned, qs, self.profile.max_new_tokens)
            text = [tuned.tokenizer.decode(a, skip_special_tokens=True) for a in ids]
            shift = activation_shift(self.base, tuned, self.root, [t], qs, ids)[t]
            judged = judged_expression(self.judges[t], [t], qs, self.base_text[t], text)
            out[t] = {"shift": shift, "judged": judged[t], "coherence": judged["coherence_finetuned"]}
            out[t]["coherence_base"] = judged["coherence_base"]
            out[t]["example"] = {"prompt": qs[0], "base": self.base_text[t][0], "finetuned": text[0]}
        return out


def _screening(base: LoadedModel, root: Path, profile: FinetuneProfile) -> dict[str, Any]:
    import torch

    from traitscope.evaluation.metrics import auroc
    from traitscope.finetune.screen import screen

    labels = json.loads((bundled_data_dir() / "mixed.labels.json").read_text())
    convs = load_conversations("mixed")
    res = screen(base, convs, root, [labels["trait"]], profile.max_new_tokens)["traits"][labels["trait"]]
    sign = -1.0 if labels["direction"] == "negative" else 1.0
    inducing = set(labels["inducing_lines"])
    y = [1 if r["line"] in inducing else 0 for r in res["ranked"]]
    scores = [sign * r["difference"] for r in res["ranked"]]
    return {
        "trait": labels["trait"], "direction": labels["direction"], "n": len(convs), "n_inducing": len(inducing),
        "inducing_fraction": labels["inducing_fraction"], "layer": res["layer"],
        "auroc": round(float(auroc(torch.tensor(scores), torch.tensor(y))), 3),
        "mean_difference": res["mean_difference"],
        "top": [{"line": r["line"], "difference": r["difference"], "inducing": r["line"] in inducing}
                for r in sorted(res["ranked"], key=lambda r: -sign * r["difference"])[:5]],
    }  # fmt: skip


def _dynamics(base: LoadedModel, tuned: LoadedModel, root: Path, out: Path) -> dict[str, Any]:
    from traitscope.finetune.diff import diff_trace
    from traitscope.generation import SamplingConfig
    from traitscope.monitor import load_bank, write_trace
    from traitscope.prompts import Prompt

    prompt = load_conversations("gloomy")[-1].prompt  # a held-out prompt: the quick finetunes use the first 40
    bank = load_bank(base, root, ["optimism"])
    d = diff_trace(base, tuned, bank, Prompt("dynamics", prompt, None, None, None), SamplingConfig(max_new_tokens=40))
    path = write_trace(out / "dynamics.diff.json", d)
    return {"prompt": prompt, "file": str(path), "mean_delta_response": d["mean_delta_response"]}


def run(
    profile: FinetuneProfile,
    out: Path = Path("runs/reproduce/finetune"),
    model: str = "smollm2-135m-instruct",
    reporter: Reporter | None = None,
    command: str = "",
) -> dict[str, Any]:
    """Every finetune, its measurements and the summary numbers; saved to ``<out>/results.json``."""
    from traitscope.models import load_model

    rep = reporter or Silent()
    out = Path(out) / profile.name
    root = out / "runs"
    start = time.perf_counter()
    base = load_model(model)
    vectors = _vectors(base, root, profile, rep)
    ev = Evaluator(base, root, profile)
    rows = []
    for ft in profile.finetunes:
        prov = _train(base, root, out / "adapters" / ft.name, profile, ft, rep)
        tuned = load_model(model, adapter=out / "adapters" / ft.name)
        rep.note(f"measuring {ft.name}")
        rows.append({**ft.__dict__, "train_seconds": prov.get("train_seconds_this_session"),
                     "final_loss": prov.get("final_loss"), "traits": ev.measure(tuned)})  # fmt: skip
        if ft.name == "gloomy-100":
            dynamics = _dynamics(base, tuned, root, out)
        del tuned
    results = {
        "profile": profile.describe(), "profile_name": profile.name, "model": model, "command": command,
        "machine": f"{platform.machine()} {platform.system()}, torch threads {__import__('torch').get_num_threads()}",
        "date": time.strftime("%Y-%m-%d"), "vectors": vectors, "base_text": ev.base_text,
        "finetunes": rows, "screening": _screening(base, root, profile), "dynamics": dynamics,
        "seconds": round(time.perf_counter() - start, 1),
    }  # fmt: skip
    results["summary"] = summarise(results)
    atomic_write_json(out / "results.json", results)
    return results


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Shift-vs-behaviour r, preventative steering, controls."""
    from traitscope.reproduce.finetune.verdict import controls, correlation, preventative

    return {"correlation": correlation(results), "preventative": preventative(results), "controls": controls(results)}
