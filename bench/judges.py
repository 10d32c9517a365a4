"""Judge quality against the hand-labelled set (src/traitscope/judges/data/labelled.jsonl).

Prints `name: value` lines:
  <judge> <trait> auroc        trait judges, per trait (an unscored answer counts as 50)
  <judge> <trait> scored       answers that got a score / all
  coherence auroc              the offline coherence judge on the coherence labels
  coherence ordinary min / broken max / smollm2 answers mean   calibration targets (~80+ / < 50)
  <judge> coherence auroc      the rubric judges (local, api) on the coherence labels
  <judge> seconds              wall time

Judges: lexicon, embedding (trained on each bundled trait's scenarios), coherence (SmolLM2
perplexity + repetition + MiniLM relevance + gibberish), local (rubric through SmolLM2), and api
when TRAITSCOPE_JUDGE_BASE_URL is set (or --serve-local: the api judge against an in-process
OpenAI-compatible server serving SmolLM2, with a throw-away cache).

    python bench/judges.py [--skip-local] [--serve-local] [--limit N] [--threads N]
    python bench/judges.py --heldout [--threads N]   # only the held-out traits (bench/heldout/)

With --heldout: the embedding (scenario-trained; what `default` uses for a trait without a
lexicon) and rubric judges on bench/heldout/answers.jsonl, traits the judges never saw, written
after the rubric judge was frozen: `<judge> heldout set <k> <trait> auroc` and the mean per set.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sklearn.metrics import roc_auc_score  # noqa: E402

from traitscope.judges import Judge, Score  # noqa: E402
from traitscope.traits import load_trait  # noqa: E402

TRAITS = ("optimism", "refusal", "uncertainty", "formality", "sycophancy")


def labelled() -> list[dict]:
    text = resources.files("traitscope.judges").joinpath("data/labelled.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def auroc(labels: Sequence[int], scores: Sequence[Score]) -> float:
    return float(roc_auc_score(labels, [50.0 if s.value is None else s.value for s in scores]))


def limit_rows(rows: list[dict], key: str, n: int | None) -> list[dict]:
    if n is None:
        return rows
    out: list[dict] = []
    for value in sorted({r[key] for r in rows}):
        out += [r for r in rows if r[key] == value][:n]
    return out


def emit(name: str, value: float | str) -> None:
    print(f"{name}: {value:.3f}" if isinstance(value, float) else f"{name}: {value}", flush=True)


def bench_traits(name: str, judge: Judge, rows: list[dict], limit: int | None) -> None:
    start = time.perf_counter()
    for trait_name in TRAITS:
        sub = limit_rows([r for r in rows if r["trait"] == trait_name], "label", limit)
        scores = judge.score_trait(load_trait(trait_name), [(r["question"], r["answer"]) for r in sub])
        scored = sum(s.value is not None for s in scores)
        emit(f"{name} {trait_name} scored", f"{scored}/{len(sub)}")
        if scored:
            emit(f"{name} {trait_name} auroc", auroc([r["label"] for r in sub], scores))
    emit(f"{name} trait seconds", time.perf_counter() - start)


def bench_coherence(name: str, judge: Judge, rows: list[dict], limit: int | None, detail: bool = False) -> None:
    start = time.perf_counter()
    prefix = name if name == "coherence" else f"{name} coherence"
    sub = limit_rows(rows, "coherence_label", limit)
    scores = judge.score_coherence([(r["question"], r["answer"]) for r in sub])
    emit(f"{prefix} scored", f"{sum(s.value is not None for s in scores)}/{len(sub)}")
    emit(f"{prefix} auroc", auroc([r["coherence_label"] for r in sub], scores))
    if detail:
        values = [(r, s.value) for r, s in zip(sub, scores, strict=True) if s.value is not None]
        emit(f"{prefix} ordinary min", min(v for r, v in values if r["coherence_label"] == 1))
        emit(f"{prefix} broken max", max(v for r, v in values if r["coherence_label"] == 0))
        smol = [v for r, v in values if r.get("source", "").startswith("smollm2")]
        if smol:
            emit(f"{prefix} smollm2 answers mean", sum(smol) / len(smol))
    emit(f"{prefix} seconds", time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-local", action="store_true", help="skip the rubric judge through SmolLM2 (slow on CPU)")
    parser.add_argument(
        "--serve-local", action="store_true", help="run the api judge against an in-process SmolLM2 server"
    )
    parser.add_argument("--limit", type=int, default=None, help="at most N answers per label and trait (local/api)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--heldout", action="store_true", help="only the held-out traits in bench/heldout/")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.heldout:
        bench_heldout()
        return
    from traitscope.judges.coherence import CoherenceJudge
    from traitscope.judges.embedding import EmbeddingJudge
    from traitscope.judges.lexicon import LexiconJudge
    from traitscope.models import load_model

    rows = labelled()
    trait_rows = [r for r in rows if r.get("trait")]
    lm = load_model()
    bench_traits("lexicon", LexiconJudge(), trait_rows, None)
    bench_traits("embedding", EmbeddingJudge(), trait_rows, None)
    bench_coherence("coherence", CoherenceJudge(lm), rows, None, detail=True)
    if not args.skip_local:
        from traitscope.judges.local import LocalJudge

        bench_traits("local", LocalJudge(lm), trait_rows, args.limit)
        bench_coherence("local", LocalJudge(lm), rows, args.limit)
    runners: list[tuple[str, Callable[[], None]]] = []
    if os.environ.get("TRAITSCOPE_JUDGE_BASE_URL"):
        runners.append(("api", lambda: run_api(rows, trait_rows, args.limit, None)))
    if args.serve_local:
        runners.append(("api-local", lambda: run_api(rows, trait_rows, args.limit, lm)))
    for _, run in runners:
        run()


HELDOUT = Path(__file__).resolve().parent / "heldout"


def bench_heldout() -> None:
    """AUROC per held-out trait and judge, and the mean per set (set 1: written after the first
    frozen rubric judge; set 2: written after its anchor instruction changed, commit e96fa19)."""
    from traitscope.judges.embedding import EmbeddingJudge
    from traitscope.judges.rubric import RubricJudge
    from traitscope.models import load_model

    rows = [json.loads(line) for line in (HELDOUT / "answers.jsonl").read_text().splitlines() if line.strip()]
    sets = {r["trait"]: r.get("set", 1) for r in rows}
    judges = {"embedding": EmbeddingJudge(), "rubric": RubricJudge(load_model())}
    for name, judge in judges.items():
        start = time.perf_counter()
        per_set: dict[int, list[float]] = {}
        for trait_name in sorted(sets, key=lambda t: (sets[t], t)):
            sub = [r for r in rows if r["trait"] == trait_name]
            scores = judge.score_trait(load_trait(HELDOUT / trait_name), [(r["question"], r["answer"]) for r in sub])
            value = auroc([r["label"] for r in sub], scores)
            per_set.setdefault(sets[trait_name], []).append(value)
            emit(f"{name} heldout set {sets[trait_name]} {trait_name} auroc", value)
        for k, values in sorted(per_set.items()):
            emit(f"{name} heldout set {k} mean auroc", sum(values) / len(values))
        emit(f"{name} heldout seconds", time.perf_counter() - start)


def run_api(rows: list[dict], trait_rows: list[dict], limit: int | None, lm: object | None) -> None:
    from traitscope.judges.api import ApiConfig, ApiJudge
    from traitscope.judges.cache import ScoreCache

    if lm is None:
        judge = ApiJudge(ApiConfig.from_env())
        bench_traits("api", judge, trait_rows, limit)
        bench_coherence("api", judge, rows, limit)
        return
    from traitscope.serve import BackgroundServer, create_app

    with BackgroundServer(create_app(lm)) as server, tempfile.TemporaryDirectory() as tmp:  # type: ignore[arg-type]
        config = ApiConfig(base_url=server.base_url, api_key=None, model=lm.name, timeout=300)  # type: ignore[attr-defined]
        judge = ApiJudge(config, cache=ScoreCache(Path(tmp) / "api.jsonl"))
        bench_traits("api-local", judge, trait_rows, limit)
        bench_coherence("api-local", judge, rows, limit)


if __name__ == "__main__":
    main()
