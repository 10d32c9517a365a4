"""Judge-free A/B behavioural evaluation (the multiple-choice form of contrastive activation addition).

Each item is a question with two answers, one showing the trait and one its opposite. The model
reads the question and both answers labelled (A) and (B), in an order randomised per question but
balanced over the set (half the items put the trait answer first), and its next token after ``(``
is read from the logits of one forward pass: the score is the probability of the trait answer's
letter, normalised over the two letters. No generation and no judge; a layer x ratio sweep runs as
rows of a few batched forward passes, each row with its own steering (``steering.sweep.row_terms``).

The A/B score cannot see where coherence breaks, so each row also carries a fluency cost, read the
same way (batched forward passes, per-row steering, no generation per configuration): ``ab_nll`` is
the mean per-token negative log-likelihood, under that configuration's steering, of the UNSTEERED
model's own greedy answers to the trait's steering questions (generated once per call), and
``ab_nll_delta`` its increase over the unsteered model. Any steering raises it somewhat; steering
that breaks the model makes its own ordinary answers much less probable (Spearman -0.80 against
judged coherence over 32 optimism configurations, bench/RESULTS.md). :func:`pick_ab` takes the
highest ``ab_delta`` among configurations whose ``ab_nll_delta`` stays under a threshold.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from traitscope.errors import TraitscopeError
from traitscope.generation import SamplingConfig
from traitscope.models.identity import model_identity
from traitscope.models.loader import LoadedModel
from traitscope.progress import Reporter, Silent
from traitscope.steering.apply import steer
from traitscope.steering.evaluate import SteerConfig, terms_for
from traitscope.steering.spec import SteeringSpec, SteerTerm
from traitscope.steering.sweep import generate_rows, row_terms
from traitscope.store import RunDir, append_jsonl, locked, read_jsonl
from traitscope.store.runs import load_run_vectors
from traitscope.traits.schema import ABQuestion, Trait

MIN_AB_ITEMS = 4
MAX_ANSWER_CHARS = 400  # rollouts used as answers are cut here (the two choices must fit in one prompt)
FLUENCY_TOKENS = 48  # greedy tokens per reference answer for the fluency cost
MAX_FLUENCY_REFS = 24  # steering questions used as fluency references (the first N)
# pick_ab's fluency limit in nats per token: on SmolLM2-135M optimism every configuration under it was
# judged coherent (bench/ab_fluency.py, bench/RESULTS.md); other models may need another
MAX_NLL_DELTA = 1.0


@dataclass(frozen=True)
class ABItem:
    """One prompt, ready to score: its token ids and which letter (0 = A, 1 = B) is the trait's."""

    question: str
    ids: list[int]
    trait_letter: int


def items_from_pairs(trait: Trait, run_dir: Path | None) -> list[ABQuestion]:
    """A/B questions from the trait's minimal pairs, where the format allows: both halves of a
    pair ask the same prompt (instruction elicitation: only the system prompt differs), and the run
    holds a kept rollout for each half, so the two rollouts answer one question in two ways."""
    if run_dir is None or not RunDir(Path(run_dir)).rollouts.is_file():
        return []
    by_id = {s.id: s for s in trait.scenarios}
    answers: dict[str, str] = {}
    for r in read_jsonl(RunDir(Path(run_dir)).rollouts):
        if r.get("kept", True) and isinstance(r.get("response"), str) and r["response"].strip():
            answers[str(r.get("id"))] = r["response"].strip()[:MAX_ANSWER_CHARS]
    pairs: dict[str, dict[str, str]] = {}
    for sid, s in by_id.items():
        if s.pair and sid in answers:
            pairs.setdefault(s.pair, {})[s.polarity] = sid
    out = []
    for halves in pairs.values():
        pos, neg = by_id.get(halves.get("positive", "")), by_id.get(halves.get("negative", ""))
        if pos is None or neg is None or pos.prompt != neg.prompt or answers[pos.id] == answers[neg.id]:
            continue
        out.append(ABQuestion(pos.prompt, answers[pos.id], answers[neg.id]))
    return out


ALIKE_OVERLAP = 0.6  # word-set Jaccard above which a pair's two rollouts "read alike"


