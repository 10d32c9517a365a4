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
