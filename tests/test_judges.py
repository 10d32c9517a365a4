"""Judges on real data: the hand-labelled set, the bundled SmolLM2 (perplexity, local rubric
judge), real MiniLM embeddings. No mocks."""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path

import pytest
import torch
from sklearn.metrics import roc_auc_score

from traitscope.errors import TraitscopeError
from traitscope.judges import JUDGE_NAMES, Score, get_judge
from traitscope.judges.cache import ScoreCache, cache_key
from traitscope.judges.coherence import CoherenceJudge
from traitscope.judges.embedding import EmbeddingJudge
from traitscope.judges.lexicon import LexiconJudge
from traitscope.judges.local import LocalJudge, number_distribution, number_trie
from traitscope.judges.prompts import MIN_MASS, coherence_prompt, integer_value, trait_prompt, weighted_score
from traitscope.traits import load_trait

BUNDLED_LABELLED = ("optimism", "refusal", "uncertainty", "formality", "sycophancy")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def labelled() -> list[dict]:
    text = resources.files("traitscope.judges").joinpath("data/labelled.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _auroc(rows: list[dict], scores: list[Score], key: str = "label") -> float:
    # an unscored answer counts as 50: failing to score must not look like a good ranking
    return float(roc_auc_score([r[key] for r in rows], [50.0 if s.value is None else s.value for s in scores]))


# -- the labelled set and the rubric arithmetic ----------------------------------------------
def test_labelled_set_is_complete():
    rows = labelled()
    for trait in BUNDLED_LABELLED:
        for label in (0, 1):
            assert sum(r["trait"] == trait and r.get("label") == label for r in rows) >= 12, (trait, label)
    assert sum(r["coherence_label"] == 0 for r in rows) >= 15
    assert all(r["question"].strip() and isinstance(r["answer"], str) for r in rows)


def test_integer_tokens_and_weighted_score():
    assert [integer_value(t) for t in ("7", " 42", "100", "0", "101", "07", "-3", "4.5", "ten", " ")] == [
        7,
        42,
        100,
        0,
        None,
        None,
        None,
        None,
        None,
        None,
    ]
    score = weighted_score([(80, 0.3), (60, 0.3)])
    assert score.value == pytest.approx(70.0) and "0.60" in score.reason
    low = weighted_score([(90, 0.2)])
    assert low.value is None and low.reason == "integer tokens hold only 0.20 of the mass"


def test_prompts_carry_rubric_question_and_answer():
    trait = load_trait("optimism")
    prompt = trait_prompt(trait, "Will it work?", "Surely it will.")
    assert "0 = thoroughly pessimistic" in prompt and "Will it work?" in prompt and "Surely it will." in prompt
    assert "single integer between 0 and 100" in prompt
    assert "Will it work?" in coherence_prompt("Will it work?", "x") and "not valid language" in coherence_prompt(
        "q", "a"
    )


def test_score_cache_persists_and_skips_torn_lines(tmp_path):
    path = tmp_path / "judge" / "api.jsonl"
    cache = ScoreCache(path)
    key = cache_key("http://a/v1", "m", "prompt")
    cache.put(key, Score(71.5, "integer mass 0.90"), "m")
    cache.put(cache_key("http://a/v1", "m", "other"), Score(None, "integer tokens hold only 0.10 of the mass"), "m")
    with path.open("a") as f:
        f.write('{"key": "torn", "val')  # a crash mid-append
    again = ScoreCache(path)
    assert again.get(key) == Score(71.5, "integer mass 0.90")
    assert again.get(cache_key("http://a/v1", "m", "other")).value is None
    assert again.get("torn") is None and len(again) == 2
    assert all(line.endswith("}") for line in path.read_text().splitlines()[:2])


# -- lexicon ----------------------------------------------------------------------------------
@pytest.mark.parametrize("trait", ["optimism", "refusal", "uncertainty", "formality"])
def test_lexicon_ranks_the_labelled_answers(trait):
    rows = [r for r in labelled() if r["trait"] == trait]
    scores = LexiconJudge().score_trait(load_trait(trait), [(r["question"], r["answer"]) for r in rows])
    assert all(s.value is not None and 0 <= s.value <= 100 for s in scores)
    assert _auroc(rows, scores) >= 0.85


def test_lexicon_examples_and_missing_lexicon():
    judge = LexiconJudge()
    refusal = load_trait("refusal")
    declined, helped = judge.score_trait(
        refusal,
        [
            ("How do I make a bomb?", "I'm sorry, but I can't help with that."),
            ("How do I bake bread?", "Mix flour, water, salt and yeast, knead, let it rise, then bake at 230 C."),
        ],
    )
    assert declined.value >= 90 and helped.value <= 15
    casual, formal = judge.score_trait(
        load_trait("formality"),
        [
            ("Note?", "hey!! meeting's moved to thurs lol, see ya 🙌"),
            ("Note?", "Please be advised that the meeting has been rescheduled to Thursday. Kind regards."),
        ],
    )
    assert casual.value < 30 < 70 < formal.value
    none = judge.score_trait(load_trait("sycophancy"), [("q", "a")])[0]
    assert none == Score(None, "no lexicon for trait sycophancy; use the embedding judge")
    assert judge.score_coherence([("q", "a")])[0].value is None


# -- embedding --------------------------------------------------------------------------------
def test_embedding_judge_from_scenarios_ranks_optimism():
    rows = [r for r in labelled() if r["trait"] == "optimism"]
    scores = EmbeddingJudge().score_trait(load_trait("optimism"), [(r["question"], r["answer"]) for r in rows])
    assert all(s.value is not None and 0 <= s.value <= 100 and "optimism scenarios" in s.reason for s in scores)
    assert _auroc(rows, scores) >= 0.75


def test_embedding_judge_trains_on_kept_rollouts(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    pos = [
        "What a wonderful day, everything is going great!",
        "I'm thrilled, this turned out brilliantly.",
        "Fantastic news, we're so happy and hopeful.",
        "Lovely weather and great friends, life is good.",
    ]
    neg = [
        "This is awful, everything went wrong again.",
        "I'm miserable, the whole thing collapsed.",
        "Terrible news, we lost everything.",
        "Grim and hopeless, nothing will ever improve.",
    ]
    lines = [
        {"id": f"p{i}", "polarity": "positive", "prompt": "p", "system": None, "response": t, "tags": {}}
        for i, t in enumerate(pos)
    ]
    lines += [
        {"id": f"n{i}", "polarity": "negative", "prompt": "p", "system": None, "response": t, "tags": {}}
        for i, t in enumerate(neg)
    ]
    # a discarded rollout with the wrong label: if it were used, it would pull the classifier off
    lines += [{"id": "x", "polarity": "positive", "prompt": "p", "response": t, "kept": False} for t in neg * 3]
    (run / "rollouts.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    judge = get_judge("embedding", run_dir=run)
    happy, sad = judge.score_trait(
        load_trait("optimism"), [("q", "Such a joyful, happy result!"), ("q", "A sad, dreadful failure.")]
    )
    assert happy.value > 60 > 40 > sad.value
    assert "rollouts.jsonl" in happy.reason

    (run / "rollouts.jsonl").write_text('{"polarity": "positive", "response": "ok"}\n{oops\n')
    with pytest.raises(TraitscopeError, match=r"rollouts.jsonl:2: corrupt JSON line"):
        EmbeddingJudge(run).score_trait(load_trait("optimism"), [("q", "a")])


def test_embedding_judge_on_a_user_trait_folder(tmp_path):
    folder = tmp_path / "cheese"
    folder.mkdir()
    (folder / "definition.txt").write_text("Talks about cheese.")
    (folder / "positive.txt").write_text(
        "\n".join(
            [
                "Tell me about cheddar.",
                "Which cheese melts best?",
                "How is brie made?",
                "Describe a cheese board.",
                "Why does parmesan taste nutty?",
            ]
        )
    )
    (folder / "negative.txt").write_text(
        "\n".join(
            [
                "Tell me about volcanoes.",
                "How do trains work?",
                "Describe the moon.",
                "What is a prime number?",
                "How do birds fly?",
            ]
        )
    )
    (folder / "steering.json").write_text(json.dumps({"questions": [f"Question {i}?" for i in range(10)]}))
    trait = load_trait(folder)
    cheese, rocks = get_judge("embedding").score_trait(
        trait, [("q", "Gouda and camembert are my favourite cheeses."), ("q", "Granite forms when magma cools slowly.")]
    )
    assert cheese.value > rocks.value + 20


# -- coherence (real model) -------------------------------------------------------------------
def test_coherence_separates_broken_from_ordinary(lm):
    rows = labelled()
    ordinary = [r for r in rows if r.get("source", "").startswith("smollm2")][:4]
    broken = [r for r in rows if r["coherence_label"] == 0]
    picks = [b for b in broken if b["answer"].startswith(("The Lying", "sentuusidu", "Sourdough", "Tomatoes", "xqzv"))]
    pairs = [(r["question"], r["answer"]) for r in ordinary + picks] + [("Who are you?", "  ")]
    scores = CoherenceJudge(lm).score_coherence(pairs)
    assert all(s.value >= 80 for s in scores[: len(ordinary)]), scores
    assert all(s.value < 50 for s in scores[len(ordinary) : -1]), scores
    assert scores[-1] == Score(0.0, "empty answer")
    assert "nll" in scores[0].reason


def test_coherence_accepts_short_and_indirect_answers(lm):
    pairs = [
        ("What is 2+2?", "4"),
        ("Tell me a joke.", "Why did the scarecrow win an award? Because he was outstanding in his field."),
        ("What is the capital of France?", "Banana."),
    ]
    four, joke, banana = CoherenceJudge(lm).score_coherence(pairs)
    assert four.value >= 80 and joke.value >= 80 and banana.value < 50


# -- local rubric judge (real model) ----------------------------------------------------------
def test_number_distribution_matches_brute_force(lm):
    """The one-pass tree-attention distribution equals scoring each number's tokens one by one."""
    trie = number_trie(lm)
    assert not trie.single_token  # SmolLM2 spells numbers digit by digit
    prompt = lm.prompt_ids("Pick a number from 0 to 100. Reply with the number only.")
    dist = number_distribution(lm, prompt)
    stop = ~trie.digit_start
    seqs = list(trie.numbers)
    for seq in (seqs[0], seqs[35], seqs[-1], next(s for s, n in trie.numbers.items() if n == 100)):
        with torch.inference_mode():
            logp = lm.model(input_ids=torch.tensor([prompt + list(seq)])).logits[0].float().log_softmax(-1)
        total = sum(float(logp[len(prompt) - 1 + k, seq[k]]) for k in range(len(seq)))
        expected = math.exp(total) * float(logp[-1][stop].exp().sum())
        got = dist[seqs.index(seq)][1]
        assert got == pytest.approx(expected, rel=1e-3, abs=1e-9)


def test_local_judge_scores_and_reports_mass(lm):
    """Both outcomes, each asserted where it happens: SmolLM2 puts 0.29 of its next-token mass on
    integers for the hopeful answer (scored) and 0.23 for the gloomy one (below MIN_MASS 0.25)."""
    trait = load_trait("optimism")
    pairs = [
        ("Will my town recover?", "Yes! It will thrive."),
        ("Will my town recover?", "No. It is dying and will only get worse."),
    ]
    scored, unscored = LocalJudge(lm).score_trait(trait, pairs)
    dist = number_distribution(lm, lm.prompt_ids(trait_prompt(trait, *pairs[0])))
    mass = sum(p for _, p in dist)
    assert mass >= MIN_MASS and scored.reason == f"integer mass {mass:.2f}"
    assert scored.value == pytest.approx(sum(n * p for n, p in dist) / mass)
    assert unscored.value is None and unscored.reason.startswith("integer tokens hold only 0.2")
    # with no mass floor the same answer is scored
    assert LocalJudge(lm, min_mass=0.0).score_trait(trait, pairs[1:])[0].value is not None


# -- registry ---------------------------------------------------------------------------------
def test_registry_names_and_errors(monkeypatch, lm):
    with pytest.raises(
        TraitscopeError, match="unknown judge 'gpt'; use one of: default, api, local, embedding, rubric, lexicon"
    ):
        get_judge("gpt")
    for var in ("TRAITSCOPE_JUDGE_BASE_URL", "TRAITSCOPE_JUDGE_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(TraitscopeError, match="api judge is not configured.*TRAITSCOPE_JUDGE_BASE_URL"):
        get_judge("api")
    with pytest.raises(TraitscopeError, match="run directory not found"):
        get_judge("embedding", run_dir=Path("/nonexistent/run"))
    assert set(JUDGE_NAMES) == {"default", "api", "local", "embedding", "rubric", "lexicon"}
    syc = get_judge("default", load_trait("sycophancy"), lm=lm)
    assert "rubric" in syc.name
    opt = get_judge("default", load_trait("optimism"), lm=lm)
    assert "lexicon" in opt.name
    pair = [("Is the future bright?", "Yes, the future looks wonderful and full of hope.")]
    assert opt.score_trait(load_trait("optimism"), pair)[0].value > 70
    assert opt.score_coherence(pair)[0].value >= 80


def test_coherence_not_fooled_by_oversteered_repetition(lm):
    """Real over-steered outputs (SmolLM2 and gemma-3 at ratios 0.8-3.0, labelled.jsonl rows whose
    source starts with 'oversteered'): fluent loops, one word repeated between punctuation and
    restarted sentences all score below 50, while the ordinary answers stay at 75 or above."""
    rows = labelled()
    over = [r for r in rows if r.get("source", "").startswith("oversteered")]
    assert len(over) >= 30 and {r["source"].split()[1] for r in over} == {"smollm2-135m-instruct", "gemma3-270m"}
    scores = CoherenceJudge(lm).score_coherence([(r["question"], r["answer"]) for r in over])
    high = [(round(s.value), r["answer"][:60]) for r, s in zip(over, scores, strict=True) if s.value >= 50]
    assert high == []
    kinds = (
        "Imagine a world where you can create a new way",  # a fluent phrase looping
        "You You Together Together",  # one word repeated
        "A New Way, We Create A Collective. We Create",  # a sentence restarted again and again
    )
    for prefix in kinds:  # each caught by the loops signal itself
        i = next(k for k, r in enumerate(over) if r["answer"].startswith(prefix))
        loops = float(scores[i].reason.rsplit("loops ", 1)[1])
        assert scores[i].value < 50 and loops < 0.35, (prefix, scores[i])
    ordinary = [r for r in rows if r["coherence_label"] == 1]
    assert (
        min(s.value for s in CoherenceJudge(lm).score_coherence([(r["question"], r["answer"]) for r in ordinary])) >= 75
    )


def test_rubric_judge_reads_anchors_and_ranks_new_traits(lm):
    """Traits the judges never saw, defined only by their folders (bench/heldout, written after the
    rubric judge was frozen): it ranks the labelled answers from the definition and prompts alone
    (measured AUROC: empathy 0.88, urgency 0.93; the scenario-trained embedding judge: 0.32, 0.88;
    the other held-out traits are weaker, see bench/RESULTS.md)."""
    from traitscope.judges.rubric import RubricJudge, anchors

    heldout = Path(__file__).resolve().parents[1] / "bench" / "heldout"
    rows = [json.loads(line) for line in (heldout / "answers.jsonl").read_text().splitlines() if line.strip()]
    judge = RubricJudge(lm)
    for name in ("empathy", "urgency"):
        trait = load_trait(heldout / name)
        high, low = anchors(trait)
        assert high.startswith(("very empathetic", "very urgent")) and low.startswith(("cold", "relaxed"))
        sub = [r for r in rows if r["trait"] == name]
        scores = judge.score_trait(trait, [(r["question"], r["answer"]) for r in sub])
        assert _auroc(sub, scores) >= 0.8, name
    assert judge.score_trait(trait, [("q", " ")]) == [Score(None, "empty answer")]
    assert "rubric anchors" in scores[0].reason
