"""`reproduce detection`: verdict rules, the report's markers, balanced subsets, the cross-model
vector transfer on tiny real models (same and different width), and a smoke run on the bundled
model."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import pytest
import torch

from traitscope.errors import TraitscopeError
from traitscope.extraction import ExtractConfig, extract
from traitscope.reproduce.common import Profile, Setup, balanced_subset
from traitscope.reproduce.common.markdown import replace_section, write_section
from traitscope.reproduce.common.ridge import fit_ridge_map, map_position, neutral_texts
from traitscope.reproduce.common.runs import load_run
from traitscope.reproduce.common.verdict import FAILS, HOLDS, INCONCLUSIVE, UNTESTABLE, WEAKER, Rule, combine
from traitscope.reproduce.detection import publish, run
from traitscope.reproduce.detection.experiments.base_to_instruct import base_to_instruct
from traitscope.reproduce.detection.experiments.components import _site_check
from traitscope.reproduce.detection.findings import check
from traitscope.traits import load_trait
from traitscope.traits.schema import Scenario, Trait

# --- verdicts ---------------------------------------------------------------------------------


def test_rule_judges_both_directions():
    up = Rule(0.9, 0.75, unit="pct", margin=0.02)
    assert [up.judge(v) for v in (0.95, 0.9, 0.8, 0.76, 0.5)] == [HOLDS, HOLDS, WEAKER, INCONCLUSIVE, FAILS]
    assert up.judge(0.8, noise=0.1) == INCONCLUSIVE  # a measured noise wider than the margin widens it
    down = Rule(0.02, 0.10, higher=False, unit="pct", margin=0.02)
    assert [down.judge(v) for v in (0.0, 0.05, 0.09, 0.2)] == [HOLDS, WEAKER, INCONCLUSIVE, FAILS]
    assert up.describe().startswith("holds if ≥ 90.0%; weaker if > 75.0% by more than the noise (at least 2.0%)")


def test_finding_takes_its_worst_testable_check():
    ok = check("cross_lang_probe", "c", "99.6%", 0.97)
    weak = check("cross_lang_drop", "c", "0.4 pts", 0.10)
    bad = check("cross_lang_probe_minus_mean_diff", "c", "~50 pts", -0.05)
    gone = check("cross_lang_probe", "c", "99.6%", None, why_untestable="no data")
    assert (ok.verdict, weak.verdict, bad.verdict, gone.verdict) == (HOLDS, WEAKER, FAILS, UNTESTABLE)
    assert combine([ok, weak]) == WEAKER
    assert combine([ok, gone, bad]) == FAILS
    assert combine([ok, gone]) == HOLDS  # an untestable check neither helps nor hurts
    assert combine([gone]) == UNTESTABLE
    assert gone.as_dict()["ours_text"] == "— (no data)"


def test_site_comparison_at_the_ceiling_cannot_be_tested():
    means = {"residual": {"auroc": 0.99}, "v": {"auroc": 1.0}}
    assert _site_check("v_minus_residual_auroc", "c", "x", means, "v", "auroc").verdict == UNTESTABLE
    means = {"residual": {"auroc": 0.70}, "v": {"auroc": 0.85}}
    assert _site_check("v_minus_residual_auroc", "c", "x", means, "v", "auroc").verdict == HOLDS


# --- the report's markers ---------------------------------------------------------------------


def test_report_section_keeps_everything_outside_its_markers(tmp_path):
    path = tmp_path / "REPRODUCTION.md"
    write_section(path, "detection", "first body")
    text = path.read_text()
    assert text.startswith("# Reproducing the research log") and "first body" in text
    # hand-written notes and another command's section around it survive a regeneration
    path.write_text(
        "intro by hand\n\n" + text + "\n## notes by hand\n\n<!-- steering:start -->\nS\n<!-- steering:end -->\n"
    )
    write_section(path, "detection", "second body")
    text = path.read_text()
    assert "second body" in text and "first body" not in text
    assert "intro by hand" in text and "## notes by hand" in text and "<!-- steering:start -->\nS\n" in text
    assert text.count("<!-- detection:start -->") == 1
    write_section(path, "steering", "S2")
    assert "S2" in path.read_text() and "second body" in path.read_text()


def test_broken_markers_are_an_error_not_a_clobber():
    with pytest.raises(TraitscopeError, match="markers are broken"):
        replace_section("<!-- detection:end -->\nkeep\n<!-- detection:start -->", "detection", "x")
    assert replace_section("", "detection", "x") == "<!-- detection:start -->\nx\n<!-- detection:end -->\n"


# --- subsets ------------------------------------------------------------------------------------


def test_balanced_subset_keeps_whole_pairs_and_every_group():
    t = balanced_subset(load_trait("uncertainty"), 40)
    langs = [s.tags["lang"] for s in t.scenarios]
    assert len(t.scenarios) == 80 and {langs.count(x) for x in ("en", "es", "fr", "zh")} == {20}
    pairs = [s.pair for s in t.scenarios]
    assert all(pairs.count(p) == 2 for p in pairs)
    opt = balanced_subset(load_trait("optimism"), 10)
    assert sorted(s.tags["domain"] for s in opt.scenarios).count("social") == 10
    assert balanced_subset(opt, None) is opt


def test_neutral_texts_leave_out_the_tested_trait():
    texts = neutral_texts("refusal", cap=50)
    assert len(texts) == 50 and len(set(texts)) == 50
    refusal = {s.prompt for s in load_trait("refusal").scenarios}
    assert not refusal & set(neutral_texts("refusal"))
    assert map_position("prompt[-1]") == "prompt[-1]" and map_position("response[:]") == "all[:]"


# --- cross-model transfer on tiny real models ------------------------------------------------------


def test_ridge_map_recovers_a_linear_map():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(300, 12, generator=g)
    A = torch.randn(12, 7, generator=g)
    Y = X @ A + 3.0 + 0.01 * torch.randn(300, 7, generator=g)
    m = fit_ridge_map(X, Y)
    assert m.r2 > 0.99
    assert torch.allclose(m(X[:5]), Y[:5], atol=0.1)


POS = ["sunny", "bright", "joy", "hope", "win", "glad"]
NEG = ["grim", "dark", "loss", "fear", "fail", "sad"]
FILL = [f"w{i}" for i in range(40)]


@pytest.fixture(scope="module")
def toy():
    """A word-level tokenizer, a toy trait (texts heavy in 'positive' vs 'negative' words) and
    unlabeled neutral texts over the same vocabulary."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<bos>", "<eos>", "<unk>", *POS, *NEG, *FILL])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>"
    )
    rng = random.Random(0)

    def text(words: list[str]) -> str:
        w = [rng.choice(words) for _ in range(6)] + [rng.choice(FILL) for _ in range(2)]
        rng.shuffle(w)
        return " ".join(w)

    scenarios = []
    for i in range(32):
        scenarios.append(Scenario(f"t{i}-pos", "positive", text(POS), pair=f"t{i}"))
        scenarios.append(Scenario(f"t{i}-neg", "negative", text(NEG), pair=f"t{i}"))
    trait = Trait("toy", "toy trait", "natural", scenarios, [], template="raw")
    neutral = [" ".join(rng.choice(POS + NEG + FILL) for _ in range(8)) for _ in range(160)]
    return tok, trait, neutral