def word_overlap(a: str, b: str) -> float:
    """Jaccard overlap of two texts' lower-cased word sets (0 = no word shared, 1 = the same words)."""
    wa, wb = set(re.findall(r"\w+", a.lower())), set(re.findall(r"\w+", b.lower()))
    return len(wa & wb) / max(1, len(wa | wb))


def ab_questions(trait: Trait, run_dir: Path | None = None) -> tuple[list[ABQuestion], str]:
    """The trait's A/B questions and where they came from (a line fit to print)."""
    if trait.ab_questions:
        return list(trait.ab_questions), f"{len(trait.ab_questions)} ab_questions from trait.yaml"
    built = items_from_pairs(trait, run_dir)
    if len(built) >= MIN_AB_ITEMS:
        alike = sum(word_overlap(q.trait_answer, q.opposite_answer) > ALIKE_OVERLAP for q in built)
        warning = (
            f"; warning: in {alike} of them the two answers share over {ALIKE_OVERLAP:.0%} of their words "
            "(the model answered both halves alike), so they may test wording rather than the trait: "
            "write ab_questions in trait.yaml"
            if alike
            else ""
        )
        return built, (
            f"trait {trait.name} has no ab_questions: built {len(built)} from minimal pairs that share a prompt "
            f"(their kept rollouts in {run_dir} as the two answers){warning}"
        )
    raise TraitscopeError(
        f"trait {trait.name} has no ab_questions and its minimal pairs cannot make them "
        f"({len(built)} pairs share a prompt and have rollouts; need {MIN_AB_ITEMS}); add ab_questions to "
        "trait.yaml: a list of {question, trait_answer, opposite_answer}"
    )


def letter_ids(lm: LoadedModel) -> tuple[list[int], int, int]:
    """(ids of the answer opener ``(``, id of ``A``, id of ``B``) under the model's tokenizer."""
    paren, a, b = lm.response_ids("("), lm.response_ids("(A"), lm.response_ids("(B")
    if not (len(a) == len(b) == len(paren) + 1 and a[:-1] == b[:-1] == paren and a[-1] != b[-1]):
        raise TraitscopeError(f"{lm.name}: cannot read A/B answers ('(A' and '(B' do not end in one letter token each)")
    return paren, a[-1], b[-1]


def format_question(q: ABQuestion, trait_first: bool) -> str:
    first, second = (q.trait_answer, q.opposite_answer) if trait_first else (q.opposite_answer, q.trait_answer)
    return f"{q.question}\n\nWhich answer would you give?\n(A) {first}\n(B) {second}\n\nReply with A or B."


