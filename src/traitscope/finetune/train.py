"""LoRA finetuning through ``peft``, loss on assistant tokens only, resumable.

``<out>/`` ends up a standard peft adapter directory (``adapter_config.json`` +
``adapter_model.safetensors``, loadable with ``PeftModel.from_pretrained`` or
``load_model(M, adapter=out)``) plus ``train_log.jsonl`` (one line per optimizer step: step,
epoch, loss, trained tokens) and ``provenance.json`` (data, settings, model, steering, timing).

LoRA layers are injected into ``lm.model`` in place for the run and removed afterwards, so the
module paths the hooks use (``model.layers.<i>``) stay valid during training: ``--steer-train``
attaches ``traitscope.steering.steer`` to the training forward passes only, and the saved adapter
holds no trace of it.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from traitscope.errors import TraitscopeError
from traitscope.finetune.checkpoint import checkpoint_fingerprint, checkpoints, load_checkpoint, save_checkpoint
from traitscope.finetune.data import IGNORE, Conversation, Encoded, data_sha256, encode
from traitscope.models.loader import LoadedModel
from traitscope.progress import Reporter, Silent
from traitscope.steering import SteeringSpec, steer
from traitscope.store import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
LOG = "train_log.jsonl"
PROVENANCE = "provenance.json"


@dataclass(frozen=True)
class FinetuneConfig:
    rank: int = 8
    alpha: float = 16.0
    epochs: int = 2
    lr: float = 2e-4
    batch_size: int = 4
    seed: int = 0
    max_tokens: int = 384
    save_every: int = 10  # optimizer steps between checkpoints
    targets: tuple[str, ...] = TARGETS

    def validate(self) -> FinetuneConfig:
        checks = [
            (self.rank >= 1, f"--rank {self.rank} must be >= 1"),
            (self.alpha > 0, f"--alpha {self.alpha} must be > 0"),
            (self.epochs >= 1, f"--epochs {self.epochs} must be >= 1"),
            (0 < self.lr < 1, f"--lr {self.lr} must be between 0 and 1 (typical 1e-4 to 1e-3)"),
            (self.batch_size >= 1, f"--batch-size {self.batch_size} must be >= 1"),
            (self.save_every >= 1, f"--save-every {self.save_every} must be >= 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise TraitscopeError(msg)
        return self


@dataclass
class SteerTrain:
    """Preventative steering during training: ``spec`` plus how it was asked for (for provenance)."""

    spec: SteeringSpec
    describe: dict[str, Any] = field(default_factory=dict)


def _batch(encoded: Sequence[Encoded], pad: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    width = max(len(e.ids) for e in encoded)
    ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    labels = torch.full((len(encoded), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, e in enumerate(encoded):  # right padding: real tokens keep their positions
        ids[row, : len(e.ids)] = torch.tensor(e.ids)
        labels[row, : len(e.ids)] = torch.tensor(e.labels)
        mask[row, : len(e.ids)] = 1
    return ids.to(device), labels.to(device), mask.to(device)


def masked_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the positions whose target is an assistant token."""
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1), ignore_index=IGNORE
    )


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The shuffle of one epoch, a function of (seed, epoch) only, so a resumed run sees the same batches."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1009 + epoch)).tolist()


def _fingerprint(lm: LoadedModel, convs: Sequence[Conversation], cfg: FinetuneConfig, steer_desc: dict) -> dict:
    fp = {"model": lm.name, "data_sha256": data_sha256(list(convs)), "config": asdict(cfg), "steer_train": steer_desc}
    return json.loads(json.dumps(fp))  # as it reads back from disk (tuples become lists)


def _check_out(out: Path, fingerprint: dict) -> dict | None:
    """The finished provenance when ``out`` already holds this very run; an error when it holds another."""
    prov_path = out / PROVENANCE
    if prov_path.is_file():
        prov = json.loads(prov_path.read_text())
        if prov.get("fingerprint") == fingerprint:
            return prov
        raise TraitscopeError(
            f"{out} already holds a finished adapter from other data or settings; choose another --out"
        )
    ckpts = checkpoints(out)
    if ckpts and checkpoint_fingerprint(ckpts[-1]) != fingerprint:
        raise TraitscopeError(
            f"{ckpts[-1]} was written with other data or settings; re-run with those, or delete it to start over"
        )
    return None