def _tiny(tok, hidden: int, layers: int, seed: int):
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(
        "llama",
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=hidden // 4,
        vocab_size=len(tok),
        max_position_embeddings=64,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(cfg)


def _run(lm, trait, root: Path):
    cfg = ExtractConfig(
        model=lm.name,
        layers="all",
        sites=("residual", "attn_out"),
        methods=("probe", "mean_diff"),
        position="all[:]",
        folds=3,
        n_random=10,
    )
    extract(lm, trait, root / lm.name, cfg)
    run = load_run(root / lm.name, ("residual", "attn_out"))
    run.n_layers = lm.n_layers
    return run


def test_vector_carries_directly_between_same_width_models(toy, tmp_path):
    from traitscope.models import wrap_model

    tok, trait, _ = toy
    src = wrap_model(_tiny(tok, 32, 2, 0), tok, "src", instruct=False)
    tuned = copy.deepcopy(src.model)  # an "instruct" model: the base with every weight nudged
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.05 * p.std() * torch.randn_like(p))
    tgt = wrap_model(tuned, tok, "tgt", instruct=False)
    res = base_to_instruct(src, tgt, _run(src, trait, tmp_path), _run(tgt, trait, tmp_path), tmp_path / "maps", 3)
    assert res["path"] == "direct" and res["n_texts"] == 0
    residual = next(s for s in res["sites"] if s["site"] == "residual")
    assert residual["source_layer"] == residual["target_layer"]
    probe = residual["methods"]["probe"]
    direct = probe["arms"][0]
    assert direct["arm"] == "direct"
    # the base's vector, used as is, detects on the nudged model as well as that model's own vector
    assert direct["cos_with_own"] > 0.8
    assert direct["auroc"] > probe["random_p95"]["auroc"] and direct["auroc"] >= probe["target_own"]["auroc"] - 0.05
    assert res["checks"][0].ours == direct["accuracy"]