def build_items(lm: LoadedModel, questions: Sequence[ABQuestion], seed: int = 0) -> list[ABItem]:
    """Prompt ids per question, the trait answer first in a seeded, balanced half of them."""
    order = [i < (len(questions) + 1) // 2 for i in range(len(questions))]
    random.Random(seed).shuffle(order)
    paren, _, _ = letter_ids(lm)
    items = []
    for q, trait_first in zip(questions, order, strict=True):
        text = format_question(q, trait_first)
        ids = lm.prompt_ids(text) + paren if lm.uses_template() else lm.prompt_ids(text + "\n\nAnswer: (")
        items.append(ABItem(q.question, ids, 0 if trait_first else 1))
    return items


def _steered_logits(lm: LoadedModel, batch: Sequence[tuple[list[int], Sequence[SteerTerm]]], tail: int) -> torch.Tensor:
    """Logits of the last ``tail`` positions of each left-padded row, each row with its own steering."""
    dims = {site: lm.site_dim(site) for site in {t.site for _, terms in batch for t in terms}}
    keep = {"logits_to_keep": tail} if "logits_to_keep" in inspect.signature(lm.model.forward).parameters else {}
    ids, mask = lm.left_pad([row for row, _ in batch])
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    spec = SteeringSpec(row_terms([terms for _, terms in batch], dims), scope="all")
    with torch.inference_mode(), steer(lm, spec):
        out = lm.model(
            input_ids=ids.to(lm.device), attention_mask=mask.to(lm.device), position_ids=positions.to(lm.device), **keep
        )
    return out.logits[:, -tail:].float()


def letter_probabilities(
    lm: LoadedModel,
    rows: Sequence[tuple[ABItem, Sequence[SteerTerm]]],
    batch_size: int = 32,
    on_batch: Callable[[int], None] | None = None,
) -> list[tuple[float, float]]:
    """Per (item, steering terms) row: (probability of the trait letter among A and B, mass of A+B)."""
    _, a_id, b_id = letter_ids(lm)
    out: list[tuple[float, float]] = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        probs = _steered_logits(lm, [(item.ids, terms) for item, terms in batch], 1)[:, -1].softmax(-1)[:, [a_id, b_id]]
        for (item, _), (pa, pb) in zip(batch, probs.tolist(), strict=True):
            mass = pa + pb
            out.append(((pa if item.trait_letter == 0 else pb) / mass if mass > 0 else 0.5, mass))
        if on_batch:
            on_batch(len(batch))
    return out


def answer_logprobs(
    lm: LoadedModel,
    rows: Sequence[tuple[list[int], list[int], Sequence[SteerTerm]]],
    batch_size: int = 32,
    on_batch: Callable[[int], None] | None = None,
) -> list[float]:
    """Per (prompt ids, answer ids, steering terms) row: the answer's mean token log-probability."""
    out: list[float] = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        tail = max(len(a) for _, a, _ in batch) + 1
        logp = _steered_logits(lm, [(p + a, terms) for p, a, terms in batch], tail).log_softmax(-1)
        for i, (_, answer, _) in enumerate(batch):
            n = len(answer)
            picked = logp[i, tail - n - 1 : tail - 1].gather(-1, torch.tensor(answer, device=logp.device)[:, None])
            out.append(float(picked.mean()))
        if on_batch:
            on_batch(len(batch))
    return out


def answer_probabilities(
    lm: LoadedModel,
    rows: Sequence[tuple[ABQuestion, Sequence[SteerTerm]]],
    batch_size: int = 32,
    on_batch: Callable[[int], None] | None = None,
) -> list[tuple[float, float]]:
    """The answers format: each answer scored as the model's own reply to the question, with no
    choice shown; the trait answer's share of the two length-normalised likelihoods (softmax of
    the mean token log-probabilities). Second value: the trait answer's mean log-probability."""
    flat = []
    for q, terms in rows:
        prompt = lm.prompt_ids(q.question)
        flat += [(prompt, lm.response_ids(q.trait_answer), terms), (prompt, lm.response_ids(q.opposite_answer), terms)]
    lps = answer_logprobs(lm, flat, batch_size, on_batch=on_batch)
    return [(1.0 / (1.0 + math.exp(lps[2 * i + 1] - lps[2 * i])), lps[2 * i]) for i in range(len(rows))]


def fluency_references(lm: LoadedModel, trait: Trait) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, answer ids) of the unsteered model's greedy answers to the trait's first
    ``MAX_FLUENCY_REFS`` steering questions: the text the fluency cost is measured on."""
    prompts = [lm.prompt_ids(q) for q in trait.steering_questions[:MAX_FLUENCY_REFS]]
    answers = generate_rows(lm, [(p, []) for p in prompts], SamplingConfig(max_new_tokens=FLUENCY_TOKENS))
    refs = [(p, lm.response_ids(a)) for p, a in zip(prompts, answers, strict=True) if a]
    if not refs:
        raise TraitscopeError(f"trait {trait.name}: the unsteered model gave no answer to any steering question")
    return refs


def fluency_nll(
    lm: LoadedModel,
    refs: Sequence[tuple[list[int], list[int]]],
    terms: Sequence[Sequence[SteerTerm]],
    batch_size: int = 32,
    on_batch: Callable[[int], None] | None = None,
) -> list[float]:
    """Per steering (a list of terms): the reference answers' mean per-token negative log-likelihood."""
    lps = answer_logprobs(lm, [(p, a, t) for t in terms for p, a in refs], batch_size, on_batch)
    n = len(refs)
    return [-sum(lps[i * n : (i + 1) * n]) / n for i in range(len(terms))]


