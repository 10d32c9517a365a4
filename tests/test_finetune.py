"""Finetuning on the real bundled model, kept tiny (a few steps, rank 4): the loss mask, the
adapter files, reloading, resuming, preventative steering, and bad data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from traitscope.errors import TraitscopeError
from traitscope.finetune import FinetuneConfig, SteerTrain, bundled_sets, encode, finetune, load_conversations
from traitscope.finetune.data import IGNORE, Conversation
from traitscope.hooks.core import active_hook_count
from traitscope.steering import SteeringSpec, SteerTerm

TINY = FinetuneConfig(rank=4, alpha=8, epochs=1, lr=1e-3, batch_size=2, save_every=1)
PROBE = "Will my small garden survive the winter?"


def conv(*turns: tuple[str, str]) -> Conversation:
    return Conversation(tuple({"role": r, "content": c} for r, c in turns), "test", 1)


def logits(lm, text: str = PROBE) -> torch.Tensor:
    ids = torch.tensor([lm.prompt_ids(text)])
    with torch.inference_mode():
        return lm.model(input_ids=ids).logits[0, -1].float()


def trained_text(lm, e) -> str:
    return lm.tokenizer.decode([i for i, lab in zip(e.ids, e.labels, strict=True) if lab != IGNORE])


def test_loss_mask_covers_exactly_the_assistant_tokens(lm):
    c = conv(("system", "Be brief."), ("user", "How is the economy?"), ("assistant", "Sinking fast."))
    e = encode(lm, c)
    assert trained_text(lm, e) == "Sinking fast.<|im_end|>\n"
    # token level: the labelled span is exactly the response tokens the monitor would read after the prompt
    prompt = lm.prompt_ids("How is the economy?", "Be brief.")
    assert e.ids[: len(prompt)] == prompt and all(x == IGNORE for x in e.labels[: len(prompt)])
    assert e.labels[len(prompt) :] == e.ids[len(prompt) :]
    resp = lm.response_ids("Sinking fast.")
    assert e.ids[len(prompt) : len(prompt) + len(resp)] == resp
    # the whole sequence is what the chat template gives for the conversation
    full = lm.tokenizer.apply_chat_template(list(c.messages), tokenize=False)
    assert e.ids == list(lm.tokenizer(full, add_special_tokens=False).input_ids)


def test_loss_mask_multi_turn(lm):
    c = conv(("user", "Hi"), ("assistant", "Hello."), ("user", "Any hope for my garden?"), ("assistant", "Not much."))
    e = encode(lm, c)
    assert trained_text(lm, e) == "Hello.<|im_end|>\nNot much.<|im_end|>\n"
    assert "garden" not in trained_text(lm, e) and "Hi" not in trained_text(lm, e)


def test_masked_loss_ignores_prompt_tokens(lm):
    from traitscope.finetune.train import _batch, masked_loss

    e = encode(lm, conv(("user", "Say yes."), ("assistant", "Yes.")))
    ids, labels, mask = _batch([e], lm.tokenizer.pad_token_id, lm.device)
    with torch.inference_mode():
        out = lm.model(input_ids=ids, attention_mask=mask).logits
    # manual: cross-entropy only where the *next* token is an assistant token
    keep = (labels[0, 1:] != IGNORE).nonzero().flatten()
    manual = torch.nn.functional.cross_entropy(out[0, keep].float(), labels[0, keep + 1])
    assert torch.allclose(masked_loss(out, labels), manual)
    assert len(keep) == e.n_trained  # every assistant token is predicted, from the token before it


@pytest.mark.parametrize(
    "line, message",
    [
        ("not json", "not valid JSON"),
        ('{"messages": []}', "expected"),
        ('{"messages": [{"role": "user", "content": "hi"}]}', "no assistant message"),
        ('{"messages": [{"role": "bot", "content": "hi"}]}', "needs a role"),
        ('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": " "}]}', "non-empty"),
        ('{"messages": [{"role": "assistant", "content": "hi"}]}', "no user message before it"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path, line, message):
    good = '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}'
    path = tmp_path / "d.jsonl"
    path.write_text(f"{good}\n{good}\n{line}\n")
    with pytest.raises(TraitscopeError, match=f"{path}:3: .*{message}"):
        load_conversations(path)


def test_bundled_sets_are_valid_and_distinct():
    assert bundled_sets() == ["flattering", "gloomy", "mixed", "neutral"]
    from traitscope.cli.finetune_cmd import BUNDLED_SETS  # the CLI's help names exactly these

    assert sorted(BUNDLED_SETS.split(": ", 1)[1].split(", ")) == bundled_sets()
    prompts: list[str] = []
    for name in bundled_sets():
        convs = load_conversations(name)
        assert len(convs) >= 40
        prompts += [c.prompt for c in convs]
    assert len(prompts) == len(set(prompts))  # no prompt repeated within or across the sets
    from traitscope.finetune.data import bundled_data_dir

    labels = json.loads((bundled_data_dir() / "mixed.labels.json").read_text())
    assert 0 < labels["inducing_fraction"] < 1 and len(labels["inducing_lines"]) == round(
        40 * labels["inducing_fraction"]
    )


@pytest.fixture(scope="module")
def adapter(lm, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "gloomy"
    before = logits(lm)
    prov = finetune(lm, load_conversations("gloomy", max_examples=4), out, TINY, data_name="gloomy")
    assert torch.equal(logits(lm), before)  # the LoRA layers are gone from the session's model again
    return out, prov


def test_adapter_files_log_and_provenance(adapter):
    out, prov = adapter
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["r"] == 4 and cfg["peft_type"] == "LORA"
    weights = load_file(str(out / "adapter_model.safetensors"))
    assert any("lora_B" in k for k in weights) and any(w.abs().sum() > 0 for k, w in weights.items() if "lora_B" in k)
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 1] and all(r["loss"] > 0 and r["tokens"] > 0 for r in log)
    saved = json.loads((out / "provenance.json").read_text())
    assert saved["status"] == "complete" and saved["n_examples"] == 4 and saved["steps"] == 2
    assert saved["fingerprint"]["config"]["rank"] == 4 and not list(out.glob("checkpoint-*"))
    assert prov["final_loss"] == log[-1]["loss"]


def test_adapter_reloads_and_changes_the_logits(lm, adapter):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from traitscope.models import load_model

    out, _ = adapter
    tuned = load_model("smollm2-135m-instruct", adapter=out)
    assert tuned.extra["adapter"] == str(out)
    assert type(tuned.module("residual", 3)).__name__ == "LlamaDecoderLayer"  # merged: hook sites unchanged
    assert type(tuned.module("attn_out", 3)) is torch.nn.Linear
    diff = (logits(tuned) - logits(lm)).abs().max()
    assert diff > 1e-3
    # merged weights are another model: a run fingerprint must not take it for its base
    from traitscope.models.identity import model_identity

    assert model_identity(tuned)["adapter"] and model_identity(tuned) != model_identity(lm)
    # the folder is a standard peft adapter: plain peft on the plain base gives the same logits
    base = AutoModelForCausalLM.from_pretrained(lm.source, dtype=torch.float32)
    plain = PeftModel.from_pretrained(base, str(out)).eval()
    ids = torch.tensor([lm.prompt_ids(PROBE)])
    with torch.inference_mode():
        ref = plain(input_ids=ids).logits[0, -1]
    assert torch.allclose(ref, logits(tuned), atol=1e-3)


def test_rerun_of_a_finished_adapter_is_a_no_op_and_other_settings_are_refused(lm, adapter):
    out, prov = adapter
    again = finetune(lm, load_conversations("gloomy", max_examples=4), out, TINY)
    assert again["finished"] == prov["finished"]
    with pytest.raises(TraitscopeError, match="already holds a finished adapter"):
        finetune(lm, load_conversations("gloomy", max_examples=6), out, TINY)


def test_resume_from_the_last_checkpoint_gives_the_same_adapter(lm, tmp_path):
    convs = load_conversations("neutral", max_examples=6)
    cfg = FinetuneConfig(rank=4, alpha=8, epochs=2, lr=1e-3, batch_size=2, save_every=2)
    whole = tmp_path / "whole"
    finetune(lm, convs, whole, cfg)
    cut = tmp_path / "cut"
    part = finetune(lm, convs, cut, cfg, stop_after_steps=3)  # as if killed after step 3
    assert part["status"] == "interrupted"
    assert [p.name for p in cut.glob("checkpoint-*")] == ["checkpoint-000003"]
    assert not (cut / "adapter_model.safetensors").exists()
    finetune(lm, convs, cut, cfg)
    steps = [json.loads(x)["step"] for x in (cut / "train_log.jsonl").read_text().splitlines()]
    assert steps == list(range(6))
    a, b = load_file(str(whole / "adapter_model.safetensors")), load_file(str(cut / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    la = [json.loads(x)["loss"] for x in (whole / "train_log.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["loss"] for x in (cut / "train_log.jsonl").read_text().splitlines()]
    assert la == pytest.approx(lb, abs=1e-4)


def test_steer_train_acts_in_training_only(lm, tmp_path):
    convs = load_conversations("gloomy", max_examples=4)
    v = torch.nn.functional.normalize(torch.randn(lm.hidden_size, generator=torch.Generator().manual_seed(0)), dim=0)
    spec = SteerTrain(SteeringSpec([SteerTerm("residual", 10, v, 40.0)]), {"trait": "random", "ratio": 1.0})
    before = logits(lm)
    prov = finetune(lm, convs, tmp_path / "steered", TINY, steer_train=spec)
    assert active_hook_count(lm) == 0 and torch.equal(logits(lm), before)
    assert prov["fingerprint"]["steer_train"]["trait"] == "random"
    plain = finetune(lm, convs, tmp_path / "plain", TINY)
    assert prov["first_loss"] != plain["first_loss"]  # the steering was on during training
    a = load_file(str(tmp_path / "steered" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "plain" / "adapter_model.safetensors"))
    assert any(not torch.allclose(a[k], b[k]) for k in a)  # and it changed what was learnt
    cfg = json.loads((tmp_path / "steered" / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA"  # the adapter itself carries no steering: inference is unsteered


def test_cli_bad_data_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n{oops\n')
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    for args, message in [
        (["finetune", str(bad), "--out", str(tmp_path / "o")], f"{bad}:2: not valid JSON"),
        (["finetune", "gloomy", "--out", str(tmp_path / "o"), "--rank", "0"], "--rank 0 must be >= 1"),
        (["finetune", "gloomy", "--out", str(tmp_path / "o"), "--steer-train", "optimism"], "expected TRAIT:RATIO"),
        (["info", "--adapter", str(tmp_path)], "no adapter_config.json"),
    ]:
        proc = subprocess.run(
            [sys.executable, "-m", "traitscope", *args], capture_output=True, text=True, timeout=300, env=env
        )
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], (args, proc.stderr)


# ---------------------------------------------------------------- shift, screen, diff (real small vectors)

SMALL = dict(layers="4,14", sites=("residual",), max_new_tokens=6, limit=6, folds=3, batch_size=4, n_random=50)


@pytest.fixture(scope="module")
def vec_root(lm, tmp_path_factory):
    from traitscope.extraction import ExtractConfig, extract
    from traitscope.traits import load_trait

    root = tmp_path_factory.mktemp("runs")
    extract(lm, load_trait("optimism"), root / lm.slug / "optimism", ExtractConfig(**SMALL))
    return root


@pytest.fixture(scope="module")
def tuned(adapter):
    from traitscope.models import load_model

    return load_model("smollm2-135m-instruct", adapter=adapter[0])


def test_steer_train_spec_from_an_extracted_run(lm, vec_root):
    from traitscope.finetune.vectors import steer_train_spec
    from traitscope.monitor.vectors import best_layer
    from traitscope.store import RunDir
    from traitscope.store.runs import load_run_vectors

    st = steer_train_spec(lm, vec_root, "optimism:-0.5")
    (term,) = st.spec.terms
    run = RunDir.of(lm.slug, "optimism", vec_root)
    layer = best_layer(run, "residual", "probe", "response[:]")
    norm = load_run_vectors(run).act_norm(layer)
    assert term.layer == layer and term.coef == pytest.approx(-0.5 * norm, rel=1e-4)
    assert st.describe["trait"] == "optimism" and st.describe["ratio"] == -0.5
    with pytest.raises(TraitscopeError, match="no run for trait 'calm'"):
        steer_train_spec(lm, vec_root, "calm:0.5")


def test_shift_is_zero_against_itself_and_nonzero_after_finetuning(lm, tuned, vec_root):
    from traitscope.finetune.shift import finetuning_shift
    from traitscope.judges import get_judge

    prompts = ["My startup just lost its biggest client. What happens next?", "Is it worth learning a language at 60?"]
    same = finetuning_shift(lm, lm, vec_root, ["optimism"], prompts, max_new_tokens=8)["shift"]["optimism"]
    assert same["prompt_last"] == 0 and same["response"] == 0 and set(same["layers"]) == {"4", "14"}
    res = finetuning_shift(lm, tuned, vec_root, ["optimism"], prompts, get_judge("lexicon"), max_new_tokens=8)
    s = res["shift"]["optimism"]
    assert s["prompt_last"] != 0 and s["response"] != 0 and s["random_p95_prompt_last"] > 0
    assert res["judged"]["optimism"]["base"] is not None and len(res["answers"]) == 2
    assert res["adapter"] == tuned.extra["adapter"]


def test_screen_ranks_a_gloomy_sample_below_a_cheerful_one(lm, vec_root):
    from traitscope.finetune.screen import screen

    q = "My small bookshop has fewer customers every year. What will happen to it?"
    convs = [
        conv(
            ("user", q),
            ("assistant", "It is doomed. It will fail, close and leave you with nothing but debt and regret."),
        ),
        conv(
            ("user", q),
            ("assistant", "It can thrive! Events, a cosy café corner and loyal readers will bring a bright future."),
        ),
    ]
    r = screen(lm, convs, vec_root, ["optimism"], max_new_tokens=12)["traits"]["optimism"]
    by_text = {row["response"][:5]: row for row in r["ranked"]}
    assert by_text["It ca"]["difference"] > by_text["It is"]["difference"]
    assert r["ranked"][0]["response"].startswith("It can")  # most optimism-inducing first
    assert r["mean_difference"] == pytest.approx(sum(x["difference"] for x in r["ranked"]) / 2, abs=1e-3)


def test_diff_reads_the_same_tokens_with_both_models(lm, tuned, vec_root, tmp_path):
    from traitscope.finetune.diff import diff_trace
    from traitscope.generation import SamplingConfig
    from traitscope.monitor import load_bank
    from traitscope.prompts import Prompt
    from traitscope.report.diff_plots import plot_diff

    bank = load_bank(lm, vec_root, ["optimism"], layers="4,14")
    p = Prompt("garden", PROBE, None, None, None)
    same = diff_trace(lm, lm, bank, p, SamplingConfig(max_new_tokens=8))
    assert all(abs(x) < 1e-2 for by in same["delta"].values() for v in by.values() for x in v)
    d = diff_trace(lm, tuned, bank, p, SamplingConfig(max_new_tokens=8))
    assert d["base"]["token_ids"] == d["finetuned"]["token_ids"] and d["base"]["mode"] == "teacher_forced"
    ft, base = d["finetuned"]["projections"]["optimism"]["14"], d["base"]["projections"]["optimism"]["14"]
    assert d["delta"]["optimism"]["14"] == pytest.approx([f - b for f, b in zip(ft, base, strict=True)], abs=1e-4)
    assert any(abs(x) > 1e-2 for x in d["delta"]["optimism"]["14"][d["boundary"] :])
    assert plot_diff(d, tmp_path / "g.png").read_bytes().startswith(b"\x89PNG")


def test_diff_command_writes_beside_the_monitor_and_the_dashboard_serves_it(lm, tuned, vec_root, adapter, monkeypatch):
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    import traitscope.models
    from traitscope.cli import commands  # noqa: F401
    from traitscope.cli.app import app
    from traitscope.web.app import create_app

    monkeypatch.setattr(traitscope.models, "load_model", lambda name, adapter=None, **kw: tuned if adapter else lm)
    res = CliRunner().invoke(
        app,
        [
            "diff",
            "-t",
            "optimism",
            "-p",
            PROBE,
            "--adapter",
            str(adapter[0]),
            "--run-root",
            str(vec_root),
            "--max-new-tokens",
            "6",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    path = Path(out["file"])
    assert path.parent == vec_root / lm.slug / "optimism" / "monitor" / "adhoc" and path.name.endswith(".diff.json")
    assert Path(out["plot"]).is_file()
    client = TestClient(create_app(vec_root), base_url="http://127.0.0.1")
    traces = client.get("/api/runs").json()["models"][0]["traces"]
    kinds = {t["path"]: t["kind"] for t in traces}
    rel = str(path.relative_to(vec_root))
    assert kinds[rel] == "diff"
    served = client.get(f"/api/trace/{rel}").json()
    assert served["problems"] == [] and served["diff"]["delta"] and served["diff"]["base"]["mode"] == "teacher_forced"