def test_vector_carries_through_a_ridge_map_between_different_widths(toy, tmp_path):
    from traitscope.models import wrap_model

    tok, trait, neutral = toy
    src = wrap_model(_tiny(tok, 32, 2, 0), tok, "src", instruct=False)
    tgt = wrap_model(_tiny(tok, 48, 3, 1), tok, "tgt", instruct=False)  # independent weights, other width/depth
    src_run, tgt_run = _run(src, trait, tmp_path), _run(tgt, trait, tmp_path)
    res = base_to_instruct(src, tgt, src_run, tgt_run, tmp_path / "maps", 3, texts=neutral)
    assert res["path"] == "ridge map" and res["n_texts"] == len(neutral) and res["map_position"] == "all[:]"
    residual = next(s for s in res["sites"] if s["site"] == "residual")
    assert residual["maps"]["pull"]["r2"] > 0.05 and residual["maps"]["pull"]["alpha"] > 0
    arms = {a["arm"]: a for a in residual["methods"]["probe"]["arms"]}
    assert set(arms) == {"pull", "push"}
    # nothing was fitted on the target's labels, yet both carried vectors find the trait there
    assert arms["pull"]["auroc"] > 0.75 and arms["push"]["auroc"] > 0.75
    assert all(a["polarity_correct"] == 1.0 for a in arms.values())
    # the neutral-text activations are cached: a second call reads them back
    cached = list((tmp_path / "maps").rglob("residual.safetensors"))
    assert len(cached) == 2


# --- smoke run on the bundled model ---------------------------------------------------------------

TINY = Profile("tiny", "prompt[-1]", 32, folds=2, layer_step=14, pairs=6, n_random=10, neutral_cap=20)


def test_detection_smoke_on_the_bundled_model(lm, tmp_path):
    setup = Setup(out=tmp_path / "out", traits=("optimism",), command="pytest smoke", load=lambda name: lm)
    results = run(TINY, setup)
    fs = results["findings"]
    methods = fs["methods"]["summary"]
    assert methods["probe"]["total"] == 3 and set(methods) == {
        "probe",
        "gradient",
        "mean_diff",
        "ica",
        "pca_diff",
        "random",
    }
    # 6 pairs read at the last prompt token: one of probe's 3 layers points the wrong way (1/3 polarity
    # failures, against the log's 0/234) and probe ties mean_diff, so the methods finding does not hold
    checks = {c["key"]: c for c in fs["methods"]["checks"]}
    assert checks["probe_polarity_failures"]["ours"] == pytest.approx(1 / 3)
    assert checks["probe_polarity_failures"]["verdict"] == FAILS and fs["methods"]["verdict"] == FAILS
    # a tie is not a pass: the margin over the best other method sits within its bootstrap noise
    assert abs(checks["probe_acc_margin"]["ours"]) < 1e-6 and checks["probe_acc_margin"]["noise"] > 0
    assert checks["probe_acc_margin"]["verdict"] == INCONCLUSIVE
    dist = fs["cross_dist"]
    assert dist["matrices"]["probe"]["groups"] == ["institutional", "social"]
    assert len(dist["checks"]) == 2
    # probe and mean_diff transfer equally across the two domains here: a gap of exactly 0 is inconclusive
    assert dist["checks"][1]["ours"] == 0.0 and dist["verdict"] == INCONCLUSIVE
    # the traits this run left out make their findings untestable, with the reason
    assert fs["cross_lang"]["verdict"] == UNTESTABLE and "uncertainty" in fs["cross_lang"]["untestable_reasons"][0]
    assert fs["base_to_instruct"]["verdict"] == UNTESTABLE
    assert results["meta"]["machine"]["cpu_count"] and results["meta"]["wall_seconds"] > 0

    report = tmp_path / "docs" / "REPRODUCTION.md"
    written = publish(results, report)
    text = report.read_text()
    assert "<!-- detection:start -->" in text and "pytest smoke" in text
    assert "(reproduction/detection-methods.png)" in text and written["methods"].is_file()
    assert "cannot test here" in text and "needs the trait uncertainty" in text
    # re-running resumes the extraction run (same rollouts file, no error about settings)
    again = run(TINY, setup)
    assert again["findings"]["methods"]["summary"]["probe"]["total"] == 3


def test_cli_checks_its_input_before_loading_a_model():
    from typer.testing import CliRunner

    from traitscope.cli import reproduce_cmd  # noqa: F401  (registers `reproduce` on the app)
    from traitscope.cli.app import app

    runner = CliRunner()
    helped = runner.invoke(app, ["reproduce", "detection", "--help"])
    assert helped.exit_code == 0 and "--quick" in helped.output and "--base-model" in helped.output
    bad = runner.invoke(app, ["reproduce", "detection", "--quick", "--traits", "no-such-trait"])
    assert isinstance(bad.exception, TraitscopeError)