def pick_ab(
    rows: Sequence[dict[str, Any]],
    top: int = 1,
    max_nll_delta: float | None = MAX_NLL_DELTA,
    one_per_layer: bool = False,
) -> list[dict[str, Any]]:
    """The steered A/B rows with the highest positive ``ab_delta`` among those whose fluency cost
    (``ab_nll_delta``) is at most ``max_nll_delta`` (None: no fluency limit), best first. With
    ``one_per_layer`` only each layer set's best row competes, so the picks spread over layers
    (methods whose vectors nearly coincide otherwise fill the list with one layer's twins)."""
    ok = [
        r
        for r in rows
        if not r["config"]["baseline"]
        and r.get("ab_delta") is not None
        and r["ab_delta"] > 0  # a configuration that does not raise the A/B score is no candidate
        and (max_nll_delta is None or (r.get("ab_nll_delta") is not None and r["ab_nll_delta"] <= max_nll_delta))
    ]
    ranked = sorted(ok, key=lambda r: r["ab_delta"], reverse=True)
    if one_per_layer:
        best: dict[tuple[int, ...], dict[str, Any]] = {}
        for r in ranked:
            best.setdefault(tuple(r["config"]["layers"]), r)
        ranked = list(best.values())
    return ranked[:top]


def rank_agreement(rows: Sequence[dict[str, Any]]) -> dict[str, float] | None:
    """Spearman rank correlation between ``ab_delta`` and the judged ``delta`` over the steered
    rows (``steer_eval`` summary records: ``layers``, ``ab_delta``, ``delta``) that have both
    (``--eval both``): does the judge-free score order configurations as
    generation does? None with fewer than 3 such rows or when either side is constant."""
    from scipy.stats import spearmanr

    pairs = [
        (r["ab_delta"], r["delta"])
        for r in rows
        if r.get("layers") and r.get("ab_delta") is not None and r.get("delta") is not None
    ]
    if len(pairs) < 3 or len({a for a, _ in pairs}) < 2 or len({d for _, d in pairs}) < 2:
        return None
    rho, p = spearmanr([a for a, _ in pairs], [d for _, d in pairs])
    return {"spearman": float(rho), "p": float(p), "n": len(pairs)}


AB_JUDGE = "ab (judge-free)"
AB_FORMATS = {
    "answers": "each answer's likelihood as the model's own reply; score = the trait answer's share",
    "letters": "both answers shown as (A)/(B); score = probability of the trait answer's letter",
}


def score_configs_ab(
    lm: LoadedModel,
    questions: Sequence[ABQuestion],
    terms: Sequence[Sequence[SteerTerm]],
    fmt: str = "answers",
    batch_size: int = 32,
    seed: int = 0,
    on_batch: Callable[[int], None] | None = None,
) -> list[list[tuple[float, float]]]:
    """For each steering (a list of terms), per question: (trait probability, mass or log-prob)."""
    if fmt not in AB_FORMATS:
        raise TraitscopeError(f"A/B format {fmt!r} is not valid; use one of: {', '.join(AB_FORMATS)}")
    if fmt == "letters":
        items = build_items(lm, questions, seed)
        flat = letter_probabilities(lm, [(it, t) for t in terms for it in items], batch_size, on_batch)
    else:
        flat = answer_probabilities(lm, [(q, t) for t in terms for q in questions], batch_size, on_batch)
    n = len(questions)
    return [flat[i * n : (i + 1) * n] for i in range(len(terms))]