def finetune(
    lm: LoadedModel,
    convs: Sequence[Conversation],
    out: Path,
    cfg: FinetuneConfig = FinetuneConfig(),
    steer_train: SteerTrain | None = None,
    reporter: Reporter | None = None,
    data_name: str = "",
    stop_after_steps: int | None = None,
) -> dict[str, Any]:
    """Train a LoRA adapter on ``convs`` and write it to ``out``; resume from the last checkpoint there.
    ``stop_after_steps`` ends the run early (after a checkpoint) as an interruption would."""
    cfg.validate()
    out = Path(out)
    reporter = reporter or Silent()
    fingerprint = _fingerprint(lm, convs, cfg, steer_train.describe if steer_train else {})
    done = _check_out(out, fingerprint)
    if done is not None:
        reporter.note(f"{out} already holds this finished adapter; nothing to do")
        return done
    encoded = [encode(lm, c, cfg.max_tokens) for c in convs]
    empty = [c for c, e in zip(convs, encoded, strict=True) if e.n_trained == 0]
    if empty:
        raise TraitscopeError(
            f"{empty[0].where}:{empty[0].line}: the assistant turn falls beyond --max-tokens {cfg.max_tokens}"
        )
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(cfg.seed)
    lora = LoraConfig(
        r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=0.0, target_modules=list(cfg.targets), task_type="CAUSAL_LM"
    )
    with warnings.catch_warnings():  # transformers' deprecation notes from inside peft
        warnings.simplefilter("ignore", FutureWarning)
        peft_model = get_peft_model(lm.model, lora)
    try:
        return _train(
            lm, peft_model, encoded, out, cfg, steer_train, reporter, fingerprint, data_name, stop_after_steps
        )
    finally:
        peft_model.unload()  # lm.model is the base model again (LoRA layers removed in place)
        lm.model.eval().requires_grad_(False)


def _train(
    lm: LoadedModel,
    peft_model: Any,
    encoded: list[Encoded],
    out: Path,
    cfg: FinetuneConfig,
    steer_train: SteerTrain | None,
    reporter: Reporter,
    fingerprint: dict,
    data_name: str,
    stop_after_steps: int | None,
) -> dict[str, Any]:
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    per_epoch = math.ceil(len(encoded) / cfg.batch_size)
    total = cfg.epochs * per_epoch
    start = 0
    ckpts = checkpoints(out)
    if ckpts:
        start, weights = load_checkpoint(ckpts[-1], opt)
        set_peft_model_state_dict(peft_model, weights)
        reporter.note(f"resuming from {ckpts[-1].name} (step {start} of {total})")
    log_rows = [r for r in read_jsonl(out / LOG) if r["step"] < start]
    atomic_write_text(out / LOG, "".join(json.dumps(r) + "\n" for r in log_rows))  # drop steps to be redone
    advance = reporter.stage(f"finetune {data_name or 'data'}", total)
    advance(start)
    pad = lm.pad_id
    peft_model.train()
    t0 = time.perf_counter()
    for step in range(start, total):
        epoch, k = divmod(step, per_epoch)
        order = epoch_order(len(encoded), cfg.seed, epoch)[k * cfg.batch_size : (k + 1) * cfg.batch_size]
        ids, labels, mask = _batch([encoded[i] for i in order], pad, lm.device)
        with steer(lm, steer_train.spec) if steer_train else nullcontext():
            logits = lm.model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        loss = masked_loss(logits, labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        append_jsonl(
            out / LOG,
            [
                {
                    "step": step,
                    "epoch": epoch,
                    "loss": round(float(loss.detach()), 5),
                    "tokens": int((labels != IGNORE).sum()),
                }
            ],
        )
        advance(1)
        last = step + 1 == total
        if (step + 1) % cfg.save_every == 0 or last or (stop_after_steps is not None and step + 1 >= stop_after_steps):
            save_checkpoint(out, step + 1, get_peft_model_state_dict(peft_model), opt, fingerprint)
        if stop_after_steps is not None and step + 1 >= stop_after_steps and not last:
            peft_model.eval()
            return {"status": "interrupted", "step": step + 1, "total_steps": total}
    peft_model.eval()
    return _finish(lm, peft_model, out, cfg, fingerprint, data_name, len(encoded), total, time.perf_counter() - t0)


def _finish(
    lm: LoadedModel,
    peft_model: Any,
    out: Path,
    cfg: FinetuneConfig,
    fingerprint: dict,
    data_name: str,
    n_examples: int,
    total: int,
    seconds: float,
) -> dict[str, Any]:
    import shutil

    from traitscope import __version__

    peft_model.peft_config["default"].base_model_name_or_path = lm.name
    peft_model.save_pretrained(str(out), safe_serialization=True, save_embedding_layers=False)
    losses = [r["loss"] for r in read_jsonl(out / LOG)]
    prov = {
        "status": "complete",
        "fingerprint": fingerprint,
        "data": data_name,
        "n_examples": n_examples,
        "steps": total,
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "train_seconds_this_session": round(seconds, 2),
        "base_model_source": lm.source,
        "device": str(lm.device),
        "torch_threads": torch.get_num_threads(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "traitscope_version": __version__,
    }
    atomic_write_json(out / PROVENANCE, prov)
    for ck in checkpoints(out):
        shutil.rmtree(ck, ignore_errors=True)
    return prov