def evaluate_ab(
    lm: LoadedModel,
    trait: Trait,
    run_dir: Path | RunDir,
    configs: Sequence[SteerConfig],
    questions: Sequence[ABQuestion],
    source: str = "",
    fmt: str = "answers",
    batch_size: int = 32,
    seed: int = 0,
    reporter: Reporter = Silent(),
) -> list[dict[str, Any]]:
    """A/B score per configuration; appends new rows (``"eval": "ab"``) to steering/results.jsonl,
    skips configurations already there, and returns all rows for ``configs`` with ``ab_delta``."""
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
    qhash = hashlib.sha256(json.dumps([asdict(q) for q in questions]).encode()).hexdigest()[:16]
    extra = {
        "eval": "ab",
        "ab_format": fmt,
        "ab_questions": qhash,
        "seed": seed,
        "model": model_identity(lm),
        "fluency": {"tokens": FLUENCY_TOKENS, "questions": trait.steering_questions[:MAX_FLUENCY_REFS]},
    }
    vsets = {}
    for c in configs:
        if not c.baseline and (c.position, c.site, c.method) not in vsets:
            vs = load_run_vectors(run, c.site, c.method, c.position)
            vs.check_model(lm.n_layers, lm.hidden_size, lm.site_dim(c.site), lm.name)
            vsets[(c.position, c.site, c.method)] = vs
    # a cached result counts only for the exact vector file it was made with
    keys = {
        c: c.key({**extra, "vectors": None if c.baseline else vsets[(c.position, c.site, c.method)].file_id})
        for c in configs
    }
    sign = -1.0 if trait.steering_direction == "negative" else 1.0
    with locked(run.root):
        done = {r["config"]["id"]: r for r in read_jsonl(run.steering_results) if r.get("eval") == "ab"}
        todo = list({keys[c]: c for c in configs if keys[c] not in done}.values())
        terms = [terms_for(c, vsets.get((c.position, c.site, c.method)), sign) for c in todo]  # type: ignore[arg-type]
        advance = reporter.stage("A/B forward passes", len(todo) * len(questions) * (2 if fmt == "answers" else 1))
        scores = score_configs_ab(lm, questions, terms, fmt, batch_size, seed, on_batch=advance)
        nlls = _fluency(lm, trait, terms, batch_size, reporter) if todo else []
        new = [
            _ab_row(lm, c, keys[c], t, part, questions, fmt, source) | {"ab_nll": nll}
            for c, t, part, nll in zip(todo, terms, scores, nlls, strict=True)
        ]
        append_jsonl(run.steering_results, new)
    done |= {r["config"]["id"]: r for r in new}
    rows = [done[keys[c]] for c in configs]
    base = next((r for r in rows if r["config"]["baseline"]), None)
    for r in rows:
        r["ab_delta"] = None if base is None else r["ab_score"] - base["ab_score"]
        r["ab_nll_delta"] = None if base is None else r["ab_nll"] - base["ab_nll"]
    return rows


def _fluency(
    lm: LoadedModel, trait: Trait, terms: Sequence[Sequence[SteerTerm]], batch_size: int, reporter: Reporter
) -> list[float]:
    advance = reporter.stage("unsteered reference answers", 1)
    refs = fluency_references(lm, trait)
    advance(1)
    return fluency_nll(lm, refs, terms, batch_size, reporter.stage("fluency forward passes", len(terms) * len(refs)))


def _ab_row(
    lm: LoadedModel,
    config: SteerConfig,
    key: str,
    terms: Sequence[SteerTerm],
    part: Sequence[tuple[float, float]],
    questions: Sequence[ABQuestion],
    fmt: str,
    source: str,
) -> dict[str, Any]:
    return {
        "eval": "ab",
        "ab_format": fmt,
        "config": {
            **asdict(config),
            "layers": list(config.layers),
            "id": key,
            "label": config.label(),
            "coefs": {str(t.layer): float(t.coef) for t in terms},
        },
        "judge": AB_JUDGE,
        "model": lm.name,
        "ab_score": sum(p for p, _ in part) / len(part),
        "ab_source": source,
        "n": len(part),
        "trait_mean": None,
        "coherence_mean": None,
        "items": [
            {
                "question": q.question,
                "p_trait": round(p, 5),
                ("letter_mass" if fmt == "letters" else "trait_logprob"): round(m, 4),
            }
            for q, (p, m) in zip(questions, part, strict=True)
        ],
    }


AB_KEYS = ("ab_score", "ab_delta", "ab_nll", "ab_nll_delta")


def attach_ab(rows: Sequence[dict[str, Any]], ab_rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Generation rows with ``ab_score``/``ab_delta``/``ab_nll``/``ab_nll_delta`` of the same configuration (by label) beside
    their judged scores; A/B rows alone get ``delta`` None (they have no judged score)."""
    by_label = {r["config"]["label"]: r for r in ab_rows}
    out = []
    for r in rows:
        ab = by_label.get(r["config"]["label"], r if r.get("eval") == "ab" else {})
        out.append({**r, "delta": r.get("delta"), **{k: ab.get(k) for k in AB_KEYS}})
    return out
